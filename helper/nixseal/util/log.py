"""The one place logging is configured: structlog for the admin verbs,
nixseal.util.events (the same lines, without structlog) for `install`.

Events go to stderr, as key=value console lines or as JSON lines
(``--log-format json``) for journald and log shippers. Callers log events
with fields, never plaintext: secret values must not reach any processor.
"""

from __future__ import annotations

import os
import sys
import types

from nixseal.util.events import LEVELS, Events, renderer, to_stream
from nixseal.util.lean import contextmanager

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any, Protocol, TextIO

    class Logger(Protocol):
        """What nixseal asks of a logger: structlog's bound logger, or a test's
        recorder. Values are keyword fields; a secret's value is never one."""

        def bind(self, **fields: Any) -> Logger: ...
        def debug(self, event: str, **fields: Any) -> Any: ...
        def info(self, event: str, **fields: Any) -> Any: ...
        def warning(self, event: str, **fields: Any) -> Any: ...
        def error(self, event: str, **fields: Any) -> Any: ...


class _Deferred(types.ModuleType):
    """Stands in for a module until one of its attributes is first used."""

    def __getattr__(self, attr: str) -> Any:
        if sys.modules.get(self.__name__) is self:
            del sys.modules[self.__name__]
        import importlib

        return getattr(importlib.import_module(self.__name__), attr)


@contextmanager
def _deferring(*names: str) -> Iterator[None]:
    placed = [n for n in names if n not in sys.modules]
    for name in placed:
        sys.modules[name] = _Deferred(name)
    try:
        yield
    finally:
        for name in placed:
            if isinstance(sys.modules.get(name), _Deferred):
                del sys.modules[name]


def _structlog() -> Any:
    # Why deferred: `import structlog` also imports structlog.stdlib and
    # .threadlocal, which import asyncio and uuid at the top but use them
    # only inside async methods and helpers we never call; structlog.processors
    # imports datetime, used only when a timestamp is made (JSON output).
    # These stand-ins import the real module on first attribute use, if ever.
    with _deferring("asyncio", "uuid", "datetime"):
        import structlog
    return structlog


LOG_FORMATS = ("console", "json")

# Set by configure(lean=True): the logger every get_logger() binds from.
_lean: Events | None = None


def configure(
    fmt: str = "console",
    verbosity: int = 0,
    stream: TextIO | None = None,
    *,
    lean: bool = False,
) -> None:
    """Set up logging for this process.

    verbosity: -1 quiet (warnings and errors), 0 info, 1 and more debug.
    lean: without structlog (for `nixseal install`, at every boot).
    """
    global _lean  # noqa: PLW0603 (one configuration per process)
    out = stream if stream is not None else sys.stderr
    level = LEVELS["debug"] if verbosity > 0 else LEVELS["info"]
    if verbosity < 0:
        level = LEVELS["warning"]
    if lean:
        sink = to_stream(fmt, out)
        if "JOURNAL_STREAM" in os.environ:  # under systemd (socket is imported only then)
            from nixseal.util import journal

            if journal.connected(out):
                sink = journal.sink(renderer(fmt), sink)
        _lean = Events(sink, level)
        return
    _lean = None
    structlog = _structlog()
    processors: list[Any] = [
        structlog.processors.add_log_level,
    ]
    if fmt == "json":
        processors += [
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(sort_keys=False),
        ]
    else:
        processors.append(
            structlog.dev.ConsoleRenderer(
                colors=False,
                pad_event_to=0,
                sort_keys=False,
            )
        )
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )


def get_logger(**initial: Any) -> Logger:
    """A bound logger; configure() must have run (the CLI does it)."""
    if _lean is not None:
        return _lean.bind(**initial)
    logger: Logger = _structlog().get_logger(**initial)
    return logger
