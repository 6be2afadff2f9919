"""The install's events as journal entries with fields of their own.

Under systemd, stderr is a stream into the journal, and systemd says so in
``JOURNAL_STREAM`` (the stream's device and inode). Then every event is
sent through the journal's native protocol instead (a datagram of
``FIELD=value`` lines to its socket), with the rendered line as MESSAGE, so
``journalctl -u nixseal-install`` reads as before while
``journalctl -u nixseal-install NIXSEAL_STATE=failed`` finds the failures.
The journal attributes each entry to the sender's unit from its
credentials, as it does for the stream. An entry the socket refuses is
written to stderr as usual.

Fields carry what events carry: names, paths, states, reasons, never a value.
"""

from __future__ import annotations

# _socket, not socket: socket.py builds its enums at import (enum, with
# functools and collections: ~5 ms of every boot under systemd).
import _socket
import os

from nixseal.models.install import ENTRY_STATES

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TextIO

    from nixseal.util.events import Render, Sink

SOCKET = "/run/systemd/journal/socket"
_PRIORITY = {"debug": "7", "info": "6", "warning": "4", "error": "3"}
# The events of one entry of the install, by the state they name.
STATES = frozenset(ENTRY_STATES)
# Other events, by the short name NIXSEAL_EVENT gives them.
_EVENTS = {
    "units signalled": "signalled",
    "units queued": "queued",
    "pending units signalled": "signalled",
    "install finished": "summary",
    "dry run finished": "summary",
}


def connected(stream: TextIO) -> bool:
    """Is stream the journal's own stream (systemd's JOURNAL_STREAM)?"""
    wanted = os.environ.get("JOURNAL_STREAM")
    if not wanted:
        return False
    try:
        st = os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return wanted == f"{st.st_dev}:{st.st_ino}"


def _field_name(key: str) -> str:
    return "NIXSEAL_" + "".join(c if c.isalnum() else "_" for c in key.upper())


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return " ".join(str(v) for v in value)
    return str(value)


def fields_of(
    level: str, event: str, fields: dict[str, Any], message: str
) -> list[tuple[str, str]]:
    """The journal fields of one event."""
    out = [
        ("MESSAGE", message),
        ("PRIORITY", _PRIORITY.get(level, "6")),
        ("SYSLOG_IDENTIFIER", "nixseal"),
        ("NIXSEAL_EVENT", event if event in STATES else _EVENTS.get(event, event)),
    ]
    if event in STATES:
        out.append(("NIXSEAL_STATE", event))
        kind = fields.get("kind")
        if kind in ("secret", "template") and "name" in fields:
            out.append((_field_name(str(kind)), str(fields["name"])))
    for key, value in fields.items():
        # a dict of lists (the units signalled, by action) is a field per action
        items = value.items() if isinstance(value, dict) else [(None, value)]
        for sub, v in items:
            text = _text(v)
            if text is not None:
                out.append((_field_name(key if sub is None else f"{key}_{sub}"), text))
    return out


def encode(pairs: list[tuple[str, str]]) -> bytes:
    """The native protocol's datagram: FIELD=value lines; a value holding a
    newline as FIELD, newline, its length (64-bit little-endian), the value."""
    parts = []
    for name, value in pairs:
        data = value.encode("utf-8", "backslashreplace")
        key = name.encode("ascii")
        if b"\n" in data:
            parts.append(key + b"\n" + len(data).to_bytes(8, "little") + data + b"\n")
        else:
            parts.append(key + b"=" + data + b"\n")
    return b"".join(parts)


def sink(line_for: Render, fallback: Sink) -> Sink:
    """A sink sending each event to the journal; fallback where it cannot."""
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_DGRAM | _socket.SOCK_CLOEXEC)

    def send(level: str, event: str, fields: dict[str, Any]) -> None:
        datagram = encode(fields_of(level, event, fields, line_for(level, event, fields)))
        try:
            sock.sendto(datagram, SOCKET)
        except OSError:  # no journal socket, or an entry too big for one datagram
            fallback(level, event, fields)

    return send
