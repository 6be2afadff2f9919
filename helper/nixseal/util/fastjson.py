"""json.loads and json.dumps for the boot path, without the json package.

The json package imports re (and with it enum, functools, collections):
about 11 ms of every boot, for a manifest and a record that its C parts
read and write alone. These call those C parts (`_json`, which the json
package itself uses) with json's default settings, so the results are
json's own; anything they do not take (bad input, an interpreter without
`_json`, another signature) is handed to the json package, whose result
or error is then the answer. tests/test_fastjson.py holds both to json.
"""

from __future__ import annotations

TYPE_CHECKING = False

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

_SPACE = " \t\n\r"  # json's whitespace


def _c_parts() -> Any:
    try:
        import _json
    except ImportError:  # pragma: no cover (an interpreter without json's C parts)
        return None
    return _json


_C = _c_parts()


class _Settings:
    """What json.JSONDecoder() hands its C scanner, with json's defaults."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = staticmethod(
        {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}.__getitem__
    )


_scan = _C.make_scanner(_Settings()) if _C is not None else None


def loads(data: str | bytes) -> Any:
    """json.loads(data)."""
    if _scan is not None:
        text = _text(data)
        if text is not None:
            start = len(text) - len(text.lstrip(_SPACE))
            try:
                value, end = _scan(text, start)
            except (StopIteration, ValueError):
                pass  # json says what is wrong, and where
            else:
                if not text[end:].strip(_SPACE):
                    return value
    import json

    return json.loads(data)


def _text(data: str | bytes) -> str | None:
    """data as json.loads reads it, where that is plain UTF-8 (else None)."""
    if isinstance(data, str):
        return data
    if data[:3] == b"\xef\xbb\xbf" or b"\0" in data[:4]:
        return None  # a BOM, or UTF-16/32: json's detection decides
    try:
        return data.decode()
    except UnicodeDecodeError:
        return None


def dumps(
    value: Any,
    separators: tuple[str, str] = (", ", ": "),
    default: Callable[[Any], Any] | None = None,
) -> str:
    """json.dumps(value, separators=separators, default=default)."""
    if _C is not None:
        item, key = separators
        try:
            encode = _C.make_encoder(
                {},
                default or _unknown,
                _C.encode_basestring_ascii,
                None,
                key,
                item,
                False,
                False,
                True,
            )
            return "".join(encode(value, 0))
        except (TypeError, ValueError):
            pass  # json raises its own error (or takes what this did not)
    import json

    return json.dumps(value, separators=separators, default=default)


def _unknown(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")
