"""The events of `nixseal install`, written without structlog.

`nixseal install` runs at every boot and switch, where importing and
configuring structlog cost about 16 ms of a one-secret install. This
module writes the same lines the admin CLI's structlog set-up writes
(nixseal.util.log): ``[info     ] event key=value`` on the console, one
JSON object a line with ``event``, ``level`` and ``timestamp`` last.
tests/test_events.py holds the two to the same output.

Callers log events with fields, never plaintext: a value never reaches
this module.
"""

from __future__ import annotations

import time

from nixseal.util import fastjson

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TextIO

    Sink = Callable[[str, str, dict[str, Any]], None]  # level, event, fields
    Render = Callable[[str, str, dict[str, Any]], str]

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}
# structlog pads the level to its longest name ("exception")
_LEVEL_WIDTH = 9
# Strings holding these are quoted (repr) on the console, as structlog does.
_QUOTED = frozenset(" \t=\r\n\"'")


class Events:
    """A logger with structlog's bound-logger surface (nixseal.util.log.Logger)."""

    __slots__ = ("_fields", "_minimum", "_sink")

    def __init__(self, sink: Sink, minimum: int, fields: dict[str, Any] | None = None) -> None:
        self._sink = sink
        self._minimum = minimum
        self._fields = fields or {}

    def bind(self, **fields: Any) -> Events:
        return Events(self._sink, self._minimum, {**self._fields, **fields})

    def debug(self, event: str, **fields: Any) -> None:
        self._emit(10, "debug", event, fields)

    def info(self, event: str, **fields: Any) -> None:
        self._emit(20, "info", event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._emit(30, "warning", event, fields)

    def error(self, event: str, **fields: Any) -> None:
        self._emit(40, "error", event, fields)

    def _emit(self, level: int, name: str, event: str, fields: dict[str, Any]) -> None:
        if level >= self._minimum:
            self._sink(name, event, {**self._fields, **fields})


def _console_value(value: Any) -> str:
    if isinstance(value, str):
        return repr(value) if _QUOTED.intersection(value) else value
    return repr(value)


def console_line(level: str, event: str, fields: dict[str, Any]) -> str:
    parts = [f"[{level.ljust(_LEVEL_WIDTH)}]", str(event)]
    parts += [f"{k}={_console_value(v)}" for k, v in fields.items()]
    # as structlog joins them: empty parts left out, no trailing blanks
    return " ".join(p for p in parts if p).rstrip(" ")


def _timestamp() -> str:
    now = time.time()
    seconds = int(now)
    micros = int((now - seconds) * 1_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{micros:06d}Z"


def json_line(level: str, event: str, fields: dict[str, Any], timestamp: str | None = None) -> str:
    record = {**fields, "event": event, "level": level, "timestamp": timestamp or _timestamp()}
    return fastjson.dumps(record, default=repr)


def renderer(fmt: str) -> Render:
    return json_line if fmt == "json" else console_line


def to_stream(fmt: str, stream: TextIO) -> Sink:
    """A sink writing console or JSON lines to stream, flushed a line at a time."""
    line_for = renderer(fmt)

    def sink(level: str, event: str, fields: dict[str, Any]) -> None:
        print(line_for(level, event, fields), file=stream, flush=True)

    return sink
