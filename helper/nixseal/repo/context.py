"""The secrets repository as the admin verbs see it.

A Context holds, for one run, the rules, the state file and the admin's
identities (loaded on first use, then reused, so any prompt comes once).
encrypt_secret and decrypt_secret are the only ways verbs touch ``.age``
files, so every write is atomic and every encryption is recorded.
"""

from __future__ import annotations

import argparse
import datetime
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from nixseal.age import crypto, header, identity
from nixseal.errors import NixsealError
from nixseal.repo.rules import Rules, find_rules, load_rules
from nixseal.repo.state import State
from nixseal.util.atomic import write_atomic
from nixseal.util.paths import display_path
from nixseal.util.readfile import AGE_FILE_LIMIT, read_regular


@dataclass
class Context:
    rules: Rules
    state: State
    identity_specs: Sequence[str]
    prompt: identity.Prompt | None = None
    _identities: list[crypto.Identity] | None = field(default=None, repr=False)

    @classmethod
    def from_args(cls, args: argparse.Namespace, rules: Rules | None = None) -> Context:
        """The run's context; rules when already loaded, else from --rules or the cwd."""
        if rules is None:
            rules = load_rules(rules_path_from_args(args))
        return cls(rules, State.load(rules), identity.identity_specs(args.identities or []))

    def identities(self) -> list[crypto.Identity]:
        """The admin's identities, loaded once per run."""
        if self._identities is None:
            self._identities = identity.load(self.identity_specs, self.prompt)
        return self._identities


def rules_path_from_args(args: argparse.Namespace) -> Path:
    given = getattr(args, "rules", None)
    if not given:
        return find_rules(Path.cwd())
    path = Path(given)
    return path / "secrets.toml" if path.is_dir() else path


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


def ciphertext_for(rules: Rules, name: str, plaintext: bytes) -> bytes:
    """plaintext encrypted to the rules' recipients of name (no file written)."""
    rule = rules.secret(name)
    refs = rules.recipients_for(name)
    if not refs:
        raise NixsealError(
            f"{display_path(rules.path)}: secret {name!r} has no recipients; "
            "add admins, or hosts/users to the secret"
        )
    recipients = [rules.parsed_recipient(r.key) for r in refs]
    return crypto.encrypt(plaintext, recipients, armor=rule.armor)


def store_ciphertext(
    ctx: Context,
    name: str,
    data: bytes,
    *,
    new_value: bool,
    save: bool = True,
    durable: bool = True,
) -> None:
    """Write name.age atomically and record what it was encrypted to."""
    path = ctx.rules.file_for(name)
    write_atomic(path, data, durable=durable)
    mac = header.parse_header(data, display_path(path)).mac
    ctx.state.record_encryption(name, [r.key for r in ctx.rules.recipients_for(name)], mac=mac)
    if new_value:
        ctx.state.record_value(name, now())
    if save:
        ctx.state.save()


def encrypt_secret(
    ctx: Context, name: str, plaintext: bytes, *, new_value: bool, save: bool = True
) -> None:
    """Encrypt plaintext to the rules' recipients of name; write name.age.

    new_value: this is a new value (created, edited, rotated, pulled), so
    its time is recorded; False when only re-encrypting (rekey).
    save: write the state file now; batch callers pass False and call
    ctx.state.save() once at the end.
    """
    data = ciphertext_for(ctx.rules, name, plaintext)
    store_ciphertext(ctx, name, data, new_value=new_value, save=save)


def create_command(rules: Rules, name: str) -> str:
    """The command that gives a secret whose file is missing its value."""
    rule = rules.secrets.get(name)
    if rule is not None and rule.part_of is not None:
        return f"nixseal rotate {rule.part_of}"
    if rule is not None and rule.generator is not None:
        return f"nixseal rotate {name}"
    if rule is not None and rule.source is not None:
        return f"nixseal pull {name}"
    return f"nixseal edit {name}"


def read_secret_file(ctx: Context, name: str) -> bytes:
    path = ctx.rules.file_for(name)
    try:
        return read_regular(path, AGE_FILE_LIMIT)
    except FileNotFoundError as err:
        fix = create_command(ctx.rules, name)
        hint = f"`{fix}`"
        if fix == f"nixseal edit {name}":  # a value people choose
            hint += f" or `nixseal encrypt {name}`"
        raise NixsealError(f"{display_path(path)}: missing; create it with {hint}") from err
    except OSError as err:
        raise NixsealError(f"{display_path(path)}: cannot read: {err.strerror}") from err


def decrypt_secret(ctx: Context, name: str) -> bytes:
    """The plaintext of name, in memory; errors name the file and the cause."""
    data = read_secret_file(ctx, name)
    return crypto.decrypt(data, ctx.identities(), display_path(ctx.rules.file_for(name)))
