"""Editing a value without plaintext on disk (`nixseal edit`).

The value is written to a fresh 0700 directory on a memory file system
(tmpfs or ramfs: $NIXSEAL_TMPDIR, $XDG_RUNTIME_DIR or /dev/shm, verified
in /proc/self/mountinfo), and the directory is removed when the editor
exits, on error, and on SIGINT, SIGTERM or SIGHUP. The editor runs as the
terminal's foreground job, so Ctrl-C inside it reaches the editor only.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType

from nixseal.errors import Interrupted, NixsealError, UsageError

MEMORY_FS = ("tmpfs", "ramfs")
_CLEANUP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# vim and neovim otherwise keep swap, undo, backup and viminfo/shada files
# (registers included) that may hold the plaintext on disk.
# How many times the editor opens on a value that is refused.
MAX_OPENINGS = 3
_VIM_FLAGS = ["-n", "-i", "NONE", "--cmd", "set nobackup nowritebackup noundofile"]


def filesystem_type(path: Path) -> str | None:
    """The type of the file system path lives on, from /proc/self/mountinfo."""
    target = os.path.realpath(path)
    best, best_type = "", None
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        left, _, right = line.partition(" - ")
        fields = left.split()
        if len(fields) < 5 or not right:
            continue
        mount = fields[4].replace("\\040", " ")
        inside = target == mount or target.startswith(mount.rstrip("/") + "/")
        if inside and len(mount) >= len(best):
            best, best_type = mount, right.split()[0]
    return best_type


def private_base() -> Path:
    """A memory-backed directory to create the edit directory in."""
    explicit = os.environ.get("NIXSEAL_TMPDIR")
    # /dev/shm is only used after checking it is tmpfs, in a fresh 0700 dir.
    shm = "/dev/shm"  # noqa: S108
    candidates = [explicit] if explicit else [os.environ.get("XDG_RUNTIME_DIR"), shm]
    tried = []
    for c in candidates:
        if not c:
            continue
        tried.append(c)
        p = Path(c)
        if p.is_dir() and filesystem_type(p) in MEMORY_FS:
            return p
    raise UsageError(
        f"no tmpfs or ramfs directory to edit in (tried {', '.join(tried) or 'none'}); "
        "set NIXSEAL_TMPDIR to a directory on tmpfs or ramfs"
    )


@contextlib.contextmanager
def private_dir(label: str) -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix=f"nixseal-{label}-", dir=private_base()))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@contextlib.contextmanager
def cleanup_on_signals() -> Iterator[None]:
    """Turn SIGINT/SIGTERM/SIGHUP into an exception, so finally blocks run."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise Interrupted(signum)

    old = {s: signal.signal(s, handler) for s in _CLEANUP_SIGNALS}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def editor_command(file: Path) -> list[str]:
    var = "VISUAL" if os.environ.get("VISUAL") else "EDITOR"
    editor = os.environ.get(var) or "vi"
    try:
        cmd = shlex.split(editor)
    except ValueError as err:
        raise UsageError(f"${var} {editor!r}: {str(err).lower()}") from err
    if not cmd:
        raise UsageError(f"${var} is empty")
    if Path(cmd[0]).name in ("vi", "vim", "nvim", "gvim"):
        cmd += _VIM_FLAGS
    return [*cmd, str(file)]


def _terminal_fd() -> int | None:
    try:
        if os.isatty(0) and os.tcgetpgrp(0) == os.getpgrp():
            return 0
    except OSError:
        pass
    return None


def run_editor(cmd: list[str]) -> int:
    """Run the editor as the foreground job; its exit status.

    Given its own process group and the terminal, the editor alone gets
    the keyboard's Ctrl-C; a signal that reaches nixseal was meant for it,
    and then the editor is stopped too and the directory removed.
    """
    tty = _terminal_fd()

    def take_terminal() -> None:
        # In the child before exec, as shells do: an editor that reads the
        # terminal before the parent hands it over would otherwise stop.
        os.setpgrp()
        signal.signal(signal.SIGTTOU, signal.SIG_IGN)
        assert tty is not None
        os.tcsetpgrp(tty, os.getpgrp())
        signal.signal(signal.SIGTTOU, signal.SIG_DFL)

    try:
        # nixseal runs no threads, so preexec_fn is safe here.
        setup = take_terminal if tty is not None else None
        proc = subprocess.Popen(cmd, preexec_fn=setup)  # noqa: PLW1509
    except OSError as err:
        raise UsageError(f"cannot run editor {cmd[0]!r}: {err.strerror}") from err
    old_ttou = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
    try:
        while True:
            _, status = os.waitpid(proc.pid, os.WUNTRACED)
            if not os.WIFSTOPPED(status):
                proc.returncode = os.waitstatus_to_exitcode(status)
                return proc.returncode
            # Ctrl-Z in the editor: suspend nixseal with it, resume both.
            if tty is not None:
                os.tcsetpgrp(tty, os.getpgrp())
            os.kill(os.getpid(), signal.SIGSTOP)
            if tty is not None:
                os.tcsetpgrp(tty, proc.pid)
                os.killpg(proc.pid, signal.SIGCONT)
            else:
                proc.send_signal(signal.SIGCONT)
    except BaseException:
        with contextlib.suppress(OSError):
            proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        raise
    finally:
        if tty is not None:
            with contextlib.suppress(OSError):
                os.tcsetpgrp(tty, os.getpgrp())
        signal.signal(signal.SIGTTOU, old_ttou)


def edit_privately(
    name: str, original: bytes, refuse: Callable[[bytes], str | None] | None = None
) -> bytes:
    """What the admin saved in $EDITOR, starting from original; raises,
    changing nothing, when the editor fails or is killed.

    refuse says why a saved value cannot be kept (a document that does
    not parse), or None: the editor is opened again on what was saved, so
    nothing typed is lost; saved again unchanged, or refused MAX_OPENINGS
    times, the edit is given up.
    """
    with private_dir("edit") as d:
        file = d / name.replace("/", "-")
        fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(original)
        refused: bytes | None = None
        for opened in range(1, MAX_OPENINGS + 1):
            edited = _run_once(name, file)
            problem = None if refuse is None else refuse(edited)
            if problem is None:
                return edited
            # An editor run by a script may save the same mistake forever.
            if edited == refused or opened == MAX_OPENINGS:
                raise NixsealError(f"{name}: {problem}; not changed")
            print(
                f"nixseal edit: error: {name}: {problem}; opening it again "
                "(save it unchanged to give up)",
                file=sys.stderr,
            )
            refused = edited
        raise AssertionError  # pragma: no cover (the loop's last turn raises)


def _run_once(name: str, file: Path) -> bytes:
    status = run_editor(editor_command(file))
    if status < 0:
        try:
            sig = signal.Signals(-status).name
        except ValueError:
            sig = f"signal {-status}"
        raise NixsealError(f"editor was killed by {sig}; {name} not changed")
    if status != 0:
        raise NixsealError(f"editor exited with status {status}; {name} not changed")
    try:
        return file.read_bytes()
    except OSError as err:
        raise NixsealError(f"editor removed the file; {name} not changed: {err.strerror}") from err
