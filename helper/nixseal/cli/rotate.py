"""nixseal rotate NAME...: give secrets new values and record when.

A secret with a ``generator`` gets a fresh value made in memory (see
generators.py); key kinds also write their public half to ``<name>.pub``
beside the ``.age`` file and print it. A secret with a 1Password
``source`` takes the value 1Password holds now, which must differ from the
current one (rotate it in 1Password first). ``--push`` also stores a
generated value in the 1Password field named by the secret's ``push``
reference, before the ``.age`` file changes: if op fails, nothing changed
anywhere. Each rotation is recorded in the state file (``audit`` reports
its age against ``rotate_after``). One failing secret does not stop the
others.
"""

from __future__ import annotations

import argparse
import datetime
import sys

from nixseal.age import generators
from nixseal.errors import NixsealError, UsageError
from nixseal.repo.context import Context, encrypt_secret, now
from nixseal.repo.rules import Rules, SecretRule
from nixseal.repo.sources import CurrentValues, is_sign_in_failure, read_source
from nixseal.util import log, op
from nixseal.util.atomic import write_atomic
from nixseal.util.paths import display_path
from nixseal.util.readfile import AGE_FILE_LIMIT, read_regular


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


def is_due(rule: SecretRule, rotated: datetime.datetime | None, when: datetime.datetime) -> bool:
    if rule.rotate_after is None or (rule.generator is None and rule.source is None):
        return False
    return rotated is None or when - rotated >= rule.rotate_after


def selected(ctx: Context, args: argparse.Namespace) -> list[str]:
    rules = ctx.rules
    names = rules.select(args.names, default_all=False)
    # Named secrets must be able to do all that is asked; those picked by
    # --due are pushed when they have somewhere to go.
    check_plan(rules, names, args.push)
    if args.due:
        when = now()
        names += [
            n
            for n, r in sorted(rules.secrets.items())
            if n not in names and is_due(r, _rotated(ctx, n), when)
        ]
    elif not names:
        raise UsageError("name the secrets to rotate, or pass --due")
    return names


def _rotated(ctx: Context, name: str) -> datetime.datetime | None:
    """When the value was set, if known: a file replaced outside nixseal
    since then has a value of unknown age, which is due (as audit says)."""
    try:
        data: bytes | None = read_regular(ctx.rules.file_for(name), AGE_FILE_LIMIT)
    except OSError:
        data = None
    return None if ctx.state.replaced(name, data) else ctx.state.rotated_at(name)


def check_plan(rules: Rules, names: list[str], push: bool) -> None:
    """Refuse before changing anything when the rules cannot do what is asked."""
    where = display_path(rules.path)
    manual = [n for n in names if rules.secret(n).generator is None and not rules.secret(n).source]
    if manual:
        raise UsageError(
            f"{', '.join(manual)}: no generator or source in {where}; add "
            'generator = "password" (or hex, base64, ssh-ed25519, age) or '
            'source = "op://vault/item/field", or set a value with `nixseal edit`'
        )
    if push:
        unpushable = [
            n for n in names if rules.secret(n).generator is not None and not rules.secret(n).push
        ]
        if unpushable:
            raise UsageError(
                f"--push: {', '.join(unpushable)}: no push reference in {where}; add "
                'push = "op://vault/item/field" to the secret'
            )


def rotate_one(ctx: Context, name: str, push: bool, current: CurrentValues) -> str | None:
    """Rotate one secret; the public half of a generated key pair, if any."""
    rule = ctx.rules.secret(name)
    if rule.generator is not None:
        new = generators.generate(rule.generator, comment=name)
        if push and rule.push:
            op.write(rule.push, new.value)
        encrypt_secret(ctx, name, new.value, new_value=True, save=False)
        if new.public is not None:
            write_atomic(ctx.rules.dir / f"{name}.pub", f"{new.public}\n".encode())
        return new.public
    assert rule.source is not None
    value = read_source(rule.source)
    old = current.get(name)
    path = ctx.rules.file_for(name)
    if old is None and path.exists():
        # Recording a rotation vouches for a new value: without the old one
        # to compare, an unchanged 1Password field would pass for rotated.
        raise NixsealError(
            f"cannot decrypt {display_path(path)} to compare it with {rule.source}, "
            "so a rotation cannot be recorded; run rotate with a key that reads it "
            "(-i or NIXSEAL_IDENTITY), or copy the value without recording a rotation "
            f"with `nixseal pull {name}`"
        )
    if old == value:
        raise NixsealError(
            f"{rule.source} still holds the current value; "
            "change it in 1Password first, then rotate again"
        )
    encrypt_secret(ctx, name, value, new_value=True, save=False)
    return None


def needs_op(rule: SecretRule, push: bool) -> bool:
    return rule.source is not None or (push and rule.push is not None)


def run(args: argparse.Namespace) -> int:
    ctx = Context.from_args(args)
    names = selected(ctx, args)
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
