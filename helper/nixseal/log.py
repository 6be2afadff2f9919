"""The one place structlog is configured.

Events go to stderr, as key=value console lines or as JSON lines
(``--log-format json``) for journald and log shippers. Callers log events
with fields, never plaintext: secret values must not reach any processor.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

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


def get_logger(**initial: Any) -> Any:
    """A bound logger; configure() must have run (the CLI does it)."""
    return structlog.get_logger(**initial)
