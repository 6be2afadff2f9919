"""nixseal group set|remove: named host lists of the rules, "@name" in a
secret's hosts (nixseal.repo.readers)."""

from __future__ import annotations

import argparse

from nixseal.cli import _readers
from nixseal.repo.context import rules_path_from_args
from nixseal.repo.readers import edit, remove_group, set_group

EXAMPLES = """\
examples:
  nixseal group set web web1 web2 --rekey
  nixseal group set servers @web db1
  nixseal group remove web
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    # none given: the verb's help (args.print_help)
    put = sub.add_parser("set", help="create a group, or give it exactly these members")
    put.add_argument("name", help="group name (secrets list it as @name)")
    put.add_argument("members", nargs="*", metavar="MEMBER", help="host names or @groups")
    _readers.add_rekey_flags(put)
    remove = sub.add_parser("remove", help="remove a group that nothing lists")
    remove.add_argument("name", help="group name")


def run(args: argparse.Namespace) -> int:
    if args.command is None:
        args.print_help()
        return 0
    path = rules_path_from_args(args)
    if args.command == "remove":
        args.rekey = args.no_rekey = False  # nothing uses it: nothing to rekey
        return _readers.report(args, "group", edit(path, remove_group(args.name)))
    return _readers.report(args, "group", edit(path, set_group(args.name, args.members)))
