"""Generations on disk: the mount, the lock, generation directories, the switch.

Layout under the mount point (ramfs, so plaintext never reaches a disk)::

    <mountPoint>/<N>/...     generation N: the secrets and rendered templates
    <mountPoint>/<N>.json    generation N's record: entries, units, pending restarts
    <mountPoint>.lock        serializes runs (flock)
    <symlinkPath> -> <mountPoint>/<N>

A generation is complete once its record is written; it becomes live only
through one rename() of a symlink, so a run killed at any instant leaves
symlinkPath at a complete generation, and the next run removes whatever a
killed run left half-built. Symlink targets are relative, computed between
physical directories: they resolve the same on the host and inside a
``--root`` directory.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import stat
from pathlib import Path
from typing import Any

from nixseal.errors import NixsealError

# Test-only fault injection: with NIXSEAL_FAILPOINT=k the process kills
# itself (SIGKILL, no cleanup) just before its k-th filesystem change, so
# tests can prove crash safety at every step. Unset in real use.
_FAILPOINT = int(os.environ.get("NIXSEAL_FAILPOINT", "0") or 0)
_steps = 0

DIR_MODE = 0o751  # others may traverse to their own file; only `keys` may list
MS_NOSUID = 2
MS_NODEV = 4


def step() -> None:
    global _steps  # noqa: PLW0603 (a process-wide counter is the point)
    _steps += 1
    if _steps == _FAILPOINT:
        import signal  # test-only path: keep it off the import time of every boot

        os.kill(os.getpid(), signal.SIGKILL)


class GenerationError(NixsealError):
    """The generation store cannot be used (mount, lock, switch)."""


def lock(mount_point: Path) -> int:
    """Take the install lock (blocking); it is held until the process exits."""
    path = mount_point.with_name(mount_point.name + ".lock")
    make_dirs(path.parent, 0o755)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
    except OSError as err:
        raise GenerationError(f"{path}: cannot lock: {err.strerror}") from err
    return fd


def make_dirs(path: Path, mode: int, gid: int | None = None) -> None:
    """mkdir -p; directories it creates get mode (and root:gid when gid is given)."""
    if path.is_dir():
        return
    make_dirs(path.parent, mode, gid)
    step()
    try:
        path.mkdir(mode)
    except FileExistsError:
        return
    except OSError as err:
        raise GenerationError(f"{path}: cannot create directory: {err.strerror}") from err
    path.chmod(mode)  # the umask must not narrow it
    if gid is not None:
        os.chown(path, 0, gid)


def ensure_dir_mode(path: Path, mode: int, gid: int | None) -> None:
    """Give an existing directory mode (and root:gid when gid is given), if it lacks them."""
    st = path.lstat()
    if stat.S_IMODE(st.st_mode) == mode and (gid is None or (st.st_uid, st.st_gid) == (0, gid)):
        return
    step()
    try:
        if gid is not None:
            os.chown(path, 0, gid)
        path.chmod(mode)
    except OSError as err:
        raise GenerationError(f"{path}: cannot set owner and mode: {err.strerror}") from err


def ensure_mounted(mount_point: Path, use_tmpfs: bool, gid: int) -> bool:
    """Mount ramfs (or tmpfs) at mount_point unless something is mounted there.

    Returns True when this call mounted it.
    """
    make_dirs(mount_point, DIR_MODE, gid)
    if mount_point.is_mount():
        return False
    import ctypes

    fstype = b"tmpfs" if use_tmpfs else b"ramfs"
    libc = ctypes.CDLL(None, use_errno=True)
    step()
    rc = libc.mount(b"none", bytes(mount_point), fstype, MS_NOSUID | MS_NODEV, b"mode=0751")
    if rc != 0:
        reason = os.strerror(ctypes.get_errno())
        raise GenerationError(f"{mount_point}: cannot mount {fstype.decode()}: {reason}")
    mount_point.chmod(DIR_MODE)
    os.chown(mount_point, 0, gid)
    return True


def current(symlink: Path, mount_point: Path) -> int | None:
    """The generation symlink points at, or None (first boot, or not ours).

    The generation is looked up under mount_point, not through the link:
    another tool's absolute link (sops-nix: /run/secrets.d/N) must mean the
    same under --root as on the host.
    """
    try:
        target = symlink.readlink()
    except OSError:
        return None
    if not target.name.isdigit() or not (mount_point / target.name).is_dir():
        return None
    return int(target.name)


def numbers(mount_point: Path) -> list[int]:
    """Generation numbers present (complete or not) under mount_point."""
    try:
        names = [p.name for p in mount_point.iterdir()]
    except FileNotFoundError:
        return []
    return sorted({int(stem) for n in names if (stem := n.removesuffix(".json")).isdigit()})


def remove_temporary(mount_point: Path) -> None:
    """Delete records a killed run left half-written."""
    with contextlib.suppress(FileNotFoundError):
        for path in mount_point.glob("*.json.tmp"):
            step()
            path.unlink(missing_ok=True)


def remove(mount_point: Path, number: int) -> None:
    """Delete generation number (directory and record); missing parts are fine."""
    step()
    (mount_point / f"{number}.json").unlink(missing_ok=True)
    _rmtree(mount_point / str(number))


def _rmtree(path: Path) -> None:
    try:
        entries = list(os.scandir(path))
    except FileNotFoundError:
        return
    except NotADirectoryError:
        path.unlink()
        return
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            _rmtree(Path(entry.path))
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)  # noqa: PTH108 (a Path per file costs ~10 us, x1,000)
    with contextlib.suppress(FileNotFoundError):
        path.rmdir()


def write_file(path: Path, data: bytes, uid: int | None, gid: int | None, mode: int) -> None:
    """Create path holding data, never readable beyond uid/gid/mode.

    Created with no permissions at all, then chowned and chmodded, then
    written: at no instant can anyone else open it. The caller's generation
    directory is not live yet, so the file needs no rename of its own.
    """
    step()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0)
    try:
        if uid is not None and gid is not None:
            os.fchown(fd, uid, gid)
        os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    except BaseException:
        # Not a truncated value in the generation: the caller keeps the
        # previous one in its place (which needs the name free).
        with contextlib.suppress(OSError):
            os.unlink(path)  # noqa: PTH108
        raise
    finally:
        os.close(fd)


def same_owner_mode(path: Path, uid: int | None, gid: int | None, mode: int) -> bool:
    try:
        st = path.lstat()
    except OSError:
        return False
    if not stat.S_ISREG(st.st_mode) or stat.S_IMODE(st.st_mode) != mode:
        return False
    return uid is None or (st.st_uid, st.st_gid) == (uid, gid)


def link(old: Path, new: Path) -> bool:
    """Hard-link a file of the previous generation into the new one.

    Files are never modified in place, so generations may share them.
    False when that is impossible (the old file is gone).
    """
    step()
    try:
        new.hardlink_to(old)
    except OSError:
        return False
    return True


def read_record(mount_point: Path, number: int) -> dict[str, Any] | None:
    try:
        record = json.loads((mount_point / f"{number}.json").read_bytes())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def write_record(mount_point: Path, number: int, record: dict[str, Any]) -> None:
    """Write generation number's record atomically (root-only: it names units)."""
    path = mount_point / f"{number}.json"
    tmp = path.with_name(path.name + ".tmp")
    step()
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    # json.dumps, not json.dump: only the one-shot form uses the C encoder
    # (json.dump to a file is pure Python, ~10x slower for 1,000 entries).
    with os.fdopen(fd, "wb") as f:
        f.write(json.dumps(record, separators=(",", ":")).encode())
    step()
    tmp.replace(path)


def relative_target(link_path: Path, anchor: Path, tail: str) -> Path:
    """The target anchor/tail, relative to link_path's physical directory.

    anchor is resolved physically; tail is kept as written, so a target that
    goes through symlinkPath keeps following it to the live generation.
    """
    link_dir = os.path.realpath(link_path.parent)
    anchor_dir = os.path.join(os.path.realpath(anchor.parent), anchor.name)  # noqa: PTH118
    return Path(os.path.relpath(anchor_dir, link_dir), tail)


def place_symlink(link_path: Path, anchor: Path, tail: str) -> None:
    """Make link_path a symlink to anchor/tail, replacing an old link atomically.

    An empty directory in the way (left by hand, or by another tool) is
    removed; anything else in the way is an error, never deleted.
    """
    rel = relative_target(link_path, anchor, tail)
    tmp = link_path.with_name(link_path.name + ".nixseal-tmp")
    tmp.unlink(missing_ok=True)  # left by a killed run
    with contextlib.suppress(OSError):
        if link_path.readlink() == rel:
            return
    if link_path.is_dir() and not link_path.is_symlink():
        step()
        try:
            link_path.rmdir()
        except OSError as err:
            raise GenerationError(f"{link_path}: a directory is in the way; move it") from err
    elif link_path.exists() and not link_path.is_symlink():
        raise GenerationError(f"{link_path}: a file is in the way; move it")
    step()
    try:
        tmp.symlink_to(rel)
        step()
        tmp.replace(link_path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise GenerationError(f"{link_path}: cannot place symlink: {err.strerror}") from err


def is_link_to(link_path: Path, anchor: Path, tail: str) -> bool:
    """Whether link_path is the symlink place_symlink(link_path, anchor, tail) makes."""
    try:
        return link_path.readlink() == relative_target(link_path, anchor, tail)
    except OSError:
        return False


def remove_symlink(link_path: Path, anchor: Path, tail: str) -> None:
    """Remove link_path if it still is our link to anchor/tail (never a user's file)."""
    if not is_link_to(link_path, anchor, tail):
        return
    step()
    link_path.unlink(missing_ok=True)
