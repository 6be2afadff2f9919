from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from nixseal.engine.render import referenced, render

PH = {"a": "<A>", "ab": "<A>B", "b": "@B@"}


def test_placeholders_are_replaced_longest_first() -> None:
    values = {"a": b"1", "ab": b"2", "b": b"3"}
    assert render("x=<A>B y=<A> z=@B@", values, PH) == b"x=2 y=1 z=3"
    assert referenced("only <A>", PH) == ["a"]
    assert render("no placeholders", {}, PH) == b"no placeholders"


def test_values_are_never_expanded_again() -> None:
    values = {"a": b"@B@", "b": b"secret-b"}
    assert render("<A>", values, {"a": "<A>", "b": "@B@"}) == b"@B@"


@given(st.binary(max_size=50), st.binary(max_size=50), st.text(max_size=30))
def test_rendering_is_byte_exact(va: bytes, vb: bytes, text: str) -> None:
    ph = {"a": "\x00A\x00", "b": "\x00B\x00"}
    content = f"{text}\x00A\x00{text}\x00B\x00"
    expected = text.encode() + va + text.encode() + vb
    assert render(content, {"a": va, "b": vb}, ph) == expected
