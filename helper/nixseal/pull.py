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

from nixseal import crypto, log, op
from nixseal.errors import NixsealError, OpError, UsageError
from nixseal.readfile import AGE_FILE_LIMIT, read_regular
from nixseal.repo import Context, encrypt_secret
from nixseal.rules import display_path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "names", nargs="*", metavar="NAME", help="only these secrets (default: all with a source)"
    )


class CurrentValues:
    """The decrypted current value of secrets, when the admin can decrypt them.

    Identities are loaded on first need; if that fails (no key here, op
    signed out for an op:// identity) comparison is given up for the run,
    with one note, and every value is written.
    """

    def __init__(
        self, ctx: Context, without: str = "writing every value, keeping the recorded ages"
    ) -> None:
        self.ctx = ctx
        self.usable = True
        self.without = without  # what the run does when values cannot be compared
        self.reason = ""

    def get(self, name: str) -> bytes | None:
        if not self.usable:
            return None
        path = self.ctx.rules.file_for(name)
        try:
            data = read_regular(path, AGE_FILE_LIMIT)
        except OSError:
            return None
        try:
            identities = self.ctx.identities()
        except NixsealError as err:
            self.usable = False
            self.reason = str(err)
            print(f"note: cannot decrypt current values ({err}); {self.without}", file=sys.stderr)
            return None
        try:
            return crypto.decrypt(data, identities, display_path(path))
        except NixsealError:
            return None  # not readable by this admin (or corrupt): write it anew


def read_source(ref: str) -> bytes:
    value = op.read(ref)
    if not value:
        raise OpError(f"op read {ref}: the field is empty; set it in 1Password")
    return value


def is_sign_in_failure(err: NixsealError) -> bool:
    return isinstance(err, OpError) and (
        op.SIGN_IN_HINT in str(err) or "`op` is not on PATH" in str(err)
    )


def selected(ctx: Context, names: list[str]) -> list[str]:
    rules = ctx.rules
    if not names:
        return sorted(n for n, r in rules.secrets.items() if r.source)
    chosen = list(dict.fromkeys(names))
    without = [n for n in chosen if rules.secret(n).source is None]
    if without:
        raise UsageError(
            f"{', '.join(without)}: no source in {display_path(rules.path)}; "
            'add source = "op://vault/item/field" to the secret, or use `nixseal rotate`'
        )
    return chosen


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
            ref = ctx.rules.secret(name).source
            assert ref is not None
            try:
                value = read_source(ref)
                old = current.get(name)
                if old == value:
                    unchanged.append(name)
                    logger.debug("unchanged", secret=name)
                    continue
                # A file that could not be compared may hold this very value:
                # keep its recorded age rather than vouch for a new one.
                compared = old is not None or not ctx.rules.file_for(name).exists()
                encrypt_secret(ctx, name, value, new_value=compared, save=False)
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
