"""Path operations under directories that someone else might write.

Every directory nixseal works in (the parents of custom paths, of
symlinkPath and of the mount point, the lock's directory) is reached one
component at a time through directory descriptors, never by handing the
kernel a whole path: what was checked is what is used, whatever is renamed
meanwhile. Each component is checked as systemd-tmpfiles does:

- it is owned by root or by a trusted uid (the secret's owner); once the
  walk has entered a directory (or followed a symlink) of a uid other than
  root, every later component must be that uid's: a user's symlink may
  lead within the user's own files, never back into root's (an "unsafe
  transition");
- a directory writable by group or others must have the sticky bit;
- symlinks are followed only under those rules, at most 40 of them, and
  with --root an absolute one starts again at the root, never at the host's.

The walk returns an open Dir with its physical path (for messages, and for
the relative targets of the links made there). Operations inside a Dir go
through its descriptor (``dir_fd=``), never through a symlink.
"""

from __future__ import annotations

import errno
import os
import stat

from nixseal.errors import Blocked, UnsafePath
from nixseal.util.lean import suppress

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Collection

# Fault injection for the tests, never set in real use: called with the
# number of each filesystem change just before it is made, so a test can
# kill the process there (SIGKILL, no cleanup) and prove crash safety at
# every step. A hook set by the caller, not read from the environment: the
# shipped program has no switch that makes it kill itself.
failpoint: Callable[[int], None] | None = None
_steps = 0

MAX_SYMLINKS = 40  # as the kernel's own limit (ELOOP)
_RETRIES = 20  # a component that keeps changing between lstat and open
ANY_OWNER = None  # trusted=ANY_OWNER: any owner, still no unsafe transition
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def step() -> None:
    """Called before every file-system change (the failpoint counts them)."""
    global _steps  # noqa: PLW0603 (a process-wide counter is the point)
    _steps += 1
    if failpoint is not None:
        failpoint(_steps)


class Dir:
    """An open directory and the physical path it was reached by."""

    __slots__ = ("fd", "path", "uid")

    def __init__(self, fd: int, path: str, uid: int) -> None:
        self.fd = fd
        self.path = path
        self.uid = uid

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Dir:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def lstat(self, name: str) -> os.stat_result | None:
        try:
            return os.stat(name, dir_fd=self.fd, follow_symlinks=False)
        except FileNotFoundError:
            return None

    def readlink(self, name: str) -> str | None:
        try:
            return os.readlink(name, dir_fd=self.fd)
        except OSError:
            return None


def _join(base: str, name: str) -> str:
    return f"{base.rstrip('/')}/{name}"


class _Walk:
    """One walk: the trust rules, the chain's owner so far, the directories."""

    def __init__(
        self, trusted: Collection[int] | None, who: str, create: int | None, gid: int | None
    ) -> None:
        self.trusted = None if trusted is None else {0, *trusted}
        self.who = who
        self.create = create
        self.gid = gid
        self.chain_uid = 0  # the first non-root owner met; 0 while all is root's
        self.links = 0
        self.stack: list[Dir] = []  # stack[0] is the floor: ".." and "/" stop there
        self.todo: list[str] = []

    def admit(self, uid: int, where: str, what: str) -> None:
        if self.trusted is not None and uid not in self.trusted:
            raise UnsafePath(f"{where}: owned by uid {uid}, not by {self.who}; refusing to use it")
        if self.chain_uid and uid != self.chain_uid:
            raise UnsafePath(
                f"{where}: a {what} that leads from uid {self.chain_uid}'s directory to uid "
                f"{uid}'s; refusing to follow it"
            )
        if uid:
            self.chain_uid = uid

    def check_dir(self, st: os.stat_result, where: str) -> None:
        self.admit(st.st_uid, where, "directory")
        mode = stat.S_IMODE(st.st_mode)
        if mode & 0o022 and not mode & stat.S_ISVTX:
            raise UnsafePath(
                f"{where}: writable by others (mode {mode:04o}) without the sticky bit; "
                "refusing to use it"
            )

    def walk(self, start: Dir, parts: list[str]) -> Dir:
        """Walk parts from start, the floor (the walk's to close)."""
        self.stack = [start]
        self.todo = list(reversed(parts))
        try:
            while self.todo:
                name = self.todo.pop()
                if name in ("", "."):
                    continue
                if name == "..":
                    if len(self.stack) > 1:
                        self.stack.pop().close()
                        self.admit(self.stack[-1].uid, self.stack[-1].path, "directory")
                    continue
                found = self._enter(self.stack[-1], name)
                if found is not None:
                    self.stack.append(found)
                    if len(self.stack) == _DEEP:
                        _more_descriptors()
            return self.stack.pop()
        finally:
            for d in self.stack:
                d.close()

    def _enter(self, here: Dir, name: str) -> Dir | None:
        """here/name as an open Dir; None for a symlink, whose target is queued."""
        where = _join(here.path, name)
        for _ in range(_RETRIES):
            st = here.lstat(name)
            if st is None:
                made = self._make(here, name, where)
                if made is not None:
                    return made
                continue
            if stat.S_ISLNK(st.st_mode):
                self._follow(here, name, where, st.st_uid)
                return None
            if not stat.S_ISDIR(st.st_mode):
                raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), where)
            try:
                fd = os.open(name, _DIR, dir_fd=here.fd)
            except OSError as err:
                if err.errno in (errno.ELOOP, errno.ENOTDIR, errno.ENOENT):
                    continue  # swapped since the lstat: look again
                raise
            return self._checked(fd, where)
        raise UnsafePath(f"{where}: keeps changing while it is looked at; refusing to use it")

    def _checked(self, fd: int, where: str) -> Dir:
        opened = os.fstat(fd)
        try:
            self.check_dir(opened, where)
        except BaseException:
            os.close(fd)
            raise
        return Dir(fd, where, opened.st_uid)

    def _make(self, here: Dir, name: str, where: str) -> Dir | None:
        """A missing directory, made (None: someone made it meanwhile)."""
        if self.create is None:
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), where)
        step()
        try:
            os.mkdir(name, self.create, dir_fd=here.fd)
        except FileExistsError:
            return None
        fd = os.open(name, _DIR, dir_fd=here.fd)
        os.fchmod(fd, self.create)  # the umask must not narrow it
        # In a user's directory, what is made is the user's (as the rest of the chain).
        os.fchown(fd, self.chain_uid or -1, -1 if self.gid is None else self.gid)
        return self._checked(fd, where)

    def _follow(self, here: Dir, name: str, where: str, uid: int) -> None:
        self.admit(uid, where, "symlink")
        self.links += 1
        target = here.readlink(name)
        if self.links > MAX_SYMLINKS or target is None:
            raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), where)
        if target.startswith("/"):  # start again at the floor (the root's /)
            while len(self.stack) > 1:
                self.stack.pop().close()
            self.admit(self.stack[0].uid, self.stack[0].path, "symlink")
        self.todo.extend(reversed(target.split("/")))


# A walk holds a descriptor per level, and a path may be deeper than the
# usual soft limit of 1,024 open files. At this depth (no real path is as
# deep) the soft limit is raised to the hard one, while descriptors are
# left: importing `resource` needs one itself.
_DEEP = 64


def _more_descriptors() -> None:
    """Raise the soft limit of open files to the hard one (the hard limit
    of a systemd service is far higher than the soft one)."""
    import resource  # only on this rare path: ~0.7 ms at every boot otherwise

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def open_root(path: str | None) -> Dir:
    """The directory every walk starts from: / or --root (resolved as on the host)."""
    top = Dir(os.open("/", _DIR), "/", 0)
    if path is None or path == "/":
        return top
    return _Walk({os.geteuid()}, "root", None, None).walk(top, path.strip("/").split("/"))


def open_dir(
    root: Dir,
    path: str,
    trusted: Collection[int] | None,
    *,
    who: str = "root",
    create: int | None = None,
    gid: int | None = None,
) -> Dir:
    """Open the directory path (absolute, meaning root/path) by the rules above.

    trusted: uids besides root whose directories and symlinks may be used
    (ANY_OWNER: anyone's, still without unsafe transitions); who says whom
    in messages. create: make missing directories with that mode (group gid
    when given). Raises UnsafePath, or OSError.
    """
    start = Dir(os.dup(root.fd), root.path, root.uid)
    return _Walk(trusted, who, create, gid).walk(start, path.split("/"))


def names(d: Dir) -> list[str]:
    """The names in d (a descriptor: pathlib cannot list one)."""
    return os.listdir(d.fd)  # noqa: PTH208


def place_symlink(d: Dir, name: str, target: str) -> None:
    """d/name becomes a symlink to target, replacing an old link atomically.

    An empty directory in the way is removed; anything else in the way is
    an error, never deleted.
    """
    where = _join(d.path, name)
    tmp = f"{name}.nixseal-tmp"
    if d.readlink(name) == target:
        return
    st = d.lstat(name)
    if st is not None and stat.S_ISDIR(st.st_mode):
        step()
        try:
            os.rmdir(name, dir_fd=d.fd)
        except OSError as err:
            raise Blocked(f"{where}: a directory is in the way; move it") from err
    elif st is not None and not stat.S_ISLNK(st.st_mode):
        raise Blocked(f"{where}: a file is in the way; move it")
    with suppress(FileNotFoundError):  # left by a killed run
        step()
        os.unlink(tmp, dir_fd=d.fd)
    try:
        step()
        os.symlink(target, tmp, dir_fd=d.fd)
        step()
        os.rename(tmp, name, src_dir_fd=d.fd, dst_dir_fd=d.fd)
    except OSError as err:
        with suppress(OSError):
            os.unlink(tmp, dir_fd=d.fd)
        raise Blocked(f"{where}: cannot place symlink: {err.strerror}") from err


def remove_symlink(d: Dir, name: str, target: str) -> None:
    """Remove d/name if it still is the symlink to target (never anything else)."""
    if d.readlink(name) != target:
        return
    step()
    with suppress(FileNotFoundError):
        os.unlink(name, dir_fd=d.fd)


def remove_tree(d: Dir, name: str, is_dir: bool | None = None, tries: int = 0) -> None:
    """Remove d/name and everything under it; a symlink is removed, never followed.

    is_dir: what the directory listing said (no lstat needed); None: look.
    """
    if tries > _RETRIES:
        raise UnsafePath(f"{_join(d.path, name)}: keeps changing while it is looked at")
    if is_dir is None:
        st = d.lstat(name)
        if st is None:
            return
        is_dir = stat.S_ISDIR(st.st_mode)
    if not is_dir:
        step()
        try:
            os.unlink(name, dir_fd=d.fd)
        except FileNotFoundError:
            pass
        except IsADirectoryError:  # swapped for a directory since the listing
            remove_tree(d, name, True, tries + 1)
        return
    try:
        fd = os.open(name, _DIR, dir_fd=d.fd)
    except OSError as err:
        if err.errno in (errno.ELOOP, errno.ENOTDIR):  # swapped for a link meanwhile
            remove_tree(d, name, None, tries + 1)
            return
        if err.errno == errno.ENOENT:
            return
        raise
    with Dir(fd, _join(d.path, name), 0) as sub, os.scandir(sub.fd) as listing:
        for entry in listing:  # d_type from the listing: no lstat per file
            remove_tree(sub, entry.name, entry.is_dir(follow_symlinks=False))
    step()
    with suppress(FileNotFoundError):
        os.rmdir(name, dir_fd=d.fd)


def relative(from_dir: str, to: str) -> str:
    """to, relative to the directory from_dir (both physical, absolute)."""
    import posixpath

    return posixpath.relpath(to, from_dir)


def within(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip("/") + "/")
