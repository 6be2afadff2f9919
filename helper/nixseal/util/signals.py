"""SIGINT and SIGTERM: one line and exit 130 or 143, at any instant.

Three phases, each with its own handling:
- from the package's first statement (nixseal/__init__.py) to the start of
  a verb, and after it: exit at once (os._exit) with one line. Nothing has
  been touched yet (or everything is done), and an exception raised in the
  middle of an import would only end in a traceback;
- while a verb runs (running()): the signal becomes an exception
  (Signalled), so that finally blocks remove temporary
  files and release locks; the CLI prints the one line. The first signal
  puts back the exit-at-once handlers, so a second one cannot interrupt the
  handling of the first;
- before the package's first statement, during the interpreter's own
  start-up: the package's launcher starts Python with both signals
  blocked (`env --block-signal=INT,TERM`), and the first phase unblocks
  them once its handlers are in place.
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]
import sys

import nixseal
from nixseal.util.lean import contextmanager

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

SIGINT: int = _signal.SIGINT
SIGTERM: int = _signal.SIGTERM


class Signalled(BaseException):
    """SIGINT or SIGTERM, raised where the program was.

    Not KeyboardInterrupt: the interpreter notes a KeyboardInterrupt that
    passes through code it runs for an extension (pyrage's), and at exit
    kills itself with SIGINT, whatever the CLI has printed and returned.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


received: list[int] = []  # the signal a verb was interrupted by


def _raise(signum: int, frame: Any) -> None:
    _exit_at_once()
    if _importing(frame):
        # An exception in the middle of an import helps no clean-up, and in
        # an extension's initialisation (pyrage's runs Python code) it ends
        # in a panic and its backtrace. Imports touch no file: exit now.
        nixseal.leave(signum, frame)
    received.append(signum)
    raise Signalled(signum)


def _importing(frame: Any) -> bool:
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


def _exit_at_once() -> None:
    for signum in (SIGINT, SIGTERM):
        _signal.signal(signum, nixseal.leave)


@contextmanager
def handled(verb: str | None) -> Iterator[None]:
    """Around the whole CLI: exit at once on a signal, naming the verb.

    The handlers found are put back afterwards, so that a program calling
    the CLI in its own process (a test runner) keeps its own.
    """
    previous: dict[int, object] = {s: _signal.getsignal(s) for s in (SIGINT, SIGTERM)}
    nixseal.prefix = f"nixseal {verb}".encode() if verb else b"nixseal"
    nixseal.said[0] = False
    received.clear()
    nixseal.exit_on_signals()
    stderr = sys.stderr
    sys.stderr = _WholeLines(stderr)
    try:
        yield
    finally:
        sys.stderr.flush()
        sys.stderr = stderr
        for signum, handler in previous.items():
            _signal.signal(signum, handler)


class _WholeLines:
    """stderr, written a whole line at a time (print() writes a line's text and
    its newline apart), so the signal's line never ends half a log line."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        nixseal.held[0] = ""  # shared with the signal handlers, which end it

    def write(self, text: str) -> int:
        if not text.endswith("\n"):
            nixseal.held[0] += text
            return len(text)
        whole, nixseal.held[0] = nixseal.held[0] + text, ""
        self._inner.write(whole)
        return len(text)

    def end_line(self) -> None:
        """Write what is held as a line of its own (a signal's line comes next)."""
        if nixseal.held[0]:
            self.write("\n")
        self._inner.flush()

    def flush(self) -> None:
        if nixseal.held[0]:
            held, nixseal.held[0] = nixseal.held[0], ""
            self._inner.write(held)
        self._inner.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


@contextmanager
def running() -> Iterator[None]:
    """While a verb runs: signals raise; afterwards the previous handlers are back."""
    previous: dict[int, object] = {s: _signal.getsignal(s) for s in (SIGINT, SIGTERM)}
    for signum in previous:
        _signal.signal(signum, _raise)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            _signal.signal(signum, handler)


def report(signum: int) -> int:
    """Print the one line for a signal that interrupted a verb; its exit status."""
    _exit_at_once()
    if not nixseal.said[0]:
        nixseal.said[0] = True
        word = "interrupted" if signum == SIGINT else "terminated"
        if isinstance(sys.stderr, _WholeLines):
            sys.stderr.end_line()
        import os

        os.write(2, nixseal.prefix + f": {word}\n".encode())
    return 128 + signum
