"""One value out of a document of many (json, yaml, toml, dotenv, ini).

A secret whose age file holds a document takes one key of it: a path of
segments, a list's index being a decimal segment. A document is parsed
once per run however many secrets take keys from it. A value must be a
scalar, written as its text: a string as it is (UTF-8), a boolean as
``true`` or ``false``, an integer or a float as Python writes it (``1.5``,
``1e+20``), a date or a time in ISO 8601, YAML's ``!!binary`` as its bytes;
null, a mapping or a list fails the secret. Messages name the file and the
key, never anything of the document: a parser's own message may quote it,
so only the position it gives is kept.

Each format's parser is imported when a document of that format is met
(yaml, tomllib and configparser each import re and more), never otherwise.
"""

from __future__ import annotations

from nixseal.errors import NixsealError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class DocumentError(NixsealError):
    """Why a document, or a key of it, gives no value: said after the file and key."""


def key_text(segments: tuple[str, ...]) -> str:
    """The key as the module's option spells it: segments joined by "/",
    with "\\" and "/" inside a segment escaped by a backslash."""
    return "/".join(s.replace("\\", "\\\\").replace("/", "\\/") for s in segments)


def split_key(text: str) -> tuple[str, ...] | None:
    """The segments of a key as the module's option spells it (key_text's
    inverse); None when malformed: an empty segment, a stray backslash."""
    segments: list[str] = []
    current: list[str] = []
    chars = iter(text)
    for c in chars:
        if c == "/":
            segments.append("".join(current))
            current = []
        elif c == "\\":
            escaped = next(chars, "")
            if escaped not in ("/", "\\"):
                return None
            current.append(escaped)
        else:
            current.append(c)
    segments.append("".join(current))
    return None if "" in segments else tuple(segments)


# How many segments a key of a format has, where that is fixed (ini:
# section/option; dotenv: the variable's name).
KEY_LENGTH = {"ini": 2, "dotenv": 1}


def parse(fmt: str, data: bytes) -> Any:
    """The document in data; a DocumentError saying where it is not valid."""
    try:
        text = data.decode()
    except UnicodeDecodeError as err:
        raise DocumentError(f"the document is not UTF-8 (byte {err.start})") from err
    try:
        return _PARSERS[fmt](text)
    except RecursionError as err:
        raise DocumentError(f"the document is not valid {fmt} (nested too deeply)") from err
    except DocumentError:
        raise
    except Exception as err:  # each parser's own error: only its position is kept
        raise DocumentError(f"the document is not valid {fmt}{_position(err)}") from err


def take(doc: Any, segments: tuple[str, ...]) -> bytes:
    """The value at segments in a parsed document, as the bytes installed."""
    node = doc
    for segment in segments:
        node = _child(node, segment)
    return _scalar(node)


_MISSING = object()


def _child(node: Any, segment: str) -> Any:
    if isinstance(node, dict):
        found = node.get(segment, _MISSING)
        if found is _MISSING:
            # YAML's keys may be numbers or booleans: matched by their text.
            for k, v in node.items():
                if not isinstance(k, str) and _text_of(k) == segment:
                    return v
            raise DocumentError("not found in the document")
        return found
    if isinstance(node, list):
        if not segment.isdigit() or not segment.isascii() or int(segment) >= len(node):
            raise DocumentError("not found in the document (a list's index is a number from 0)")
        return node[int(segment)]
    raise DocumentError("not found in the document")


def _scalar(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if value is None:
        raise DocumentError("holds null, not a string, number or boolean")
    if isinstance(value, dict):
        raise DocumentError("holds a mapping, not a string, number or boolean")
    if isinstance(value, list):
        raise DocumentError("holds a list, not a string, number or boolean")
    text = _text_of(value)
    if text is None:
        raise DocumentError("holds a value of no known kind, not a string, number or boolean")
    try:
        return text.encode()
    except UnicodeEncodeError as err:
        raise DocumentError("holds text that is not valid Unicode (a lone surrogate)") from err


def _text_of(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    isoformat = getattr(value, "isoformat", None)  # dates and times (TOML, YAML)
    if callable(isoformat):
        return str(isoformat())
    return None


def _position(err: BaseException) -> str:
    """(line L, column C) when the parser's error says where."""
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    if mark is not None:  # PyYAML's MarkedYAMLError, marks counted from 0
        return f" (line {mark.line + 1}, column {mark.column + 1})"
    line, column = getattr(err, "lineno", None), getattr(err, "colno", None)
    if line is None:
        errors = getattr(err, "errors", None)  # configparser.ParsingError
        if errors:
            line = errors[0][0]
    if isinstance(line, int) and isinstance(column, int):
        return f" (line {line}, column {column})"
    if isinstance(line, int):
        return f" (line {line})"
    text = str(err)  # tomllib says where at its message's end: "... (at line 3, column 7)"
    at = text.rfind("(at line ")
    if at >= 0 and text.endswith(")"):
        return f" ({text[at + 4 : -1]})"
    return ""


def _json(text: str) -> Any:
    from nixseal.util import fastjson

    return fastjson.loads(text)


def _yaml(text: str) -> Any:
    import yaml  # type: ignore[import-untyped,unused-ignore]  # PyYAML: only for yaml

    return yaml.safe_load(text)


def _toml(text: str) -> Any:
    import sys

    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]
    return tomllib.loads(text)


def _ini(text: str) -> Any:
    import configparser

    parser = configparser.RawConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # names as written
    parser.read_string(text, "document")
    doc: dict[str, Any] = {}
    for section in [parser.default_section, *parser.sections()]:
        doc[section] = dict(parser[section])
    return doc


def _dotenv(text: str) -> Any:
    from nixseal.util.dotenv import parse

    return parse(text)


_PARSERS = {"json": _json, "yaml": _yaml, "toml": _toml, "ini": _ini, "dotenv": _dotenv}
