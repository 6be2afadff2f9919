"""nixseal decrypt NAME: write a secret's value to stdout."""

from __future__ import annotations

import argparse
import sys

from nixseal.repo import Context, decrypt_secret


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="secret name, as in the rules")


def run(args: argparse.Namespace) -> int:
    ctx = Context.from_args(args)
    value = decrypt_secret(ctx, args.name)
    sys.stdout.buffer.write(value)
    sys.stdout.buffer.flush()
    return 0
