"""nixseal rotate NAME...: give secrets new values and record when
(nixseal.repo.rotate). Prints the public half of each generated key
pair; one failing secret does not stop the others, but a secret made from
one that failed is not tried.
"""

from __future__ import annotations

import argparse
import sys

from nixseal.errors import NixsealError
from nixseal.repo.context import Context
from nixseal.repo.rotate import due_reason, needs_op, rotate_one, selected
from nixseal.repo.sources import CurrentValues, is_sign_in_failure
from nixseal.util import log
from nixseal.util.paths import display_path

EXAMPLES = """\
examples:
  nixseal rotate db/password
  nixseal rotate --due
  nixseal rotate grafana/admin-password --push
  nixseal rotate --with-dependents pki/ca
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
    parser.add_argument(
        "--with-dependents",
        action="store_true",
        help="also rotate every secret made from those named (inputs, a CA, a password), "
        "inputs first",
    )


def _report(ctx: Context, name: str, reason: str | None, public: str | None) -> None:
    file = display_path(ctx.rules.file_for(name))
    logger = log.get_logger()
    if reason is not None:
        logger.info("rotated", secret=name, file=file, reason=reason)
    else:
        logger.info("rotated", secret=name, file=file)
    if public is not None and "\n" in public:  # a certificate
        print(f"{name}: {display_path(ctx.rules.dir / f'{name}.pub')}")
    elif public is not None:
        print(f"{name}: {public}")


def run(args: argparse.Namespace) -> int:
    ctx = Context.from_args(args)
    names = selected(ctx, args.names, args.due, args.push, args.with_dependents)
    current = CurrentValues(ctx, without="1Password sources cannot be rotated in this run")
    failed: list[str] = []
    skipped: list[str] = []  # needed op after op turned out unusable
    blocked: list[str] = []  # made from a secret that failed
    bad: set[str] = set()
    op_unusable = False
    done = 0
    try:
        for name in names:
            if op_unusable and needs_op(ctx.rules.secret(name), args.push):
                skipped.append(name)
                continue
            if any(ctx.rules.maker(i) in bad for i in ctx.rules.derived_from(name)):
                blocked.append(name)
                bad.add(name)
                continue
            reason = due_reason(ctx, name)
            try:
                public = rotate_one(ctx, name, args.push, current)
            except NixsealError as err:
                failed.append(f"{name}: {err}")
                bad.add(name)
                op_unusable = op_unusable or is_sign_in_failure(err)
                continue
            done += 1
            _report(ctx, name, reason, public)
    finally:
        # Rotations done before a failure or Ctrl-C stay recorded.
        ctx.state.save()
    if blocked:
        failed.append(f"not tried, as a secret they are made from failed: {', '.join(blocked)}")
    if skipped:
        failed.append(f"not tried, as op is not usable: {', '.join(skipped)}")
    for msg in failed:
        print(f"nixseal rotate: error: {msg}", file=sys.stderr)
    summary = f"rotated {done} of {len(names)} secrets"
    if done < len(names):
        summary += f", {len(names) - done} failed"
    print(summary, file=sys.stderr)
    return 1 if done < len(names) else 0
