"""Giving secrets new values and recording when (`nixseal rotate`).

A secret with a ``generator`` gets a fresh value made in memory (see
nixseal.age.generators); key kinds also write their public half to
``<name>.pub`` beside the ``.age`` file. A secret with a 1Password
``source`` takes the value 1Password holds now, which must differ from the
current one (rotate it in 1Password first). With push, a generated value
is stored in the 1Password field named by the secret's ``push`` reference
before the ``.age`` file changes: if op fails, nothing changed anywhere.
Each rotation is recorded in the state file (``audit`` reports its age
against ``rotate_after``).
"""

from __future__ import annotations

import datetime

from nixseal.age import generators
from nixseal.errors import NixsealError, UsageError
from nixseal.repo.context import Context, encrypt_secret, now
from nixseal.repo.rules import Rules, SecretRule
from nixseal.repo.sources import CurrentValues, read_source
from nixseal.util import op
from nixseal.util.atomic import write_atomic
from nixseal.util.paths import display_path
from nixseal.util.readfile import AGE_FILE_LIMIT, read_regular


def is_due(rule: SecretRule, rotated: datetime.datetime | None, when: datetime.datetime) -> bool:
    if rule.rotate_after is None or (rule.generator is None and rule.source is None):
        return False
    return rotated is None or when - rotated >= rule.rotate_after


def selected(ctx: Context, named: list[str], due: bool, push: bool) -> list[str]:
    """The secrets named, then (with due) every other one whose rotation is due."""
    rules = ctx.rules
    names = rules.select(named, default_all=False)
    # Named secrets must be able to do all that is asked; those picked by
    # --due are pushed when they have somewhere to go.
    check_plan(rules, names, push)
    if due:
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
