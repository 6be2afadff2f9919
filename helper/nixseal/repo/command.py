"""Command generators: a script of the repository makes a secret's value.

The script runs in a fresh 0700 directory on a memory file system (the one
`edit` uses), removed when it exits, on error and on SIGINT, SIGTERM or
SIGHUP. The directory holds ``inputs/<secret>`` (the values of the secrets
it is made from, decrypted for it alone, and ``inputs/<secret>.pub`` where
that secret has a public half) and an empty ``out/`` where the script
writes one file per declared output. Values typed at the prompts reach it
on stdin, one line each in declared order: stdin is the script's alone,
whereas the environment is inherited by every process it starts. What it
prints (stdout and stderr) is shown on nixseal's stderr when it exits, so
that nixseal's own stdout stays the public halves it prints.

Nothing is kept unless the script exits 0 having written exactly the
declared outputs, each a regular file.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import termios
from collections.abc import Mapping
from pathlib import Path

from nixseal.errors import NixsealError, UsageError
from nixseal.models.repo import Generator
from nixseal.repo.edit import cleanup_on_signals, private_dir
from nixseal.repo.rules import Rules
from nixseal.util.paths import display_path
from nixseal.util.readfile import AGE_FILE_LIMIT, read_regular


def script_path(rules: Rules, name: str, gen: Generator) -> Path:
    """The script, checked to be an executable file inside the rules dir."""
    assert gen.command is not None
    given = rules.dir / gen.command
    path = given.resolve()
    where = f'{display_path(rules.path)}: [secrets."{name}"] generator.command'
    if not path.is_relative_to(rules.dir):
        raise NixsealError(f"{where}: {gen.command} leads outside {display_path(rules.dir)}")
    if not path.is_file():
        raise NixsealError(f"{where}: no file {display_path(given)}")
    if not os.access(path, os.X_OK):
        raise NixsealError(
            f"{where}: {display_path(given)} is not executable; chmod +x it (and give it a #! line)"
        )
    return path


def ask(question: str) -> str:
    """One line typed at the terminal, not echoed."""
    try:
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError as err:
        raise UsageError(
            f"{question}: a prompt needs a terminal, and there is none; run rotate in one"
        ) from err
    with os.fdopen(fd, "r+b", buffering=0) as tty:
        old = termios.tcgetattr(fd)
        quiet = termios.tcgetattr(fd)
        quiet[3] &= ~(termios.ECHO | termios.ECHONL)
        tty.write(f"{question}: ".encode())
        termios.tcsetattr(fd, termios.TCSAFLUSH, quiet)
        line = b""
        try:
            while not line.endswith(b"\n"):
                chunk = os.read(fd, 4096)
                if not chunk:
                    break
                line += chunk
        finally:
            termios.tcsetattr(fd, termios.TCSAFLUSH, old)
            tty.write(b"\n")
    if not line:
        raise UsageError(f"{question}: nothing typed (end of input)")
    try:
        return line.removesuffix(b"\n").decode()
    except UnicodeDecodeError as err:
        raise UsageError(f"{question}: what was typed is not UTF-8") from err


def _put(directory: Path, name: str, data: bytes) -> None:
    file = directory / name
    file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def run(
    rules: Rules,
    name: str,
    gen: Generator,
    *,
    inputs: Mapping[str, bytes],
    public_inputs: Mapping[str, bytes],
    answers: Mapping[str, str],
) -> dict[str, bytes]:
    """Each declared output of the script, by name; raises, keeping
    nothing, when the script fails or writes other files than declared."""
    script = script_path(rules, name, gen)
    label = str(gen.command)  # rotate names the secret
    with cleanup_on_signals(), private_dir("gen") as d:
        (d / "inputs").mkdir(mode=0o700)
        out = d / "out"
        out.mkdir(mode=0o700)
        for i, value in inputs.items():
            _put(d / "inputs", i, value)
        for i, value in public_inputs.items():
            _put(d / "inputs", f"{i}.pub", value)
        env = dict(
            os.environ,
            NIXSEAL_SECRET=name,
            NIXSEAL_INPUTS=str(d / "inputs"),
            NIXSEAL_OUT=str(out),
            NIXSEAL_REPO=str(rules.dir),
            TMPDIR=str(d),  # any scratch file of the script stays in memory too
        )
        stdin = "".join(f"{answers[p]}\n" for p in gen.prompts).encode()
        try:
            proc = subprocess.run(
                [str(script)],
                cwd=d,
                env=env,
                input=stdin,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                check=False,
            )
        except OSError as err:
            raise NixsealError(f"{label}: cannot run: {err.strerror}") from err
        if proc.stdout:
            sys.stderr.write(proc.stdout.decode(errors="replace"))
            sys.stderr.flush()
        if proc.returncode < 0:
            try:
                sig = signal.Signals(-proc.returncode).name
            except ValueError:
                sig = f"signal {-proc.returncode}"
            raise NixsealError(f"{label}: killed by {sig}; nothing written, the old value is kept")
        if proc.returncode != 0:
            raise NixsealError(
                f"{label}: exited with status {proc.returncode}; nothing written, "
                "the old value is kept"
            )
        return _collect(label, out, gen)


def _collect(label: str, out: Path, gen: Generator) -> dict[str, bytes]:
    written = sorted(p.name for p in out.iterdir())
    extra = [w for w in written if w not in gen.outputs]
    if extra:
        raise NixsealError(
            f"{label}: wrote undeclared output {extra[0]!r} (outputs are "
            f"{', '.join(gen.outputs)}); nothing written, the old value is kept"
        )
    missing = [o for o in gen.outputs if o not in written]
    if missing:
        raise NixsealError(
            f"{label}: did not write output {missing[0]!r}; nothing written, the old value is kept"
        )
    values: dict[str, bytes] = {}
    for o in gen.outputs:
        if not stat.S_ISREG((out / o).lstat().st_mode):
            raise NixsealError(
                f"{label}: output {o!r} is not a regular file; nothing written, "
                "the old value is kept"
            )
        try:
            values[o] = read_regular(out / o, AGE_FILE_LIMIT)
        except OSError as err:
            raise NixsealError(
                f"{label}: cannot read output {o!r}: {err.strerror}; nothing written, "
                "the old value is kept"
            ) from err
        if o in gen.public:
            try:
                values[o].decode()
            except UnicodeDecodeError as err:
                raise NixsealError(
                    f"{label}: public output {o!r} is not UTF-8 text; nothing written, "
                    "the old value is kept"
                ) from err
    return values
