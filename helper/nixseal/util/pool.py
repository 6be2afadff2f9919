"""Per-file crypto spread over forked worker processes, results in order.

pyrage holds the GIL while it decrypts, so threads cannot overlap two
files; processes can. The workers are forked once the keys are loaded
(pyrage keys cannot be pickled, and a fork needs no second key read or
prompt). Worker k computes items k, k+W, k+2W... and sends each result
back over its own pipe: plaintext crosses a pipe, in memory, and never
touches a disk. The caller consumes results in item order and does all
file-system work and logging itself, in one thread, so ownership,
atomicity and log order are what they are without a pool.

Any pool failure (a worker dies, a pipe breaks, a frame is malformed)
ends the pool, and the remaining items are computed in the calling
process: a dying worker costs time, never a result. A per-item error
(the function raised NixsealError) is sent back as its message and
handed to the caller like a result, so it fails that item alone.
"""

from __future__ import annotations

import contextlib
import os
import signal
import struct
from collections.abc import Callable, Iterator, Sequence
from typing import Any, BinaryIO, Generic, TypeVar

from nixseal.errors import NixsealError

T = TypeVar("T")

MAX_WORKERS = 8
# Frame: kind, item index, payload length; then the payload.
_HEADER = struct.Struct("!cIQ")
_VALUE, _ERROR = b"v", b"e"
# No legitimate result comes near this; a bigger length means a corrupt frame.
_MAX_PAYLOAD = 1 << 32

# Fault injection for the tests, never set in real use (as
# safepath.failpoint): called in the worker with the number (1-based) of
# each item it computed, before sending it, so a test can kill the worker.
failpoint: Callable[[int], None] | None = None


def cpus() -> int:
    """CPUs this process may run on (a unit's CPUAffinity counts, not the host's)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def workers_for(count: int, per_worker: int, identities: Sequence[Any] = ()) -> int:
    """How many workers count items deserve; 1 means: compute them in this process.

    Each worker must get at least per_worker items to repay its fork.
    Plugin identities (hardware keys) may ask for a PIN or a touch: one
    process must talk to the user, so they are never spread.
    """
    if not hasattr(os, "fork") or any(getattr(i, "kind", "") == "plugin" for i in identities):
        return 1
    return max(1, min(cpus(), MAX_WORKERS, count // max(1, per_worker)))


class PoolFailure(Exception):
    """The pool cannot deliver a result; the caller's process takes over."""


class OrderedMap(Generic[T]):
    """fn over items, in order, by `workers` forked processes (1: in this one).

    Iterating yields, per item, fn(item) (bytes) or the NixsealError it
    raised. Use it as a context manager, so workers are reaped even when
    the caller stops early. on_failure(reason) is told once if the pool
    breaks and this process finishes the work.
    """

    def __init__(
        self,
        fn: Callable[[T], bytes],
        items: Sequence[T],
        workers: int,
        on_failure: Callable[[str], None] | None = None,
    ) -> None:
        self.fn = fn
        self.items = items
        self.on_failure = on_failure
        self._next = 0
        self._pids: list[int] = []
        self._pipes: list[BinaryIO] = []
        if workers > 1 and len(items) > 1:
            self._start(min(workers, len(items)))

    def __enter__(self) -> OrderedMap[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[bytes | NixsealError]:
        return self

    def __next__(self) -> bytes | NixsealError:
        i = self._next
        if i >= len(self.items):
            self.close()
            raise StopIteration
        self._next += 1
        if self._pipes:
            try:
                return self._receive(i)
            except PoolFailure as err:
                self.close()
                if self.on_failure is not None:
                    self.on_failure(str(err))
        return self._compute(self.items[i])

    def _compute(self, item: T) -> bytes | NixsealError:
        try:
            return self.fn(item)
        except NixsealError as err:
            return err

    # -- the parent's side --------------------------------------------------

    def _start(self, workers: int) -> None:
        for k in range(workers):
            read_fd, write_fd = os.pipe()
            pid = os.fork()
            if pid == 0:  # the child: never returns
                self._work(k, workers, write_fd)
            os.close(write_fd)
            self._pids.append(pid)
            self._pipes.append(os.fdopen(read_fd, "rb"))

    def _receive(self, i: int) -> bytes | NixsealError:
        pipe = self._pipes[i % len(self._pipes)]
        try:
            header = pipe.read(_HEADER.size)
            if len(header) < _HEADER.size:
                raise PoolFailure(f"worker {i % len(self._pipes)} ended early (item {i + 1})")
            kind, index, length = _HEADER.unpack(header)
            if index != i or kind not in (_VALUE, _ERROR) or length > _MAX_PAYLOAD:
                raise PoolFailure(f"malformed result from a worker (item {i + 1})")
            payload = pipe.read(length)
        except OSError as err:
            raise PoolFailure(f"cannot read from a worker: {err.strerror}") from err
        if len(payload) < length:
            raise PoolFailure(f"worker {i % len(self._pipes)} ended early (item {i + 1})")
        return payload if kind == _VALUE else NixsealError(payload.decode(errors="replace"))

    def close(self) -> None:
        """Stop and reap every worker; idempotent."""
        for pid in self._pids:
            # Not reaped yet, so the pid cannot belong to another process.
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for pid in self._pids:
            os.waitpid(pid, 0)
        for pipe in self._pipes:
            pipe.close()
        self._pids, self._pipes = [], []

    # -- the worker's side --------------------------------------------------

    def _work(self, k: int, workers: int, out: int) -> None:
        """Compute items k, k+workers, ... and send them; never returns.

        Always os._exit: a forked child must not run the parent's cleanup
        (atexit, flushing the parent's buffered output, finally blocks up
        the stack), and must never print: a traceback is no place for
        anything near a value.
        """
        code = 1
        try:
            # Keep only the result pipe. The install lock, the other workers'
            # pipes and every file the parent has open stay the parent's, so
            # its lock ends when it ends and a pipe reaches EOF when its
            # writer dies; stdio goes to /dev/null, so a worker can print
            # nothing, and whoever reads the parent's output does not wait
            # for workers.
            null = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            os.closerange(3, out)
            os.closerange(out + 1, 1 << 20)
            for i in range(k, len(self.items), workers):
                try:
                    kind, payload = _VALUE, self.fn(self.items[i])
                except NixsealError as err:
                    kind, payload = _ERROR, str(err).encode()
                if failpoint is not None:
                    failpoint(i + 1)
                _send(out, kind, i, payload)
            code = 0
        finally:
            os._exit(code)


def _send(fd: int, kind: bytes, index: int, payload: bytes) -> None:
    view = memoryview(_HEADER.pack(kind, index, len(payload)) + payload)
    while view:
        view = view[os.write(fd, view) :]
