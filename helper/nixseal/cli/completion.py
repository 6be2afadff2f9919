"""nixseal completion SHELL: print the completion script for bash, zsh or fish
(nixseal.cli._completion); --list KIND prints names of the rules for them."""

from __future__ import annotations

import argparse

from nixseal.cli import _completion, build_parser
from nixseal.errors import UsageError
from nixseal.repo.context import rules_path_from_args
from nixseal.repo.rules import load_rules

EXAMPLES = """\
examples:
  nixseal completion bash > ~/.local/share/bash-completion/completions/nixseal
  nixseal completion zsh > ~/.zfunc/_nixseal
  nixseal completion fish > ~/.config/fish/completions/nixseal.fish
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("shell", nargs="?", choices=sorted(_completion.SCRIPTS), help="the shell")
    parser.add_argument(
        "--list",
        choices=_completion.LIST_KINDS,
        metavar="KIND",
        help="print the names of one kind in the rules, one a line (the scripts call this)",
    )


def run(args: argparse.Namespace) -> int:
    if args.list:
        rules = load_rules(rules_path_from_args(args))
        table = {
            "secrets": rules.secrets,
            "hosts": rules.hosts,
            "admins": rules.admins,
            "users": rules.users,
            "groups": rules.groups,
        }[args.list]
        for name in sorted(table):
            print(name)
        return 0
    if args.shell is None:
        raise UsageError("name a shell: bash, zsh or fish")
    print(_completion.SCRIPTS[args.shell](build_parser()), end="")
    return 0
