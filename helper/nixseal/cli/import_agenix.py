"""nixseal import-agenix FILE: turn an agenix secrets.nix into the rules
(nixseal.repo.import_agenix), then say what to review and where the files go.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from nixseal.repo.import_agenix import import_rules
from nixseal.repo.rules import RULES_DIR, RULES_NAME
from nixseal.util.paths import display_path

EXAMPLES = """\
examples:
  nixseal import-agenix secrets.nix
  nixseal import-agenix secrets/secrets.nix --move
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="the agenix secrets.nix")
    parser.add_argument(
        "-o",
        "--output",
        metavar="PATH",
        help=f"rules file to create (default: {RULES_DIR}/{RULES_NAME}, beside FILE when FILE "
        f"is in {RULES_DIR}/, else in {RULES_DIR}/ beside it)",
    )
    parser.add_argument(
        "--move",
        action="store_true",
        help="move .age files where the rules expect them (git mv when git tracks them)",
    )


def run(args: argparse.Namespace) -> int:
    source = Path(args.file)
    output = Path(args.output) if args.output else None
    done = import_rules(source, output, move=args.move)
    rules = done.rules
    shown = display_path(rules.path)
    print(
        f"created {shown}: {len(rules.admins)} admins, {len(rules.hosts)} hosts, "
        f"{len(rules.users)} users, {len(rules.secrets)} secrets "
        f"({done.recorded} files verified)"
    )
    for old, new in done.moved:
        print(f"moved {display_path(old)} to {display_path(new)}")
    if done.moves:
        print(f"the rules expect {len(done.moves)} files elsewhere; move them (or pass --move):")
        for old, new in done.moves:
            print(f"  git mv {display_path(old)} {display_path(new)}")
    for name in done.unverified:
        if not any(new == rules.file_for(name) for _, new in done.moves):
            print(f"warning: {name}: file missing or its header differs from publicKeys")
    if rules.path.parent.name != RULES_DIR or rules.path.name != RULES_NAME:
        print(
            f"note: nixseal looks for {RULES_DIR}/{RULES_NAME}; pass "
            f"--rules {shown} or move the rules and files there"
        )
    if not rules.admins:
        print(
            f"warning: no admin in {shown}: only hosts can decrypt these secrets; add your own "
            "key to [admins] before you rekey or edit"
        )
    if done.review:
        print(f"review these guesses (marked REVIEW in {shown}):")
        for line in done.review:
            print(f"  {line}")
    # nixseal finds secrets/secrets.toml from the repository or below it.
    root = rules.path.parent.parent
    inside = Path.cwd().resolve().is_relative_to(root.resolve())
    print("then run: nixseal check" + ("" if inside else f" (from {display_path(root)})"))
    return 0
