"""nixseal decrypt NAME: write a secret's value to stdout."""

from __future__ import annotations

import argparse
import os
import select
import sys

from nixseal.errors import UsageError
from nixseal.repo.context import Context, decrypt_secret

EXAMPLES = """\
examples:
  nixseal decrypt grafana/admin-password
  nixseal -i ~/.ssh/id_ed25519 decrypt db/password | wc -c
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="secret name, as in the rules")


def write_all(value: bytes) -> None:
    """All of value to stdout, or an OSError (BrokenPipeError when the reader left).

    A buffered write may stop short silently when the reader goes away
    mid-value; writing the descriptor directly turns that into an error.
    """
    out = sys.stdout
    if out is None:
        raise UsageError("stdout is closed; redirect it to where the value should go")
    out.flush()
    try:
        fd = out.fileno()
    except (OSError, ValueError):  # not a file descriptor (embedded, tests)
        out.buffer.write(value)
        out.buffer.flush()
        return
    view = memoryview(value)
    while view:
        try:
            written = os.write(fd, view)
        except BlockingIOError:  # stdout left non-blocking by another program
            select.select([], [fd], [])
            continue
        view = view[written:]


def run(args: argparse.Namespace) -> int:
    ctx = Context.from_args(args)
    value = decrypt_secret(ctx, args.name)
    write_all(value)
    return 0
