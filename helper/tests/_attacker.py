"""Another user on the host, racing the install: a forked child that drops
root for an unprivileged uid and repeats an attack in a loop.

The child enters its working directory while still root (the test's
temporary directories are root's, 0700) and then works with relative paths
only, as a local user holding a directory of their own would.
"""

from __future__ import annotations

import contextlib
import os
import select
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

ALICE = 1234  # alice in tests/_activation.py's passwd: a user with a home of her own


@dataclass
class Tally:
    rounds: int = 0  # attack rounds the child completed


@contextlib.contextmanager
def attacker(uid: int, cwd: Path, attack: Callable[[int], None]) -> Iterator[Tally]:
    """attack(round) repeated as uid from cwd while the block runs; rounds counted."""
    tally = Tally()
    stop_r, stop_w = os.pipe()
    count_r, count_w = os.pipe()
    dir_fd = os.open(cwd, os.O_RDONLY | os.O_DIRECTORY)
    pid = os.fork()
    if pid == 0:  # the attacker: never returns into the test runner
        code = 1
        try:
            os.close(stop_w)
            os.close(count_r)
            os.fchdir(dir_fd)
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            rounds = 0
            while not select.select([stop_r], [], [], 0)[0]:
                with contextlib.suppress(OSError):  # a lost race is the normal case
                    attack(rounds)
                rounds += 1
            os.write(count_w, struct.pack("!Q", rounds))
            code = 0
        finally:
            os._exit(code)
    os.close(dir_fd)
    os.close(stop_r)
    os.close(count_w)
    try:
        yield tally
    finally:
        os.close(stop_w)
        _, status = os.waitpid(pid, 0)
        data = os.read(count_r, 8)
        os.close(count_r)
        assert os.waitstatus_to_exitcode(status) == 0, "the attacker failed to run"
        tally.rounds = struct.unpack("!Q", data)[0]


def as_user(uid: int, cwd: Path, action: Callable[[], None]) -> None:
    """Run action once as uid from cwd (in a child), and wait for it."""
    dir_fd = os.open(cwd, os.O_RDONLY | os.O_DIRECTORY)
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.fchdir(dir_fd)
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            action()
            code = 0
        finally:
            os._exit(code)
    os.close(dir_fd)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the action as another user failed"
