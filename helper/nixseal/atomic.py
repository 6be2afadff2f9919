"""Replacing a file so that readers see the old version or the new one."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomic(path: Path, data: bytes, mode: int = 0o644, *, durable: bool = True) -> None:
    """Write data to a temp file beside path, fsync, then rename over path.

    The temp file sits in the same directory so the rename never crosses a
    file system; a crash leaves at worst a stray ``.<name>.*.tmp`` file.
    durable=False skips the fsync: for batches that call os.sync() once at
    the end (readers still see the old file or the new one, never a mix).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        tmp.chmod(mode)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
