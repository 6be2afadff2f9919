"""nixseal rekey [NAME...]: re-encrypt files whose recipients differ from the rules.

The arguments and the report; the work, and how a failure of one file
spares the others, is nixseal.repo.rekey.
"""

from __future__ import annotations

import argparse
import sys

from nixseal.repo.context import Context, create_command
from nixseal.repo.rekey import plan, reencrypt
from nixseal.util.paths import display_path

EXAMPLES = """\
examples:
  nixseal rekey
  nixseal rekey --dry-run
  nixseal rekey grafana/admin-password --force
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="*", metavar="NAME", help="only these secrets")
    parser.add_argument(
        "-f", "--force", action="store_true", help="re-encrypt every file, stale or not"
    )
    parser.add_argument(
        "-n",
        "--dry-run",
        action="store_true",
        help="list what would be re-encrypted and what would fail; write nothing",
    )


def run(args: argparse.Namespace) -> int:
    ctx = Context.from_args(args)
    names = ctx.rules.select(args.names)
    p = plan(ctx, names, args.force)
    for name in p.missing:
        print(
            f"nixseal rekey: error: {display_path(ctx.rules.file_for(name))} is missing; "
            f"nothing to rekey (create it: {create_command(ctx.rules, name)})",
            file=sys.stderr,
        )
    done: list[str] = []
    reencrypt(ctx, p.todo, p.failed, dry_run=args.dry_run, done=done)
    if args.dry_run:
        # stdout: the names a real run would re-encrypt, for scripts.
        for name in done:
            print(name)
    skipped = "would be skipped" if args.dry_run else "skipped"
    for msg in p.failed:
        print(f"nixseal rekey: error: {msg}; {skipped}", file=sys.stderr)
    summary = f"{'would rekey' if args.dry_run else 'rekeyed'} {len(done)} of {len(names)} secrets"
    if p.fresh:
        summary += f", {len(p.fresh)} already up to date"
    if p.failed:
        summary += f", {len(p.failed)} {'would fail' if args.dry_run else 'failed'}"
    if p.missing:
        summary += f", {len(p.missing)} missing"
    print(summary, file=sys.stderr)
    # A missing file is a secret the hosts cannot get: CI must not pass it.
    return 1 if p.failed or p.missing else 0
