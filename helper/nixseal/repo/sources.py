"""1Password sources: reading a reference, and the current values they are
compared with so that an unchanged value is not rewritten (pull, rotate).
"""

from __future__ import annotations

import sys

from nixseal.age import crypto
from nixseal.errors import NixsealError, OpError, UsageError
from nixseal.repo.context import Context, encrypt_secret
from nixseal.util import op
from nixseal.util.paths import display_path
from nixseal.util.readfile import AGE_FILE_LIMIT, read_regular


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


def pull_one(ctx: Context, name: str, current: CurrentValues) -> bool:
    """Copy one secret's 1Password value into its file: False when the file
    already holds it (and was left alone)."""
    ref = ctx.rules.secret(name).source
    assert ref is not None
    value = read_source(ref)
    old = current.get(name)
    if old == value:
        return False
    # A file that could not be compared may hold this very value: keep its
    # recorded age rather than vouch for a new one.
    compared = old is not None or not ctx.rules.file_for(name).exists()
    encrypt_secret(ctx, name, value, new_value=compared, save=False)
    return True
