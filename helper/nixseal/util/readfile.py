"""Reading a file that must be a regular file of bounded size.

A path named as an identity, an age file or a manifest may turn out to be
a FIFO (open() waits for a writer that may never come), a device that
never ends (/dev/zero, /dev/urandom), a socket, or a huge file. One such
path must not hang every install or grow it until the kernel kills it:
the file is opened without blocking, checked with fstat, and read up to
its cap. What is refused is an OSError whose strerror says why, so the
callers' `cannot read ...: <strerror>` messages need no case of their own.
"""

from __future__ import annotations

import errno
import os
import stat

KIB = 1 << 10
MIB = 1 << 20
# Generous for every real use, small enough that a mistake cannot exhaust
# memory: an age file holds one secret (1,000 of them may be read at once),
# an identity file a few keys.
AGE_FILE_LIMIT = 64 * MIB
IDENTITY_LIMIT = 1 * MIB
MANIFEST_LIMIT = 64 * MIB
TEXT_LIMIT = 16 * MIB  # rules, state and account files, public key files

_KINDS = (
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISDIR, "a directory"),
)
_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


def read_regular(path: str | os.PathLike[str], limit: int) -> bytes:
    """The bytes of the regular file at path (links followed), at most limit of them."""
    try:
        fd = os.open(path, _FLAGS)
    except OSError as err:
        if err.errno == errno.ENXIO:  # a socket, or a device with nothing behind it
            _refuse_special(path, os.stat(path).st_mode)  # noqa: PTH116 (no Path on the boot path)
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            _refuse_special(path, st.st_mode)
        if st.st_size > limit:
            _refuse_size(path, limit)
        chunks = []
        total = 0
        # st_size + 1 in one read: the whole file and the end in two calls.
        # The cap is checked on what is read, not only on st_size: files
        # under /proc and /sys say 0 or 4096 whatever they hold.
        while chunk := os.read(fd, min(limit + 1 - total, max(st.st_size + 1, 64 * KIB))):
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:
                _refuse_size(path, limit)
    finally:
        os.close(fd)
    return b"".join(chunks)


def _refuse_special(path: str | os.PathLike[str], mode: int) -> None:
    kind = next((word for test, word in _KINDS if test(mode)), "not a file")
    raise OSError(errno.EINVAL, f"not a regular file ({kind})", os.fspath(path))


def _refuse_size(path: str | os.PathLike[str], limit: int) -> None:
    size = f"{limit // MIB} MiB" if limit >= MIB else f"{limit // KIB} KiB"
    raise OSError(errno.EFBIG, f"larger than {size}", os.fspath(path))
