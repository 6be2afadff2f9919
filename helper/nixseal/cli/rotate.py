"""nixseal rotate NAME...: give secrets new values and record when
(nixseal.repo.rotate). Prints the public half of each generated key
pair; one failing secret does not stop the others.
"""

from __future__ import annotations

import argparse
import sys

from nixseal.errors import NixsealError
from nixseal.repo.context import Context
from nixseal.repo.rotate import needs_op, rotate_one, selected
from nixseal.repo.sources import CurrentValues, is_sign_in_failure
from nixseal.util import log
from nixseal.util.paths import display_path

EXAMPLES = """\
examples:
  nixseal rotate db/password
  nixseal rotate --due
  nixseal rotate grafana/admin-password --push
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="*", metavar="NAME", help="secrets to rotate")
    parser.add_argument(
        "--due",
        action="store_true",
        help="also rotate every secret whose rotate_after has passed (or never rotated)",
    )
    parser.add_argument(
        "--push",
        action="store_true",
        help='write generated values to 1Password too (the secret\'s push = "op://...")',
    )


def run(args: argparse.Namespace) -> int:
    ctx = Context.from_args(args)
    names = selected(ctx, args.names, args.due, args.push)
    logger = log.get_logger()
    current = CurrentValues(ctx, without="1Password sources cannot be rotated in this run")
    failed: list[str] = []
    skipped: list[str] = []  # needed op after op turned out unusable
    op_unusable = False
    done = 0
    try:
        for name in names:
            if op_unusable and needs_op(ctx.rules.secret(name), args.push):
                skipped.append(name)
                continue
            try:
                public = rotate_one(ctx, name, args.push, current)
            except NixsealError as err:
                failed.append(f"{name}: {err}")
                op_unusable = op_unusable or is_sign_in_failure(err)
                continue
            done += 1
            logger.info("rotated", secret=name, file=display_path(ctx.rules.file_for(name)))
            if public is not None:
                print(f"{name}: {public}")
    finally:
        # Rotations done before a failure or Ctrl-C stay recorded.
        ctx.state.save()
    if skipped:
        failed.append(f"not tried, as op is not usable: {', '.join(skipped)}")
    for msg in failed:
        print(f"nixseal rotate: error: {msg}", file=sys.stderr)
    summary = f"rotated {done} of {len(names)} secrets"
    if done < len(names):
        summary += f", {len(names) - done} failed"
    print(summary, file=sys.stderr)
    return 1 if done < len(names) else 0
