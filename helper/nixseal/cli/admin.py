"""nixseal admin add|remove: the admins of the rules (nixseal.repo.readers).

Every secret is encrypted to every admin, so each change offers to rekey
them all; a removed admin's secrets are named for rotation.
"""

from __future__ import annotations

import argparse

from nixseal.cli import _readers
from nixseal.models import ReaderKind
from nixseal.repo.context import rules_path_from_args
from nixseal.repo.readers import add_reader, edit, remove_reader

EXAMPLES = """\
examples:
  nixseal admin add bob ~/bob.pub --rekey
  nixseal admin add bob --replace age1... --rekey
  nixseal admin remove bob --rekey
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="admin_command", metavar="COMMAND")
    # none given: the verb's help (args.print_help)
    add = sub.add_parser("add", help="add an admin, or change its key with --replace")
    add.add_argument("name", help="admin name")
    add.add_argument(
        "key",
        help="age1 or ssh-ed25519/ssh-rsa public key, a .pub file, or - for stdin",
    )
    add.add_argument("--replace", action="store_true", help="change the key of an existing admin")
    _readers.add_rekey_flags(add)
    remove = sub.add_parser("remove", help="remove an admin (never the last one)")
    remove.add_argument("name", help="admin name")
    _readers.add_rekey_flags(remove)


def run(args: argparse.Namespace) -> int:
    if args.admin_command is None:
        args.print_help()
        return 0
    path = rules_path_from_args(args)
    if args.admin_command == "remove":
        change = edit(path, remove_reader(ReaderKind.ADMIN, args.name))
    else:
        change = edit(path, add_reader(ReaderKind.ADMIN, args.name, args.key, replace=args.replace))
    return _readers.report(
        args, "admin", change, old="key" if getattr(args, "replace", False) else "recipients"
    )
