"""nixseal.util.fastjson reads and writes what the json package does."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from nixseal.util import fastjson

_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(st.characters(blacklist_categories=("Cs",))),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


def _same(a: object, b: object) -> bool:
    # NaN is not equal to itself; json's and fastjson's must still agree
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


@given(_JSON, st.sampled_from([(", ", ": "), (",", ":")]))
def test_dumps_writes_what_json_writes(value: object, separators: tuple[str, str]) -> None:
    assert fastjson.dumps(value, separators) == json.dumps(value, separators=separators)


@given(_JSON, st.sampled_from(["", " ", "\n\t ", "\r\n"]))
def test_loads_reads_what_json_reads(value: object, space: str) -> None:
    text = space + json.dumps(value) + space
    assert _same(fastjson.loads(text), json.loads(text))
    assert _same(fastjson.loads(text.encode()), json.loads(text.encode()))


@given(st.text(max_size=30))
@example('{"a": 1} x')  # extra data
@example('{"a": 1')  # truncated
@example("")
@example("NaN")
@example('"\x01"')  # a control character inside a string
def test_any_text_gives_json_s_value_or_json_s_error(text: str) -> None:
    try:
        expected = json.loads(text)
    except ValueError as err:
        with pytest.raises(type(err)) as got:
            fastjson.loads(text)
        assert str(got.value) == str(err)
    else:
        assert _same(fastjson.loads(text), expected)


@pytest.mark.parametrize(
    "data",
    [b"\xef\xbb\xbf[1]", "[1]".encode("utf-16"), b"[\xff]", b'{"a": "\xc3\xa9"}'],
)
def test_bytes_are_decoded_as_json_decodes_them(data: bytes) -> None:
    try:
        expected = json.loads(data)
    except ValueError as err:
        with pytest.raises(type(err)):
            fastjson.loads(data)
    else:
        assert fastjson.loads(data) == expected


def test_what_json_cannot_write_fails_as_in_json() -> None:
    with pytest.raises(TypeError, match="not JSON serializable"):
        fastjson.dumps({"a": object()})
    assert fastjson.dumps({"a": b"x"}, default=repr) == json.dumps({"a": b"x"}, default=repr)


def test_deep_nesting_fails_as_in_json() -> None:
    with pytest.raises(RecursionError):
        fastjson.loads("[" * 100_000 + "]" * 100_000)
