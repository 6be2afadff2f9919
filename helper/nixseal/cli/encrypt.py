"""nixseal encrypt NAME [FILE]: set a secret's value from stdin or a file."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nixseal.errors import UsageError
from nixseal.repo.context import Context, encrypt_secret
from nixseal.repo.rules import document_problem
from nixseal.util import log
from nixseal.util.paths import display_path

EXAMPLES = """\
examples:
  printf %s "$TOKEN" | nixseal encrypt ci/token
  nixseal encrypt tls/web1.key web1.key
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="secret name, as in the rules")
    parser.add_argument(
        "file", nargs="?", default="-", help="read the value from FILE (default: stdin)"
    )
    parser.add_argument(
        "--allow-empty", action="store_true", help="accept an empty value instead of failing"
    )


def _read_value(file: str) -> bytes:
    if file == "-":
        if sys.stdin.isatty():
            print("type the value, then Ctrl-D on a line of its own", file=sys.stderr)
        return sys.stdin.buffer.read()
    try:
        return Path(file).read_bytes()
    except OSError as err:
        raise UsageError(f"{file}: cannot read: {err.strerror}") from err


def run(args: argparse.Namespace) -> int:
    ctx = Context.from_args(args)
    fmt = ctx.rules.secret(args.name).format  # an unknown name fails before reading stdin
    value = _read_value(args.file)
    if not value and not args.allow_empty:
        raise UsageError(f"{args.name}: empty value, nothing written (--allow-empty to accept)")
    problem = document_problem(fmt, value) if value else None
    if problem is not None:
        raise UsageError(f"{args.name}: {problem}; nothing written")
    encrypt_secret(ctx, args.name, value, new_value=True)
    log.get_logger().info(
        "encrypted", secret=args.name, file=display_path(ctx.rules.file_for(args.name))
    )
    return 0
