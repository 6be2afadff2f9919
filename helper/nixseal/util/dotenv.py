"""A dotenv document read as systemd reads an EnvironmentFile=.

The rules of systemd's env-file.c (parse_env_file_internal), so that a
value taken from a document is the one a service given the same file
sees: one assignment per line, KEY=VALUE; blank lines and lines starting
with "#" or ";" are skipped; whitespace around the key and before the
value is dropped. Unquoted, a value ends at the line's end, its trailing
whitespace dropped, and a backslash takes the next character as it is
(before a newline: the line continues). In single quotes everything is
taken as it is, newlines too. In double quotes, a backslash before one of
"\\ " $ `" stands for that character, before a newline continues the
line, and is kept before any other. Quoted and unquoted parts of one value
are joined. A line without "=" is skipped; a later assignment of a key
replaces an earlier one. No "export" prefix, no ${VAR} expansion.
"""

from __future__ import annotations

_NEWLINE = "\n\r"
_WHITESPACE = " \t\n\r"
_COMMENTS = "#;"
_DOUBLE_QUOTE_ESCAPES = '"\\`$'


def quote(text: str) -> str:
    """text double-quoted, as parse (and systemd) read it back: with every
    backslash doubled, a newline in the value is never a continuation."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def parse(text: str) -> dict[str, str]:
    reader = _Reader()
    step = reader.steps
    state = "pre_key"
    for c in text:
        state = step[state](c)
    if state not in ("pre_key", "key", "comment", "comment_escape"):
        reader.push()  # the last line, without a newline (or in an unclosed quote: as systemd)
    return reader.values


class _Reader:
    """systemd's states, one method each: a character in, the next state out."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}
        self.name: list[str] = []
        self.text: list[str] = []
        self.keep = 0  # the value's length without its trailing whitespace
        self.steps = {
            name: getattr(self, f"on_{name}")
            for name in (
                "pre_key",
                "key",
                "pre_value",
                "value",
                "escape",
                "single",
                "double",
                "double_escape",
                "comment",
                "comment_escape",
            )
        }

    def push(self) -> None:
        name = "".join(self.name).rstrip(_WHITESPACE)
        if name:
            self.values[name] = "".join(self.text[: self.keep])

    def add(self, *chars: str) -> None:
        self.text.extend(chars)
        self.keep = len(self.text)

    def on_pre_key(self, c: str) -> str:
        if c in _COMMENTS:
            return "comment"
        if c in _WHITESPACE:
            return "pre_key"
        self.name, self.text, self.keep = [c], [], 0
        return "key"

    def on_key(self, c: str) -> str:
        if c in _NEWLINE:
            return "pre_key"  # no "=": not an assignment
        if c == "=":
            return "pre_value"
        self.name.append(c)
        return "key"

    def on_pre_value(self, c: str) -> str:
        if c in _NEWLINE:
            self.push()
            return "pre_key"
        if c == "'":
            return "single"
        if c == '"':
            return "double"
        if c == "\\":
            return "escape"
        if c in _WHITESPACE:
            return "pre_value"
        self.add(c)
        return "value"

    def on_value(self, c: str) -> str:
        if c in _NEWLINE:
            self.push()
            return "pre_key"
        if c == "\\":
            return "escape"
        if c in _WHITESPACE:
            self.text.append(c)
        else:
            self.add(c)
        return "value"

    def on_escape(self, c: str) -> str:
        if c not in _NEWLINE:  # before a newline: the line continues
            self.add(c)
        return "value"

    def on_single(self, c: str) -> str:
        if c == "'":
            return "pre_value"
        self.add(c)
        return "single"

    def on_double(self, c: str) -> str:
        if c == '"':
            return "pre_value"
        if c == "\\":
            return "double_escape"
        self.add(c)
        return "double"

    def on_double_escape(self, c: str) -> str:
        if c in _DOUBLE_QUOTE_ESCAPES:
            self.add(c)
        elif c not in _NEWLINE:
            self.add("\\", c)
        return "double"

    def on_comment(self, c: str) -> str:
        if c == "\\":
            return "comment_escape"
        return "pre_key" if c in _NEWLINE else "comment"

    def on_comment_escape(self, c: str) -> str:
        return "comment"  # an escaped newline continues the comment
