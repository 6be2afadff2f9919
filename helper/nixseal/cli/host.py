"""nixseal host add|reinstall|remove: the hosts of the rules (nixseal.repo.readers).

A changed key or a removed host makes files stale: the rekey is offered,
and a removed host's secrets are named for rotation. `add --generate` and
`reinstall` make or reuse a key kept in the repository for the admins, and
write it for nixos-anywhere's --extra-files (nixseal.repo.bootstrap).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nixseal.cli import _readers
from nixseal.errors import UsageError
from nixseal.models.repo import ReaderKind
from nixseal.repo import bootstrap
from nixseal.repo.context import Context, rules_path_from_args
from nixseal.repo.rules import Rules, load_rules
from nixseal.util.paths import display_path

EXAMPLES = """\
examples:
  nixseal host add web2 /etc/ssh/ssh_host_ed25519_key.pub
  ssh-keyscan -t ed25519 web2 | nixseal host add web2 -
  nixseal host add web2 --replace "ssh-ed25519 AAAA... root@web2" --rekey
  nixseal host add web3 --generate
  nixseal host reinstall web3 --extra-files /dev/shm/web3
  nixseal host remove web2
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub, add = _readers.add_commands(parser, ReaderKind.HOST)
    add.add_argument(
        "--generate",
        action="store_true",
        help="make the host's ssh-ed25519 key here (instead of KEY), keep it for the admins "
        "in the repository, and write it for nixos-anywhere --extra-files",
    )
    extra_help = (
        "with --generate: where to write the etc/ssh tree (default: a new directory on tmpfs)"
    )
    add.add_argument("--extra-files", type=Path, metavar="DIR", help=extra_help)
    again = sub.add_parser(
        "reinstall", help="write a host's stored key again for nixos-anywhere --extra-files"
    )
    again.add_argument("name", help="host name")
    again.add_argument(
        "--extra-files",
        type=Path,
        metavar="DIR",
        help="where to write the etc/ssh tree (default: a new directory on tmpfs)",
    )


def run(args: argparse.Namespace) -> int:
    if args.command == "reinstall":
        ctx = Context.from_args(args)
        _, tree = bootstrap.reinstall(ctx, args.name, args.extra_files)
        print(f"next: {_print_tree(args.name, tree)}")
        return 0
    if args.command == "add" and (args.generate or args.key is None):
        if not args.generate:
            raise UsageError("host add: give the host's KEY, or --generate to make one here")
        if args.key is not None:
            raise UsageError("host add: give KEY or --generate, not both")
        return _generate(args)
    if args.command == "add" and args.extra_files is not None:
        raise UsageError("host add: --extra-files goes with --generate")
    return _readers.run_command(args, ReaderKind.HOST)


def _generate(args: argparse.Namespace) -> int:
    path = rules_path_from_args(args)
    load_rules(path)  # its errors first, before a key is made

    def context(rules: Rules) -> Context:
        return Context.from_args(args, rules)

    added = bootstrap.add_generated(
        context, path, args.name, replace=args.replace, extra_files=args.extra_files
    )
    change = added.change
    print(f"generated an ssh-ed25519 key for host {args.name}: {added.public}")
    print(f"{change.done} in {change.where}")
    file = display_path(change.rules.file_for(added.secret))
    print(f"stored its private key for the admins only in {file}")
    code = 0
    if change.rekey:  # a new key for a host that has secrets: they follow it, unasked
        if not args.no_rekey:
            args.rekey = True
        code = _readers.report(args, "host", change, old="key", announce=False)
    anywhere = _print_tree(args.name, added.tree)
    if not change.rekey and not args.replace:
        print(
            f'next: list "{args.name}" in the hosts of its secrets (or in a group) in '
            f"{change.where}, then run: nixseal rekey"
        )
        print(f"then: {anywhere}")
    else:
        print(f"next: {anywhere}")
    return code


def _print_tree(host: str, tree: bootstrap.Tree) -> str:
    """Say where the tree is; the command that installs the host with it."""
    shown = display_path(tree.dir)
    if tree.warning:
        print(f"warning: {tree.warning}", file=sys.stderr)
    print(f"wrote {bootstrap.KEY_FILE} and its .pub for nixos-anywhere in {shown}")
    return (
        f"nixos-anywhere --extra-files {shown} --flake .#{host} --target-host root@{host}, "
        f"then rm -r {shown}"
    )
