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

A generator may make its value from other secrets (a command's inputs, a
cert's CA, the password of an htpasswd line). The state file records
which input values it was made from; once one of them is rotated, the
secret is due, and ``--with-dependents`` rotates such chains in order,
inputs first. A generator's further outputs go to ``<name>.<output>.age``
and ``<name>.<output>.pub`` (Rules.outputs_of); all of one secret's files
are made in memory before the first is written.
"""

from __future__ import annotations

import datetime
from pathlib import Path

from nixseal.age import generators
from nixseal.errors import NixsealError, UsageError
from nixseal.models.repo import GeneratorKind
from nixseal.repo.context import Context, ciphertext_for, decrypt_secret, now, store_ciphertext
from nixseal.repo.rules import Rules, SecretRule
from nixseal.repo.sources import CurrentValues, read_source
from nixseal.util import op
from nixseal.util.atomic import write_atomic
from nixseal.util.paths import display_path
from nixseal.util.readfile import AGE_FILE_LIMIT, read_regular


def is_due(rule: SecretRule, rotated: datetime.datetime | None, when: datetime.datetime) -> bool:
    if rule.rotate_after is None or not _rotatable(rule):
        return False
    return rotated is None or when - rotated >= rule.rotate_after


def inputs_rotated(ctx: Context, name: str) -> list[str]:
    """The inputs of name's generator rotated since its value was made."""
    maker = ctx.rules.maker(name)
    return ctx.state.inputs_rotated(maker, ctx.rules.derived_from(maker))


def due_reason(ctx: Context, name: str) -> str | None:
    """Why a secret is due because of its inputs, if it is."""
    rotated = inputs_rotated(ctx, name)
    return f"made from {', '.join(rotated)}, rotated since" if rotated else None


def selected(
    ctx: Context, named: list[str], due: bool, push: bool, with_dependents: bool = False
) -> list[str]:
    """The secrets named (for a further output of a generator: the secret
    that makes it), with dependents every secret made from them, then
    (with due) every other one whose rotation is due; inputs first."""
    rules = ctx.rules
    names = list(dict.fromkeys(rules.maker(n) for n in rules.select(named, default_all=False)))
    # Named secrets must be able to do all that is asked; those picked by
    # --due are pushed when they have somewhere to go.
    check_plan(rules, names, push)
    if with_dependents:
        names += [d for n in list(names) for d in rules.dependents(n) if d not in names]
    if due:
        when = now()
        names += [
            n
            for n, r in sorted(rules.secrets.items())
            if n not in names
            and r.part_of is None
            and (is_due(r, _rotated(ctx, n), when) or (r.generator and inputs_rotated(ctx, n)))
        ]
    elif not names:
        raise UsageError("name the secrets to rotate, or pass --due")
    return rules.in_order(dict.fromkeys(names))


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
    manual = [n for n in names if not _rotatable(rules.secret(n))]
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


def _rotatable(rule: SecretRule) -> bool:
    return rule.generator is not None or rule.source is not None or bool(rule.key_generators)


def _public_file(ctx: Context, name: str) -> Path | None:
    """The committed public half of a secret's value, if it has one."""
    public = ctx.rules.outputs_of(ctx.rules.maker(name))[1]
    pub_name = next(iter(public.values()), None) if name == ctx.rules.maker(name) else None
    return ctx.rules.dir / f"{pub_name}.pub" if pub_name is not None else None


def _inputs(ctx: Context, name: str) -> tuple[dict[str, bytes], dict[str, bytes]]:
    """The values a generator is made from, and their public halves."""
    values: dict[str, bytes] = {}
    public: dict[str, bytes] = {}
    for i in ctx.rules.derived_from(name):
        values[i] = decrypt_secret(ctx, i)
        pub = _public_file(ctx, i)
        if pub is not None and pub.is_file():
            public[i] = read_regular(pub, AGE_FILE_LIMIT)
    return values, public


def generated_outputs(ctx: Context, name: str) -> tuple[dict[str, bytes], dict[str, bytes]]:
    """A generator's new values: secret name -> plaintext of its .age
    file, and name -> text of its .pub file (Rules.outputs_of)."""
    rules = ctx.rules
    gen = rules.secret(name).generator
    assert gen is not None
    inputs, public_inputs = _inputs(ctx, name)
    secret_out, public_out = rules.outputs_of(name)
    if gen.kind is GeneratorKind.COMMAND:
        from nixseal.repo import command

        answers = {p: command.ask(f"{name}: {p}") for p in gen.prompts}
        values = command.run(
            rules, name, gen, inputs=inputs, public_inputs=public_inputs, answers=answers
        )
        return (
            {s: values[o] for o, s in secret_out.items()},
            {p: values[o] for o, p in public_out.items()},
        )
    new = generators.generate(gen, name, inputs, public_inputs)
    pub = {name: f"{new.public}\n".encode()} if new.public is not None else {}
    return {name: new.value}, pub


def rotate_one(ctx: Context, name: str, push: bool, current: CurrentValues) -> str | None:
    """Rotate one secret; the public half of its value, if any."""
    rule = ctx.rules.secret(name)
    if rule.key_generators:
        _fill_keys(ctx, name, rule)
        return None
    if rule.generator is not None:
        secret_values, public_values = generated_outputs(ctx, name)
        # Every file encrypted before the first is written: a secret with
        # no recipients changes nothing.
        sealed = {s: ciphertext_for(ctx.rules, s, v) for s, v in secret_values.items()}
        if push and rule.push:
            op.write(rule.push, secret_values[name])
        for s, data in sealed.items():
            store_ciphertext(ctx, s, data, new_value=True, save=False)
        if rule.generator.inputs:
            ctx.state.record_derived(name, rule.generator.inputs)
        for p, text in public_values.items():
            write_atomic(ctx.rules.dir / f"{p}.pub", text)
        own = public_values.get(name)
        return own.decode().removesuffix("\n") if own is not None else None
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
    store_ciphertext(ctx, name, ciphertext_for(ctx.rules, name, value), new_value=True, save=False)
    return None


def _fill_keys(ctx: Context, name: str, rule: SecretRule) -> None:
    """New values for the document's keys that have generators, every other
    key kept (a document without a file yet starts empty)."""
    from nixseal.repo.document_keys import fill
    from nixseal.util.document import DocumentError, split_key

    path = ctx.rules.file_for(name)
    current = decrypt_secret(ctx, name) if path.exists() else b""
    values = {}
    for key, gen in rule.key_generators:
        segments = split_key(key)
        assert segments is not None  # the rules parser makes sure
        values[segments] = generators.generate(gen, f"{name} {key}").value.decode()
    try:
        data = fill(rule.format, current, values, display_path(path))
    except DocumentError as err:
        raise NixsealError(
            f"{display_path(path)}: {err}; fix it with `nixseal edit {name}`"
        ) from err
    store_ciphertext(ctx, name, ciphertext_for(ctx.rules, name, data), new_value=True, save=False)


def needs_op(rule: SecretRule, push: bool) -> bool:
    return rule.source is not None or (push and rule.push is not None)
