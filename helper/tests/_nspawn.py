"""A real systemd for the tests: a Debian guest booted with systemd-nspawn.

The guest's root file system is built once with mmdebstrap and cached under
the repository's ignored ``build/`` folder, in a directory named after a
hash of its recipe (suite, mirror, packages), so changing the recipe builds
a new one. Each boot lays a throw-away overlay (upper layer on a tmpfs) over
the cached root, inside a private mount namespace of its own: nothing the
guest writes, secrets included, reaches a disk or outlives the boot.

The helper reaches the guest read-only: this checkout's ``helper/`` at
``/opt/nixseal/src`` and the test interpreter's site-packages (pyrage,
structlog) at ``/opt/nixseal/site-packages``, run by the guest's own
python3 through ``/opt/nixseal/bin/nixseal``. Evaluate hosts with
``pkgsArgs.nixsealOutPath = GUEST_PACKAGE`` so their units call it.
``/nix/store`` in the guest is a directory the test fills (see
``_units.GuestStore``).

Commands run in the guest through ``nsenter`` into its init process (the
host has no systemd-machined, so ``machinectl``/``systemd-run -M`` are not
used); they see the guest's file system, its systemd and its users.

    with Guest(setup=lambda root: ...) as guest:   # root: the overlay, before boot
        guest.run(["systemctl", "is-active", "nixseal-install.service"])

Skip tests with ``needs_nspawn`` (root, systemd-nspawn and mmdebstrap).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sysconfig
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

import pytest
from conftest import HELPER_DIR, IS_ROOT_NS, REPO_ROOT, write_launcher

CACHE = REPO_ROOT / "build" / "nspawn"
GUEST_PACKAGE = "/opt/nixseal"  # the nixseal "package" as the guest sees it
GUEST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# dbus and libpam-systemd: logind, which starts lingering users' systemd.
PACKAGES = ("systemd", "systemd-sysv", "dbus", "libpam-systemd", "python3")
SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"


def _mirror() -> str:
    """The Debian mirror apt uses on this machine (deb822 or one-line sources)."""
    sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for path in sources:
        if not path.is_file() or path.suffix not in {"", ".list", ".sources"}:
            continue
        text = path.read_text(errors="replace")
        for uri in re.findall(r"^URIs:\s*(\S+)", text, re.M) + re.findall(
            r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+\S+", text, re.M
        ):
            if re.search(r"/debian/?$", uri):
                return uri.rstrip("/")
    return DEFAULT_MIRROR


def recipe() -> dict[str, object]:
    return {"suite": SUITE, "mirror": _mirror(), "variant": "minbase", "packages": PACKAGES}


def _missing() -> str | None:
    if not IS_ROOT_NS:
        return "needs root and unshare --mount"
    for tool in ("systemd-nspawn", "mmdebstrap", "nsenter", "systemd-analyze"):
        if shutil.which(tool) is None:
            return f"needs {tool} (helper/scripts/setup installs it on Debian)"
    return None


NSPAWN_MISSING = _missing()
needs_nspawn = pytest.mark.skipif(NSPAWN_MISSING is not None, reason=f"{NSPAWN_MISSING}")


def debian_root() -> Path:
    """The cached guest root for the current recipe, built on first use."""
    spec = recipe()
    key = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]
    root = CACHE / f"debian-{key}"
    if (root / "usr/lib/systemd/systemd").exists():
        return root
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / "build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two test runs build it once
        if (root / "usr/lib/systemd/systemd").exists():
            return root
        partial = Path(tempfile.mkdtemp(prefix=f"{root.name}.", dir=CACHE))
        partial.rmdir()  # mmdebstrap wants to create it
        cmd = [
            "mmdebstrap",
            "--mode=root",
            f"--variant={spec['variant']}",
            "--include=" + ",".join(PACKAGES),
            SUITE,
            str(partial),
            f"deb {spec['mirror']} {SUITE} main",
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            shutil.rmtree(partial, ignore_errors=True)
            raise RuntimeError(f"mmdebstrap failed:\n{proc.stderr[-3000:]}")
        partial.rename(root)
    return root


# Runs in the private mount namespace: the overlay, then the guest.
_BOOT = r"""
set -e
mount -t tmpfs -o mode=0755 nixseal-guest "$1"
mkdir "$1/upper" "$1/work" "$1/root"
mount -t overlay overlay -o "lowerdir=$2,upperdir=$1/upper,workdir=$1/work" "$1/root"
echo ready
read -r go
shift 2
exec systemd-nspawn "$@"
"""


class Guest:
    """One booted guest. setup(root) prepares its file system before boot."""

    def __init__(
        self,
        setup: Callable[[Path], None] | None = None,
        binds: dict[str, str] | None = None,
        timeout: float = 60,
    ) -> None:
        self.setup = setup
        self.binds = binds or {}
        self.timeout = timeout
        self.proc: subprocess.Popen[str] | None = None
        self.leader = 0
        self.scratch = Path(tempfile.mkdtemp(prefix="nixseal-guest-"))
        self.console = self.scratch / "console.log"

    # -- life cycle ----------------------------------------------------------

    def __enter__(self) -> Guest:
        try:
            self.boot()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def root(self) -> Path:
        """The guest's root as the host sees it (valid while it runs)."""
        return Path(f"/proc/{self.leader}/root")

    def boot(self) -> None:
        lower = debian_root()
        mnt = self.scratch / "mnt"
        mnt.mkdir()
        site = Path(sysconfig.get_paths()["purelib"])
        binds = {
            str(HELPER_DIR): f"{GUEST_PACKAGE}/src",
            str(site): f"{GUEST_PACKAGE}/site-packages",
            **self.binds,
        }
        nspawn = [
            *("-D", str(mnt / "root"), "--boot", "--register=no", "--keep-unit", "-q"),
            *("--console=pipe", "--private-network", "--machine=nixseal-guest"),
            *(f"--bind-ro={src}:{dest}" for src, dest in binds.items()),
        ]
        console = self.console.open("w")
        self.proc = subprocess.Popen(
            [
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                _BOOT,
                "sh",
                str(mnt),
                str(lower),
                *nspawn,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=console,
            text=True,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        assert self.proc.stdout.readline().strip() == "ready", self.console.read_text()
        # The overlay, seen through the namespace's first process, before boot.
        staged = Path(f"/proc/{self.proc.pid}/root") / str(mnt / "root").lstrip("/")
        _install_wrapper(staged)
        if self.setup is not None:
            self.setup(staged)
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        self.leader = self._find_leader()
        # Until init has exec'd systemd (and its bus is up), systemctl says "offline".
        deadline = time.monotonic() + self.timeout
        while True:
            state = self.run(["systemctl", "is-system-running", "--wait"], timeout=self.timeout)
            if state.stdout.strip() in {"running", "degraded"}:
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"guest did not boot: {state.stdout}{state.stderr}")
            time.sleep(0.1)

    def _find_leader(self) -> int:
        assert self.proc is not None
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"nspawn exited: {self.console.read_text()}")
            for pid in _descendants(self.proc.pid):
                try:
                    status = Path(f"/proc/{pid}/status").read_text()
                except OSError:
                    continue
                nspid = re.search(r"^NSpid:\s*(.*)$", status, re.M)
                inner = nspid.group(1).split() if nspid else []
                comm = Path(f"/proc/{pid}/comm").read_text().strip()
                if len(inner) > 1 and inner[-1] == "1" and comm == "systemd":
                    return pid
            time.sleep(0.05)
        raise AssertionError("no init process in the guest")

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            if self.leader:
                self.run(["systemctl", "poweroff", "--no-block"], timeout=10)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.scratch, ignore_errors=True)

    # -- inside the guest ---------------------------------------------------------

    def run(
        self,
        argv: list[str],
        *,
        user: str | None = None,
        env: dict[str, str] | None = None,
        check: bool = False,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        """argv in the guest (as root, or as user through setpriv), with a clean environment."""
        base = {"PATH": GUEST_PATH, "LANG": "C.UTF-8", "SYSTEMD_PAGER": "", **(env or {})}
        inner = ["env", "-i", *(f"{k}={v}" for k, v in base.items()), *argv]
        if user is not None:
            ids = [self._id(flag, user) for flag in ("-u", "-g")]
            inner = ["setpriv", f"--reuid={ids[0]}", f"--regid={ids[1]}", "--init-groups", *inner]
        cmd = ["nsenter", "-t", str(self.leader), "-a", "-r", "-w", *inner]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise AssertionError(
                f"{argv} in the guest: {proc.returncode}\n{proc.stdout}{proc.stderr}"
            )
        return proc

    def _id(self, flag: str, user: str) -> str:
        cmd = ["nsenter", "-t", str(self.leader), "-a", "-r", "-w", "id", flag, user]
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()

    def systemctl(self, *args: str) -> str:
        return self.run(["systemctl", "--no-pager", *args], check=True).stdout

    def show(self, unit: str, *props: str, user: str | None = None) -> dict[str, str]:
        scope = ["--user"] if user else []
        env = {"XDG_RUNTIME_DIR": f"/run/user/{self.uid(user)}"} if user else None
        out = self.run(
            ["systemctl", *scope, "show", unit, *(f"--property={p}" for p in props)],
            user=user,
            env=env,
            check=True,
        ).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def uid(self, user: str | None) -> int:
        return int(self.run(["id", "-u", user or "root"], check=True).stdout)

    def journal(self, unit: str) -> str:
        return self.run(["journalctl", "-b", "-o", "cat", "-u", unit, "--no-pager"]).stdout

    def wait_until(self, what: str, probe: Callable[[], bool], timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not probe():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            time.sleep(0.1)


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                kids = [int(k) for k in (task / "children").read_text().split()]
            except OSError:
                continue
            found += kids
            todo += kids
    return found


def _install_wrapper(root: Path) -> None:
    """/opt/nixseal/bin/nixseal and libexec/nixseal-install: the guest's python3
    on the bound helper, the launcher made from the package's template."""
    bin_dir = root / GUEST_PACKAGE.lstrip("/") / "bin"
    bin_dir.mkdir(parents=True)
    for sub in ("src", "site-packages"):
        (bin_dir.parent / sub).mkdir()
    exe = bin_dir / "nixseal"
    exe.write_text(
        "#!/bin/sh\n"
        f"export PYTHONPATH={GUEST_PACKAGE}/src:{GUEST_PACKAGE}/site-packages\n"
        'exec /usr/bin/python3 -m nixseal "$@"\n'
    )
    exe.chmod(0o755)
    site = f"{GUEST_PACKAGE}/site-packages"
    launcher = bin_dir.parent / "libexec/nixseal-install"
    write_launcher(launcher, "/usr/bin/python3", f"{GUEST_PACKAGE}/src", site)


def write_file(path: Path, text: str | bytes, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, str):
        path.write_text(text)
    else:
        path.write_bytes(text)
    path.chmod(mode)


def chown(path: Path, uid: int, gid: int) -> None:
    os.chown(path, uid, gid)
