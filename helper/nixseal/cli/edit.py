"""nixseal edit NAME: change a secret in $EDITOR without plaintext on disk
(nixseal.repo.edit). Unchanged content is not re-encrypted (no needless
git diff). A secret in the rules without a file yet starts empty. A
document (the rules' `format`) that does not parse is not kept: the
editor opens again on it.
"""

from __future__ import annotations

import argparse
import sys

from nixseal.errors import UsageError
from nixseal.repo.context import Context, decrypt_secret, encrypt_secret
from nixseal.repo.edit import cleanup_on_signals, edit_privately
from nixseal.repo.rules import document_problem
from nixseal.util import log

EXAMPLES = """\
examples:
  nixseal edit grafana/admin-password
  EDITOR=nano nixseal edit web1/app-token
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="secret name, as in the rules")
    parser.add_argument(
        "--allow-empty", action="store_true", help="store an empty value instead of refusing it"
    )


def run(args: argparse.Namespace) -> int:
    ctx = Context.from_args(args)
    name = args.name
    rules = ctx.rules
    fmt = rules.secret(name).format
    exists = rules.file_for(name).exists()
    logger = log.get_logger()
    with cleanup_on_signals():
        original = decrypt_secret(ctx, name) if exists else b""

        def refuse(edited: bytes) -> str | None:
            # Unchanged or emptied: said below, without parsing.
            return None if edited in (original, b"") else document_problem(fmt, edited)

        edited = edit_privately(name, original, refuse)
        if edited == original and exists:
            print(f"{name}: unchanged, not re-encrypted", file=sys.stderr)
            return 0
        if not edited and not exists:
            print(f"{name}: empty, not created", file=sys.stderr)
            return 0
        if not edited and not args.allow_empty:
            # An editor that saved nothing (a crash, :wq on a wiped buffer)
            # must not wipe the secret on the hosts.
            raise UsageError(
                f"{name}: the edited value is empty; not changed (--allow-empty to store it)"
            )
        encrypt_secret(ctx, name, edited, new_value=True)
    logger.info("edited" if exists else "created", secret=name)
    return 0
