from __future__ import annotations

import configparser
import io
import json
import re
import subprocess
import sys

import dotenv
import pytest
import yaml
from hypothesis import example, given, settings
from hypothesis import strategies as st

from nixseal.engine.render import referenced, render
from nixseal.errors import TemplateValueError

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

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


# -- typed placeholders: each format's own parser reads back the value ---------

TYPED = {"s": "<nixseal:s>"}


def _typed(fmt: str, document: str, value: bytes) -> bytes:
    content = document.replace("@", f"<nixseal:{fmt}:s>")
    return render(content, {"s": value}, TYPED, "t")


def _refused(fmt: str, value: bytes) -> str:
    with pytest.raises(TemplateValueError) as err:
        _typed(fmt, "@", value)
    return str(err.value)


def test_typed_placeholders_are_referenced_and_raw_ones_stay_raw() -> None:
    content = "a=<nixseal:json:s> b=<nixseal:s> c=<nixseal:xml:s> d=<nixseal:json:other>"
    assert referenced(content, TYPED) == ["s"]
    assert render(content, {"s": b'"'}, TYPED) == (
        b'a="\\"" b=" c=<nixseal:xml:s> d=<nixseal:json:other>'
    )
    # a value holding placeholder text is not expanded again
    assert _typed("json", "@ <nixseal:s>", b"<nixseal:json:s>") == (
        b'"<nixseal:json:s>" <nixseal:json:s>'
    )


_TEXT = st.text(max_size=40)
_NO_NUL = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40
)


@given(_NO_NUL)
@example("\x85\u2028\u2029\ufeff\t\r\n\x7f\x9f\ud7ff\ue000\ufffd\U0010ffff \\\" '")
def test_json_reads_back_the_value(value: str) -> None:
    assert json.loads(_typed("json", '{"k": @}', value.encode())) == {"k": value}


@given(_TEXT)
@example("\x85\u2028\u2029\ufeff\t\r\n\x00\x7f\x9f\ud7ff\ue000\ufffd\U0010ffff \\\" '")
def test_yaml_reads_back_the_value(value: str) -> None:
    assert yaml.safe_load(_typed("yaml", "k: @\nnext: 1\n", value.encode())) == {
        "k": value,
        "next": 1,
    }


@given(_TEXT)
@example("\x85\u2028\u2029\ufeff\t\r\n\x00\x7f\x9f\ud7ff\ue000\ufffd\U0010ffff \\\" '")
def test_toml_reads_back_the_value(value: str) -> None:
    assert tomllib.loads(_typed("toml", "k = @\nnext = 1\n", value.encode()).decode()) == {
        "k": value,
        "next": 1,
    }


def _holds_ini(value: str) -> bool:
    return not set("\n\r\x00") & set(value) and value == value.strip()


@given(_TEXT)
def test_ini_reads_back_the_value_or_the_template_fails(value: str) -> None:
    if not _holds_ini(value):
        assert "which the ini format cannot hold" in _refused("ini", value.encode())
        return
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(_typed("ini", "[s]\nk = @\nnext = 1\n", value.encode()).decode())
    assert dict(parser["s"]) == {"k": value, "next": "1"}


@given(_NO_NUL)
@example("a\\\nb\\")  # a backslash before a newline is no continuation
@example(" 'q' \\' \\\" $HOME ${X} `id` #c \r\n ")
def test_dotenv_reads_back_the_value(value: str) -> None:
    text = _typed("dotenv", "K=@\nNEXT=1\n", value.encode()).decode()
    assert dotenv.dotenv_values(stream=io.StringIO(text), interpolate=False) == {
        "K": value,
        "NEXT": "1",
    }


@pytest.mark.parametrize("shell", ["sh", "bash"])
@settings(max_examples=25, deadline=None)
@given(st.binary(max_size=30).map(lambda b: b.replace(b"\x00", b"")))
def test_shell_reads_back_the_value(shell: str, value: bytes) -> None:
    script = _typed("shell", "printf %s @\n", value)
    out = subprocess.run([shell], input=script, capture_output=True, check=True).stdout
    assert out == value


@pytest.mark.parametrize(
    ("fmt", "value", "why"),
    [
        ("json", b"a\x00b", "contains a NUL byte"),
        ("json", b"\xff", "is not valid UTF-8"),
        ("yaml", b"\xc3", "is not valid UTF-8"),
        ("toml", b"\xed\xa0\x80", "is not valid UTF-8"),  # a surrogate, encoded
        ("ini", b"a\nb", "contains a line break"),
        ("ini", b"a\rb", "contains a line break"),
        ("ini", b"a\x00b", "contains a NUL byte"),
        ("ini", b" a", "has leading or trailing whitespace"),
        ("ini", "a\u00a0".encode(), "has leading or trailing whitespace"),
        ("ini", b"\xff", "is not valid UTF-8"),
        ("dotenv", b"a\x00", "contains a NUL byte"),
        ("dotenv", b"\x80", "is not valid UTF-8"),
        ("shell", b"\x00", "contains a NUL byte"),
    ],
)
def test_values_a_format_cannot_hold_fail_the_template(fmt: str, value: bytes, why: str) -> None:
    assert _refused(fmt, value) == (
        f"template 't': the value for <nixseal:{fmt}:s> {why}, which the {fmt} format cannot hold"
    )


def test_shell_takes_any_bytes_but_nul() -> None:
    assert _typed("shell", "@", b"\xff'") == b"'\xff'\\'''"
