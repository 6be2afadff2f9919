"""Setting keys of a document, every other key kept (`rotate` of a secret
whose rules give generators to some of its keys).

TOML is rewritten with tomlkit, which keeps comments and layout; a dotenv
document has the assignment of each key replaced in place (or appended),
every other line kept as it is (a value of that key spanning lines, in
quotes, is not one a generator made). JSON, YAML and INI are parsed and written
again: every key and value is kept, but not comments (YAML, INI) or
layout. The result is parsed back, and must give each new value.
"""

from __future__ import annotations

import io
import json
from typing import Any

from nixseal.errors import NixsealError
from nixseal.util import document


def fill(fmt: str, data: bytes, values: dict[tuple[str, ...], str], where: str) -> bytes:
    """data (a document of format fmt, or empty: none yet) with each key of
    values set to its value."""
    # A DocumentError when it does not parse, before any writer sees it.
    doc: Any = document.parse(fmt, data) if data.strip() else {}
    if fmt == "dotenv":
        out = _dotenv(data.decode(), values)
    elif fmt == "toml":
        out = _toml(data.decode(), values, where)
    else:
        for segments, value in values.items():
            _set(doc, segments, value, where)
        out = _WRITERS[fmt](doc)
    parsed = document.parse(fmt, out)
    for segments, value in values.items():
        if document.take(parsed, segments) != value.encode():  # pragma: no cover (a bug)
            key = document.key_text(segments)
            raise NixsealError(f'{where}: key "{key}": the new value does not read back')
    return out


def _set(doc: Any, segments: tuple[str, ...], value: str, where: str) -> None:
    node = doc
    for i, segment in enumerate(segments):
        last = i == len(segments) - 1
        if isinstance(node, list) and segment.isdigit() and int(segment) < len(node):
            index: Any = int(segment)
        elif isinstance(node, dict):
            index = segment
        else:
            key = document.key_text(segments)
            raise NixsealError(f'{where}: key "{key}": its place in the document is not a table')
        if last:
            node[index] = value
        else:
            if not isinstance(node, list) and index not in node:
                node[index] = {}
            node = node[index]


def _json(doc: Any) -> bytes:
    return (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode()


def _yaml(doc: Any) -> bytes:
    import yaml  # type: ignore[import-untyped,unused-ignore]

    return str(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)).encode()


def _ini(doc: Any) -> bytes:
    import configparser

    parser = configparser.RawConfigParser(interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    defaults = doc.get(parser.default_section, {})
    for section, options in doc.items():
        if section == parser.default_section:
            parser[section] = options
        else:
            # Options [DEFAULT] gives every section are written there only.
            own = {k: v for k, v in options.items() if defaults.get(k, _NONE) != v}
            parser[section] = own
    out = io.StringIO()
    parser.write(out)
    return out.getvalue().encode()


_NONE = object()
_WRITERS = {"json": _json, "yaml": _yaml, "ini": _ini}


def _toml(text: str, values: dict[tuple[str, ...], str], where: str) -> bytes:
    import tomlkit

    doc = tomlkit.parse(text)
    for segments, value in values.items():
        _set(doc, segments, value, where)
    return tomlkit.dumps(doc).encode()


def _dotenv(text: str, values: dict[tuple[str, ...], str]) -> bytes:
    from nixseal.util.dotenv import quote

    lines = text.splitlines()
    for (name,), value in values.items():
        assignment = f"{name}={quote(value)}"
        at = [i for i, line in enumerate(lines) if _assigns(line, name)]
        if at:
            lines[at[-1]] = assignment  # the last assignment is the one that counts
        else:
            lines.append(assignment)
    return ("\n".join(lines) + "\n").encode()


def _assigns(line: str, name: str) -> bool:
    key, eq, _ = line.partition("=")
    return bool(eq) and key.strip() == name
