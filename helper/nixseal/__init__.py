"""nixseal: secrets management for NixOS."""

# The program's first statements, before any other import: from here on a
# SIGINT or SIGTERM ends the process with one line and 130 or 143, never a
# traceback from the middle of an import. `_signal` is built into the
# interpreter, so this costs nothing at boot. The package's launcher starts
# Python with both signals blocked, so one sent during the interpreter's own
# start-up waits, and is delivered here by the unblock. nixseal.util.signals
# takes over while a verb runs. Only when nixseal is the program: a process
# that merely imports it (a test runner) keeps its own handlers.
import _signal  # type: ignore[import-not-found]
import os as _os
import sys as _sys

__version__ = "0.1.0"

_WORDS = {_signal.SIGINT: b"interrupted", _signal.SIGTERM: b"terminated"}
prefix = b"nixseal"  # the CLI adds its verb
said = [False]  # a line was printed: a further signal exits silently
held = [""]  # stderr text not yet written: a line without its newline (nixseal.util.signals)


def leave(signum: int, frame: object) -> None:
    """Exit at once: one line, 128+signum."""
    if not said[0]:
        said[0] = True
        line = prefix + b": " + _WORDS.get(signum, b"signalled") + b"\n"
        if held[0]:  # the line being printed ends before this one starts
            line = held[0].encode(errors="replace") + b"\n" + line
        _os.write(2, line)
    _os._exit(128 + signum)


def exit_on_signals() -> None:
    for signum in _WORDS:
        _signal.signal(signum, leave)
    _signal.pthread_sigmask(_signal.SIG_UNBLOCK, tuple(_WORDS))


# `python -m nixseal` shows "-m" while the package is found; an entry-point
# script shows its own path (bin/nixseal).
if _sys.argv and (_sys.argv[0] == "-m" or "nixseal" in _os.path.basename(_sys.argv[0])):  # noqa: PTH119
    exit_on_signals()
