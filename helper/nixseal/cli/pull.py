"""nixseal pull [NAME...]: read 1Password sources through ``op`` and encrypt them.

Values go from op's stdout pipe into age encryption, in memory only. A file
whose current value already equals 1Password's is left alone (when the
admin's identity can decrypt it; otherwise every value is written), so a
pull that changes nothing changes nothing in git. One reference that fails
is reported and the others proceed; a failed sign-in stops the run, since
every other read would fail the same way.
"""

from __future__ import annotations

import argparse
import sys

from nixseal.errors import NixsealError
from nixseal.repo.context import Context
from nixseal.repo.sources import CurrentValues, is_sign_in_failure, pull_one, selected
from nixseal.util import log
from nixseal.util.paths import display_path

EXAMPLES = """\
examples:
  nixseal pull
  nixseal pull grafana/smtp-password
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "names", nargs="*", metavar="NAME", help="only these secrets (default: all with a source)"
    )


def run(args: argparse.Namespace) -> int:
    ctx = Context.from_args(args)
    names = selected(ctx, args.names)
    logger = log.get_logger()
    if not names:
        print("no secret has a 1Password source; nothing to pull", file=sys.stderr)
        return 0
    current = CurrentValues(ctx)
    written: list[str] = []
    unchanged: list[str] = []
    failed: list[str] = []
    try:
        for i, name in enumerate(names):
            try:
                if not pull_one(ctx, name, current):
                    unchanged.append(name)
                    logger.debug("unchanged", secret=name)
                    continue
            except NixsealError as err:
                failed.append(f"{name}: {err}")
                if is_sign_in_failure(err) and i + 1 < len(names):
                    failed.append(f"{len(names) - i - 1} more not tried: they need op too")
                    break
                continue
            written.append(name)
            logger.info("pulled", secret=name, file=display_path(ctx.rules.file_for(name)))
    finally:
        ctx.state.save()
    for msg in failed:
        print(f"nixseal pull: error: {msg}", file=sys.stderr)
    summary = f"pulled {len(written)} of {len(names)} secrets"
    if unchanged:
        summary += f", {len(unchanged)} unchanged"
    if failed:
        summary += f", {len(names) - len(written) - len(unchanged)} failed"
    print(summary, file=sys.stderr)
    return 1 if failed else 0
