"""Generations on disk: the mount, the lock, generation directories, the switch.

Layout under the mount point (ramfs, or a RAM disk on macOS, so plaintext
never reaches a disk)::

    <mountPoint>/<N>/...     generation N: the secrets and rendered templates
    <mountPoint>/<N>.json    generation N's record (nixseal.engine.record), root-only
    <mountPoint>/.<N>.handed generation N's pending units were handed over (empty)
    <mountPoint>/status.json what the last run did, for `nixseal status` (engine.status)
    <mountPoint>.lock        serializes runs (flock)
    <symlinkPath> -> <mountPoint>/<N>

A generation is complete once its record is written; it becomes live only
through one rename() of a symlink, so a run killed at any instant leaves
symlinkPath at a complete generation, and the next run removes whatever a
killed run left half-built. Symlink targets are relative, computed between
physical directories: they resolve the same on the host and inside a
``--root`` directory.

Everything here works through directory descriptors (nixseal.util.safepath):
the mount point and the parents of symlinkPath and of the lock are opened
by the safe walk, and everything inside the mount point relative to its
descriptor, never following a symlink. Removing a generation removes a
symlink found in its place, never what it points to.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat

from nixseal.errors import Blocked, GenerationError, NixsealError
from nixseal.util.lean import suppress
from nixseal.util.safepath import (
    Dir,
    names,
    open_dir,
    place_symlink,
    relative,
    remove_tree,
    step,
)

DIR_MODE = 0o751  # others may traverse to their own file; only `keys` may list
USER_DISK_MODE = 0o700  # a user's own RAM disk on macOS: everything in it is theirs
MS_NOSUID = 2
MS_NODEV = 4
RECORD_LIMIT = 256 << 20
_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _split(path: str) -> tuple[str, str]:
    parent, _, name = path.rpartition("/")
    return parent or "/", name


def _parent(root: Dir, path: str, shown: str) -> Dir:
    """path's parent directory (made 0755 when missing), by the safe walk."""
    parent, _ = _split(path)
    try:
        return open_dir(root, parent, {os.geteuid()}, create=0o755)
    except NixsealError as err:
        raise GenerationError(str(err)) from err
    except OSError as err:
        raise GenerationError(f"{shown}: cannot create directory: {err.strerror}") from err


def lock(root: Dir, mount_point: str, shown: str) -> int:
    """Take the install lock (blocking); it is held until the process exits."""
    where = f"{shown}.lock"
    with _parent(root, mount_point + ".lock", where) as parent:
        name = _split(mount_point)[1] + ".lock"
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            fd = os.open(name, flags, 0o600, dir_fd=parent.fd)
        except OSError as err:
            why = "a symlink is in the way; remove it" if err.errno == errno.ELOOP else err.strerror
            raise GenerationError(f"{where}: cannot lock: {why}") from err
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise GenerationError(f"{where}: cannot lock: not a regular file; remove it")
        fcntl.flock(fd, fcntl.LOCK_EX)
    except OSError as err:
        os.close(fd)
        raise GenerationError(f"{where}: cannot lock: {err.strerror}") from err
    except BaseException:
        os.close(fd)
        raise
    return fd


class Store:
    """The mount point, open: the generations and their records."""

    def __init__(self, parent: Dir, name: str, shown: str) -> None:
        self.parent = parent
        self.name = name
        self.shown = shown  # the path as the user gives it (with --root), for messages
        self.path = f"{parent.path.rstrip('/')}/{name}"  # physical
        self.dir = Dir(-1, self.path, 0)

    @classmethod
    def open(cls, root: Dir, mount_point: str, shown: str, gid: int | None) -> Store:
        """The mount point, made (root:gid, 0751) when missing."""
        store = cls(_parent(root, mount_point, shown), _split(mount_point)[1], shown)
        store._open(create=True, gid=gid)
        return store

    @classmethod
    def existing(cls, root: Dir, mount_point: str, shown: str) -> Store | None:
        """The mount point if it exists, changing nothing (dry runs)."""
        parent, name = _split(mount_point)
        try:
            d = open_dir(root, parent, {os.geteuid()})
        except (NixsealError, OSError):
            return None
        store = cls(d, name, shown)
        try:
            store._open(create=False, gid=None)
        except (GenerationError, FileNotFoundError):
            store.close()
            return None
        return store

    def _open(self, create: bool, gid: int | None) -> None:
        st = self.parent.lstat(self.name)
        if st is None and create:
            step()
            try:
                os.mkdir(self.name, DIR_MODE, dir_fd=self.parent.fd)
            except FileExistsError:
                pass
            except OSError as err:
                raise GenerationError(
                    f"{self.shown}: cannot create directory: {err.strerror}"
                ) from err
        try:
            fd = os.open(self.name, _DIR, dir_fd=self.parent.fd)
        except OSError as err:
            if err.errno in (errno.ELOOP, errno.ENOTDIR) and self.parent.readlink(self.name):
                raise GenerationError(f"{self.shown}: a symlink is in the way; remove it") from err
            if err.errno == errno.ENOENT and not create:
                raise
            raise GenerationError(f"{self.shown}: cannot open: {err.strerror}") from err
        self.dir.close()
        self.dir = Dir(fd, self.path, os.fstat(fd).st_uid)

    def close(self) -> None:
        self.dir.close()
        self.parent.close()

    # -- the mount and the directory's owner ------------------------------------

    def mount(self, use_tmpfs: bool, gid: int, darwin: bool = False) -> bool:
        """Mount ramfs (or tmpfs; on macOS a RAM disk) here unless something is
        mounted; True if this did."""
        here, above = os.fstat(self.dir.fd), os.fstat(self.parent.fd)
        if here.st_dev != above.st_dev or here.st_ino == above.st_ino:
            return False
        if darwin:
            from nixseal.engine.darwin import mount_ram_disk

            step()
            # By path: macOS has no /proc/self/fd to name the descriptor
            # (the path is physical, its parents reached by the safe walk).
            mount_ram_disk(self.path, self.shown)
            self._open(create=False, gid=None)
            self.ensure_mode(gid)
            return True
        import ctypes

        fstype = b"tmpfs" if use_tmpfs else b"ramfs"
        libc = ctypes.CDLL(None, use_errno=True)
        step()
        # Through the descriptor: the directory checked is the one mounted on.
        target = f"/proc/self/fd/{self.dir.fd}".encode()
        rc = libc.mount(b"none", target, fstype, MS_NOSUID | MS_NODEV, b"mode=0751")
        if rc != 0:
            reason = os.strerror(ctypes.get_errno())
            raise GenerationError(f"{self.shown}: cannot mount {fstype.decode()}: {reason}")
        self._open(create=False, gid=None)  # the mounted file system's root now
        self.ensure_mode(gid)
        return True

    def user_ram_disk(self, make: bool) -> None:
        """macOS user mode: the mount point is a RAM disk of this user's, made
        unless make is False, or an error before anything is written.

        A file system already mounted here is reused only when it is one
        (nixseal.engine.darwin.foreign); else nothing is written at all: the
        plaintext would go to a disk or to a volume another user controls.
        """
        from nixseal.engine import darwin

        uid, gid, name = darwin.account()
        here, above = os.fstat(self.dir.fd), os.fstat(self.parent.fd)
        found = darwin.listed(self.path, self.shown)
        if found is not None:
            why = darwin.foreign(*found, name, self.shown)
            if why is not None:
                raise GenerationError(
                    f"{self.shown}: refusing the file system mounted here: {why}; "
                    "unmount it or set nixseal.mountPoint elsewhere"
                )
        elif here.st_dev != above.st_dev:
            raise GenerationError(
                f"{self.shown}: refusing the file system mounted here: mount does not list "
                "it; unmount it or set nixseal.mountPoint elsewhere"
            )
        elif not make:
            raise GenerationError(
                f"{self.shown}: no RAM disk is mounted here and --no-mount was given: "
                "on macOS per-user secrets are written to a RAM disk only"
            )
        else:
            step()
            device = darwin.mount_user_ram_disk(self.path, uid, gid, name, self.shown)
            try:
                self._open(create=False, gid=None)  # the new volume's root
                self._own_top(uid)
            except GenerationError:
                darwin.detach(device)
                raise
            return
        self._own_top(uid)

    def _own_top(self, uid: int) -> None:
        if os.fstat(self.dir.fd).st_uid != uid:
            raise GenerationError(
                f"{self.shown}: refusing the file system mounted here: its top directory "
                "is another user's; unmount it or set nixseal.mountPoint elsewhere"
            )
        self.ensure_mode(None, USER_DISK_MODE)

    def ensure_mode(self, gid: int | None, mode: int = DIR_MODE) -> None:
        """root:gid (when given) and mode: also when it exists, as a killed run may
        have left it between mkdir and chown, and nothing else would fix that."""
        st = os.fstat(self.dir.fd)
        if stat.S_IMODE(st.st_mode) == mode and (gid is None or (st.st_uid, st.st_gid) == (0, gid)):
            return
        step()
        try:
            if gid is not None:
                os.fchown(self.dir.fd, 0, gid)
            os.fchmod(self.dir.fd, mode)
        except OSError as err:
            raise GenerationError(
                f"{self.shown}: cannot set owner and mode: {err.strerror}"
            ) from err

    # -- generations ----------------------------------------------------------------

    def numbers(self) -> list[int]:
        """Generation numbers present (complete or not)."""
        found = set()
        for name in names(self.dir):
            stem = name.split(".", 1)[0]
            if stem.isdigit() and name in (stem, f"{stem}.json"):
                found.add(int(stem))
        return sorted(found)

    def is_generation(self, number: int) -> bool:
        st = self.dir.lstat(str(number))
        return st is not None and stat.S_ISDIR(st.st_mode)

    def remove_temporary(self) -> None:
        """Delete records a killed run left half-written."""
        for name in names(self.dir):
            if name.endswith(".json.tmp"):
                remove_tree(self.dir, name)

    def remove(self, number: int) -> None:
        """Delete generation number (directory, record, mark); missing parts are fine."""
        for name in (f"{number}.json", _handed(number), str(number)):
            remove_tree(self.dir, name)

    def old(self, number: int) -> OldGeneration | None:
        """Generation number for reading, if it is a directory of ours."""
        try:
            fd = os.open(str(number), _DIR, dir_fd=self.dir.fd)
        except OSError:
            return None
        if os.fstat(fd).st_uid != os.geteuid():
            os.close(fd)  # someone else's: nothing in it is taken back
            return None
        return OldGeneration(Dir(fd, f"{self.path}/{number}", os.geteuid()))

    def new(self, number: int, gid: int | None) -> NewGeneration:
        step()
        try:
            os.mkdir(str(number), DIR_MODE, dir_fd=self.dir.fd)
            fd = os.open(str(number), _DIR, dir_fd=self.dir.fd)
        except OSError as err:
            raise GenerationError(
                f"{self.shown}/{number}: cannot create directory: {err.strerror}"
            ) from err
        _secure_dir(fd, gid)
        return NewGeneration(Dir(fd, f"{self.path}/{number}", 0), gid, self.shown)

    # -- records --------------------------------------------------------------------

    def read_record(self, number: int) -> bytes | None:
        """Generation number's record, if only this user could have written it."""
        try:
            fd = os.open(f"{number}.json", _FILE, dir_fd=self.dir.fd)
        except OSError:
            return None
        try:
            st = os.fstat(fd)
            ours = st.st_uid == os.geteuid() and not st.st_mode & 0o077
            if not stat.S_ISREG(st.st_mode) or not ours or st.st_size > RECORD_LIMIT:
                return None
            return _read_all(fd, st.st_size)
        except OSError:
            return None
        finally:
            os.close(fd)

    def reserve_record(self, number: int, size: int) -> int:
        """Room for a record of up to size bytes, taken before any secret is written.

        On a full tmpfs the entries that do not fit fail one by one; the
        record, written into this room (and shrunk), always fits, so the
        switch happens. The descriptor is write_record's.
        """
        name = f"{number}.json.tmp"
        step()
        try:
            fd = os.open(
                name,
                os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                0o600,
                dir_fd=self.dir.fd,
            )
        except OSError as err:
            raise GenerationError(f"{self.shown}/{name}: cannot create: {err.strerror}") from err
        try:
            _write_all(fd, b" " * size)
        except OSError as err:
            os.close(fd)
            with suppress(OSError):
                os.unlink(name, dir_fd=self.dir.fd)
            why = err.strerror
            raise GenerationError(
                f"{self.shown}: no room for generation {number}'s record ({size} bytes): {why}; "
                "nothing was switched"
            ) from err
        return fd

    def write_record(self, number: int, fd: int, data: bytes) -> None:
        """Write the record into its reserved room, then rename it into place."""
        try:
            os.lseek(fd, 0, os.SEEK_SET)
            _write_all(fd, data)
            os.ftruncate(fd, len(data))
        finally:
            os.close(fd)
        step()
        os.rename(
            f"{number}.json.tmp", f"{number}.json", src_dir_fd=self.dir.fd, dst_dir_fd=self.dir.fd
        )

    def write_status(self, data: bytes) -> None:
        """Replace status.json by rename: a reader sees the last run's or the one before."""
        tmp = "status.json.tmp"  # a killed run's is cleared with the records' (remove_temporary)
        step()
        with suppress(FileNotFoundError):
            os.unlink(tmp, dir_fd=self.dir.fd)
        fd = os.open(
            tmp,
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
            0o600,
            dir_fd=self.dir.fd,
        )
        try:
            _write_all(fd, data)
        except OSError:
            os.close(fd)
            with suppress(OSError):
                os.unlink(tmp, dir_fd=self.dir.fd)
            raise
        os.close(fd)
        os.rename(tmp, "status.json", src_dir_fd=self.dir.fd, dst_dir_fd=self.dir.fd)

    def remove_status(self) -> None:
        with suppress(OSError):
            os.unlink("status.json", dir_fd=self.dir.fd)

    def handed(self, number: int) -> bool:
        return self.dir.lstat(_handed(number)) is not None

    def mark_handed(self, number: int) -> None:
        """The units of generation number were handed over: an empty file says so
        (it needs no space, and the record itself is never rewritten)."""
        step()
        with suppress(FileExistsError):
            fd = os.open(
                _handed(number),
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                0o600,
                dir_fd=self.dir.fd,
            )
            os.close(fd)


def _handed(number: int) -> str:
    # A dot file: `ls /run/secrets.d` shows the generations and records only.
    return f".{number}.handed"


def _secure_dir(fd: int, gid: int | None) -> None:
    os.fchmod(fd, DIR_MODE)  # the umask must not narrow it
    if gid is not None:
        os.fchown(fd, 0, gid)


def _read_all(fd: int, size: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, max(size + 1, 1 << 16)):
        chunks.append(chunk)
    return b"".join(chunks)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class OldGeneration:
    """A previous generation, read through descriptors: no symlink inside is followed."""

    def __init__(self, d: Dir) -> None:
        self.dir = d
        self._dirs: dict[str, int | None] = {"": d.fd}

    def close(self) -> None:
        for rel, fd in self._dirs.items():
            if rel and fd is not None:
                os.close(fd)
        self._dirs = {}
        self.dir.close()

    def parent_fd(self, rel: str) -> tuple[int | None, str]:
        """(descriptor of rel's directory, rel's last part)."""
        head, _, name = rel.rpartition("/")
        if head not in self._dirs:
            up, part = self.parent_fd(head)
            fd = None
            if up is not None:
                with suppress(OSError):
                    fd = os.open(part, _DIR, dir_fd=up)
            self._dirs[head] = fd
        return self._dirs[head], name

    def open(self, rel: str) -> tuple[int, os.stat_result] | None:
        """rel as an open regular file and its stat, or None."""
        up, name = self.parent_fd(rel)
        if up is None:
            return None
        try:
            fd = os.open(name, _FILE, dir_fd=up)
        except OSError:
            return None
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            return None
        return fd, st

    def read(self, rel: str, limit: int) -> tuple[bytes | None, os.stat_result] | None:
        """(rel's bytes, or None when it holds more than limit; its stat), or None
        when rel is not a regular file."""
        opened = self.open(rel)
        if opened is None:
            return None
        fd, st = opened
        try:
            if st.st_size > limit:
                return None, st
            # One read of a regular file returns all it has, up to the count;
            # one byte more than fstat said: it is being written right now.
            data = os.read(fd, st.st_size + 1)
            if len(data) > st.st_size:
                return None, st
        except OSError:
            return None
        finally:
            os.close(fd)
        return data, st


class NewGeneration:
    """The generation being built: ours alone (lock held, not live yet)."""

    def __init__(self, d: Dir, gid: int | None, shown: str) -> None:
        self.dir = d
        self.gid = gid
        self.shown = shown
        self._dirs: dict[str, int] = {"": d.fd}

    def close(self) -> None:
        for rel, fd in self._dirs.items():
            if rel:
                os.close(fd)
        self._dirs = {}
        self.dir.close()

    def parent_fd(self, rel: str) -> tuple[int, str]:
        """(descriptor of rel's directory, made root:keys 0751 if missing; rel's last part)."""
        head, _, name = rel.rpartition("/")
        if head not in self._dirs:
            up, part = self.parent_fd(head)
            step()
            try:
                with suppress(FileExistsError):
                    os.mkdir(part, DIR_MODE, dir_fd=up)
                fd = os.open(part, _DIR, dir_fd=up)
            except OSError as err:
                raise GenerationError(
                    f"{self.dir.path}/{head}: cannot create directory: {err.strerror}"
                ) from err
            _secure_dir(fd, self.gid)
            self._dirs[head] = fd
        return self._dirs[head], name

    def write(self, rel: str, data: bytes, uid: int | None, gid: int | None, mode: int) -> None:
        """Create rel holding data, never readable beyond uid/gid/mode.

        Created with no permissions at all, then chowned and chmodded, then
        written: at no instant can anyone else open it. The generation is
        not live yet, so the file needs no rename of its own. A write that
        fails (a full tmpfs) leaves no file: the caller keeps the previous one.
        """
        up, name = self.parent_fd(rel)
        step()
        fd = os.open(
            name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0, dir_fd=up
        )
        try:
            if uid is not None and gid is not None:
                os.fchown(fd, uid, gid)
            os.fchmod(fd, mode)
            _write_all(fd, data)
        except BaseException:
            with suppress(OSError):
                os.unlink(name, dir_fd=up)
            raise
        finally:
            os.close(fd)

    def link(self, old: OldGeneration, old_rel: str, rel: str) -> bool:
        """Hard-link old_rel of the previous generation here as rel (files are
        never modified in place, so generations may share them). False when
        impossible."""
        src, src_name = old.parent_fd(old_rel)
        if src is None:
            return False
        dst, name = self.parent_fd(rel)
        step()
        try:
            os.link(src_name, name, src_dir_fd=src, dst_dir_fd=dst, follow_symlinks=False)
        except OSError:
            return False
        return True


def current(root: Dir, symlink_path: str, store: Store) -> int | None:
    """The generation symlinkPath points at, or None (first boot, or not ours).

    The generation is looked up in the store, not through the link: another
    tool's absolute link (sops-nix: /run/secrets.d/N) must mean the same
    under --root as on the host.
    """
    parent, name = _split(symlink_path)
    try:
        d = open_dir(root, parent, {os.geteuid()})
    except (NixsealError, OSError):
        return None
    with d:
        target = d.readlink(name)
    if target is None:
        return None
    last = target.rstrip("/").rpartition("/")[2]
    if not last.isdigit() or not store.is_generation(int(last)):
        return None
    return int(last)


def switch(root: Dir, symlink_path: str, shown: str, store: Store, number: int) -> None:
    """symlinkPath -> the store's generation number, by one rename()."""
    with _parent(root, symlink_path, shown) as parent:
        target = f"{relative(parent.path, store.path)}/{number}"
        try:
            place_symlink(parent, _split(symlink_path)[1], target)
        except Blocked as err:
            raise GenerationError(str(err)) from err
