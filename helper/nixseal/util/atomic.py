"""Replacing a file so that readers see the old version or the new one."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from nixseal.errors import NixsealError
from nixseal.util.paths import display_path


def write_atomic(path: Path, data: bytes, mode: int = 0o644, *, durable: bool = True) -> None:
    """Write data to a temp file beside path, fsync, then rename over path.

    The temp file sits in the same directory so the rename never crosses a
    file system; a crash leaves at worst a stray ``.<name>.*.tmp`` file.
    durable=False skips the fsync: for batches that call os.sync() once at
    the end (readers still see the old file or the new one, never a mix).
    An OS error (read-only directory, a directory in the way, a full disk)
    is a NixsealError naming path; path is then unchanged.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as err:
        raise _cannot_write(path, err) from err
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        tmp.chmod(mode)
        tmp.replace(path)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if isinstance(err, OSError):
            raise _cannot_write(path, err) from err
        raise


def _cannot_write(path: Path, err: OSError) -> NixsealError:
    # strerror alone: err's own text names the temp file, not the one meant.
    why = err.strerror or str(err)
    if isinstance(err, FileExistsError):  # from mkdir: a file where a directory must go
        why = "a file is in the way of its directory"
    return NixsealError(f"{display_path(path)}: cannot write: {why}")
