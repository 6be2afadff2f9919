"""nixseal host add|remove: the hosts of the rules (nixseal.repo.readers).

A changed key or a removed host makes files stale: the rekey is offered,
and a removed host's secrets are named for rotation.
"""

from __future__ import annotations

import argparse

from nixseal.cli import _readers
from nixseal.models import ReaderKind
from nixseal.repo.context import rules_path_from_args
from nixseal.repo.readers import add_reader, edit, remove_reader

EXAMPLES = """\
examples:
  nixseal host add web2 /etc/ssh/ssh_host_ed25519_key.pub
  ssh-keyscan -t ed25519 web2 | nixseal host add web2 -
  nixseal host add web2 --replace "ssh-ed25519 AAAA... root@web2" --rekey
  nixseal host remove web2
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="host_command", metavar="COMMAND")
    # none given: the verb's help (args.print_help)
    add = sub.add_parser("add", help="add a host, or change its key with --replace")
    add.add_argument("name", help="host name, as used in secrets' hosts lists")
    add.add_argument(
        "key",
        help="ssh-ed25519/ssh-rsa/age1 key string, a .pub file, ssh-keyscan output "
        "(file, or - for stdin)",
    )
    add.add_argument("--replace", action="store_true", help="change the key of an existing host")
    _readers.add_rekey_flags(add)
    remove = sub.add_parser(
        "remove", help="remove a host from the rules, its groups and its secrets"
    )
    remove.add_argument("name", help="host name")
    _readers.add_rekey_flags(remove)


def run(args: argparse.Namespace) -> int:
    if args.host_command is None:
        args.print_help()
        return 0
    path = rules_path_from_args(args)
    if args.host_command == "remove":
        return _readers.report(args, "host", edit(path, remove_reader(ReaderKind.HOST, args.name)))
    change = edit(path, add_reader(ReaderKind.HOST, args.name, args.key, replace=args.replace))
    if not change.unchanged and not change.rekey and not args.replace:
        print(f"{change.done} in {change.where}")
        print(
            f'next: list "{args.name}" in the hosts of its secrets (or in a group) in '
            f"{change.where}, then run: nixseal rekey"
        )
        return 0
    return _readers.report(args, "host", change, old="key" if args.replace else "recipients")
