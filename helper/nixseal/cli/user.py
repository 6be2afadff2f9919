"""nixseal user add|remove: the users of the rules, people whose own key
reads their per-user secrets (nixseal.repo.readers)."""

from __future__ import annotations

import argparse

from nixseal.cli import _readers
from nixseal.models import ReaderKind
from nixseal.repo.context import rules_path_from_args
from nixseal.repo.readers import add_reader, edit, remove_reader

EXAMPLES = """\
examples:
  nixseal user add carol age1...
  nixseal user add carol --replace ~/carol.pub --rekey
  nixseal user remove carol
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="user_command", metavar="COMMAND")
    # none given: the verb's help (args.print_help)
    add = sub.add_parser("add", help="add a user, or change its key with --replace")
    add.add_argument("name", help="user name, as used in secrets' users lists")
    add.add_argument(
        "key",
        help="age1 or ssh-ed25519/ssh-rsa public key, a .pub file, or - for stdin",
    )
    add.add_argument("--replace", action="store_true", help="change the key of an existing user")
    _readers.add_rekey_flags(add)
    remove = sub.add_parser("remove", help="remove a user from the rules and its secrets")
    remove.add_argument("name", help="user name")
    _readers.add_rekey_flags(remove)


def run(args: argparse.Namespace) -> int:
    if args.user_command is None:
        args.print_help()
        return 0
    path = rules_path_from_args(args)
    if args.user_command == "remove":
        return _readers.report(args, "user", edit(path, remove_reader(ReaderKind.USER, args.name)))
    change = edit(path, add_reader(ReaderKind.USER, args.name, args.key, replace=args.replace))
    if not change.unchanged and not change.rekey and not args.replace:
        print(f"{change.done} in {change.where}")
        print(f'next: list "{args.name}" in the users of its secrets in {change.where}')
        return 0
    return _readers.report(args, "user", change, old="key" if args.replace else "recipients")
