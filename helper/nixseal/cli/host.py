"""nixseal host add NAME KEY: add a host (or change its key) in the rules
(nixseal.repo.host). Changing a key makes that host's secrets stale: the
rekey is offered.
"""

from __future__ import annotations

import argparse
import sys

from nixseal.repo import rekey
from nixseal.repo.context import Context, rules_path_from_args
from nixseal.repo.host import set_host


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="host_command", metavar="COMMAND")
    sub.required = True
    add = sub.add_parser("add", help="add a host, or change its key with --replace")
    add.add_argument("name", help="host name, as used in secrets' hosts lists")
    add.add_argument(
        "key",
        help="ssh-ed25519/ssh-rsa/age1 key string, a .pub file, ssh-keyscan output "
        "(file, or - for stdin)",
    )
    add.add_argument("--replace", action="store_true", help="change the key of an existing host")
    when = add.add_mutually_exclusive_group()
    when.add_argument("--rekey", action="store_true", help="rekey affected secrets, no prompt")
    when.add_argument("--no-rekey", action="store_true", help="only print the rekey command")


def run(args: argparse.Namespace) -> int:
    change = set_host(rules_path_from_args(args), args.name, args.key, replace=args.replace)
    name, where, affected = args.name, change.where, change.affected
    if change.unchanged:
        print(f"host {name}: key unchanged")
        return 0
    print(f"{'changed the key of' if change.existed else 'added'} host {name} in {where}")
    if not affected:
        print(
            f'next: list "{name}" in the hosts of its secrets (or in a group) in {where}, '
            "then run: nixseal rekey"
        )
        return 0
    # rekey alone touches only stale files; a long list of names helps no one
    command = "nixseal rekey" + ("".join(f" {n}" for n in affected) if len(affected) <= 5 else "")
    if args.no_rekey or (not args.rekey and not _confirm(len(affected))):
        print(f"{len(affected)} secrets are encrypted to the old key; run: {command}")
        return 0
    ctx = Context.from_args(args)
    p = rekey.plan(ctx, affected, force=False)
    done = rekey.reencrypt(ctx, p.todo, p.failed)
    for msg in p.failed:
        print(f"nixseal host: error: {msg}; skipped", file=sys.stderr)
    fresh = f", {len(p.fresh)} already up to date" if p.fresh else ""
    print(f"rekeyed {done} of {len(affected)} secrets{fresh}")
    return 1 if p.failed else 0


def _confirm(count: int) -> bool:
    if not sys.stdin.isatty():
        return False
    answer = input(f"rekey the {count} secrets of this host now? [y/N] ")
    return answer.strip().lower() in ("y", "yes")
