"""The one place structlog is configured.

Events go to stderr, as key=value console lines or as JSON lines
(``--log-format json``) for journald and log shippers. Callers log events
with fields, never plaintext: secret values must not reach any processor.
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol, TextIO


class _Deferred(types.ModuleType):
    """Stands in for a module until one of its attributes is first used."""

    def __getattr__(self, attr: str) -> Any:
        if sys.modules.get(self.__name__) is self:
            del sys.modules[self.__name__]
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


# Why: `import structlog` also imports structlog.stdlib and .threadlocal,
# which import asyncio and uuid at the top but use them only inside async
# methods and helpers we never call; structlog.processors imports datetime,
# used only when a timestamp is made (JSON output). asyncio costs ~30 ms of
# the ~100 ms budget of `nixseal install`, which runs at every boot and
# switch; these stand-ins import the real module on first attribute use, if ever.
with _deferring("asyncio", "uuid", "datetime"):
    import structlog

LOG_FORMATS = ("console", "json")

_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}


def configure(fmt: str = "console", verbosity: int = 0, stream: TextIO | None = None) -> None:
    """Set up structlog for this process.

    verbosity: -1 quiet (warnings and errors), 0 info, 1 and more debug.
    """
    out = stream if stream is not None else sys.stderr
    level = _LEVELS["debug"] if verbosity > 0 else _LEVELS["info"]
    if verbosity < 0:
        level = _LEVELS["warning"]
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


class Logger(Protocol):
    """What nixseal asks of a logger: structlog's bound logger, or a test's
    recorder. Values are keyword fields; a secret's value is never one."""

    def bind(self, **fields: Any) -> Logger: ...
    def debug(self, event: str, **fields: Any) -> Any: ...
    def info(self, event: str, **fields: Any) -> Any: ...
    def warning(self, event: str, **fields: Any) -> Any: ...
    def error(self, event: str, **fields: Any) -> Any: ...


def get_logger(**initial: Any) -> Logger:
    """A bound logger; configure() must have run (the CLI does it)."""
    logger: Logger = structlog.get_logger(**initial)
    return logger
