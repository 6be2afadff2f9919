from __future__ import annotations

import re

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


def _one_regex_pass(content: str, values: dict[str, bytes], placeholders: dict[str, str]) -> bytes:
    """The reference: one re.sub over every placeholder, longest first."""
    used = {placeholders[n].encode(): values[n] for n in placeholders if placeholders[n] in content}
    raw = content.encode()
    if not used:
        return raw
    pattern = re.compile(b"|".join(re.escape(t) for t in sorted(used, key=len, reverse=True)))
    return pattern.sub(lambda m: used[m.group(0)], raw)


_PIECES = st.sampled_from(["<a>", "<ab>", "<a", "a>", "ab", "b", "x", "<", ">", "é"])


@given(
    st.lists(_PIECES, max_size=30).map("".join),
    st.dictionaries(
        st.sampled_from(["s1", "s2", "s3", "s4"]),
        st.lists(_PIECES, min_size=1, max_size=3).map("".join),
        max_size=4,
    ).filter(lambda p: len(set(p.values())) == len(p)),
    st.binary(max_size=8),
)
def test_rendering_is_one_regex_pass(
    content: str, placeholders: dict[str, str], value: bytes
) -> None:
    # overlapping, nested and prefix placeholders, as one alternation finds them
    values = {name: value + name.encode() for name in placeholders}
    assert render(content, values, placeholders) == _one_regex_pass(content, values, placeholders)
