"""Templates: placeholders in a template's text replaced by secret values.

A raw placeholder (`<nixseal:NAME>`, the manifest's `placeholders`) is
replaced by the value as it is; a typed one (`<nixseal:FORMAT:NAME>`, for
every secret of `placeholders`: no manifest field) by the value written
for that format, quotes included, or the template fails when the format
cannot hold the value.

Substitution is one pass over the template: a secret whose value happens
to contain another placeholder's text is inserted verbatim, never expanded
again, so no value can pull another secret into a file it was not meant for.
"""

from __future__ import annotations

from nixseal.errors import TemplateValueError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

_OPEN = "<nixseal:"


def uses(content: str, placeholders: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    """The placeholders in content: text -> (secret name, format; "" for raw)."""
    found = {text: (name, "") for name, text in placeholders.items() if text in content}
    # Typed ones by scanning for their opening, not by trying six per
    # secret: hosts have thousands of secrets and templates name a few.
    at = content.find(_OPEN)
    while at >= 0:
        end = content.find(">", at)
        if end < 0:
            break
        fmt, colon, name = content[at + len(_OPEN) : end].partition(":")
        if colon and fmt in ESCAPES and name in placeholders:
            found.setdefault(content[at : end + 1], (name, fmt))
        at = content.find(_OPEN, at + 1)
    return found


def referenced(content: str, placeholders: Mapping[str, str]) -> list[str]:
    """Names of the secrets whose placeholder (raw or typed) occurs in content."""
    return list(dict.fromkeys(name for name, _ in uses(content, placeholders).values()))


def render(
    content: str,
    values: Mapping[str, bytes],
    placeholders: Mapping[str, str],
    template: str = "",
) -> bytes:
    """content with each placeholder replaced by its secret's value (bytes).

    values must hold every name referenced() returns. Raises
    TemplateValueError (naming `template`) for a value a typed
    placeholder's format cannot hold.
    """
    used: dict[bytes, bytes] = {}
    for placeholder, (name, fmt) in uses(content, placeholders).items():
        value = values[name]
        if fmt:
            try:
                value = ESCAPES[fmt](value)
            except _Refused as why:
                raise TemplateValueError(
                    f"template {template!r}: the value for {placeholder} {why}, "
                    f"which the {fmt} format cannot hold"
                ) from None
        used[placeholder.encode()] = value
    raw = content.encode()
    if not used:
        return raw
    # No re (~8 ms of every boot to import): at each step the earliest
    # placeholder, and of those found there the longest, so a placeholder
    # that is a prefix of another loses; the next occurrence of each is kept
    # and searched again only once the scan has passed it.
    parts: list[bytes] = []
    at = 0
    found = {text: raw.find(text) for text in used}
    while True:
        hits = [(where, -len(text), text) for text, where in found.items() if where >= 0]
        if not hits:
            break
        where, _, text = min(hits)
        parts += [raw[at:where], used[text]]
        at = where + len(text)
        for other, seen in found.items():
            if 0 <= seen < at:
                found[other] = raw.find(other, at)
    parts.append(raw[at:])
    return b"".join(parts)


class _Refused(Exception):
    """Why a format cannot hold a value (never the value itself)."""


def _text(value: bytes, nul: bool = False) -> str:
    if not nul and b"\0" in value:
        raise _Refused("contains a NUL byte")
    try:
        return value.decode()
    except UnicodeDecodeError:
        raise _Refused("is not valid UTF-8") from None


def _json(value: bytes) -> bytes:
    from nixseal.util import fastjson  # json's own string encoding, without json

    # C parsers (jansson) refuse \u0000 unless told to take it: a NUL fails.
    return fastjson.dumps(_text(value)).encode()


def _yaml_escape(ch: str) -> str:
    code = ord(ch)
    if ch in '\\"':
        return "\\" + ch
    if ch == "\n":
        return "\\n"
    if ch == "\t":
        return "\\t"
    if code < 0x100:
        return f"\\x{code:02X}"
    if code < 0x10000:
        return f"\\u{code:04X}"
    return f"\\U{code:08X}"


def _yaml_plain(code: int) -> bool:
    """Whether YAML reads the character as itself inside double quotes: the
    printable set, less line breaks (U+0085, U+2028, U+2029, folded), tab and
    the byte order mark (a reader may drop it)."""
    return (
        0x20 <= code <= 0x7E
        or (0xA0 <= code <= 0xD7FF and code not in (0x2028, 0x2029))
        or (0xE000 <= code <= 0xFFFD and code != 0xFEFF)
        or code >= 0x10000
    )


def _yaml(value: bytes) -> bytes:
    text = _text(value, nul=True)  # "\x00" is a YAML escape
    out = "".join(
        ch if ch not in '\\"' and _yaml_plain(ord(ch)) else _yaml_escape(ch) for ch in text
    )
    return f'"{out}"'.encode()


_TOML_SHORT = {"\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def _toml(value: bytes) -> bytes:
    text = _text(value, nul=True)  # "\u0000" is a TOML escape
    out = []
    for ch in text:
        if ch in '\\"':
            out.append("\\" + ch)
        elif ch < " " or ch == "\x7f":
            out.append(_TOML_SHORT.get(ch) or f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return ('"' + "".join(out) + '"').encode()


def _ini(value: bytes) -> bytes:
    # No quoting in INI: the value goes in as it is, and fails where
    # configparser (no interpolation) would read it back differently.
    text = _text(value)
    if "\n" in text or "\r" in text:
        raise _Refused("contains a line break")
    if text != text.strip():
        raise _Refused("has leading or trailing whitespace")
    return value


def _dotenv(value: bytes) -> bytes:
    # systemd (EnvironmentFile=) unescapes \\ \" \$ \` in double quotes and
    # keeps any other backslash; with every backslash doubled a newline in
    # the value is never a continuation. python-dotenv reads it the same.
    from nixseal.util.dotenv import quote

    return quote(_text(value)).encode()


def _shell(value: bytes) -> bytes:
    if b"\0" in value:
        raise _Refused("contains a NUL byte")
    return b"'" + value.replace(b"'", b"'\\''") + b"'"


ESCAPES: dict[str, Callable[[bytes], bytes]] = {
    "json": _json,
    "yaml": _yaml,
    "toml": _toml,
    "ini": _ini,
    "dotenv": _dotenv,
    "shell": _shell,
}
