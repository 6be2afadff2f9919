"""nixseal import-agenix FILE: turn an agenix secrets.nix into the rules
(nixseal.repo.import_agenix), then say what to review and where the files go.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from nixseal.repo.import_agenix import import_rules
from nixseal.repo.rules import RULES_DIR, RULES_NAME
from nixseal.util.paths import display_path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="the agenix secrets.nix")
    parser.add_argument(
        "-o",
        "--output",
        metavar="PATH",
        help=f"rules file to create (default: {RULES_NAME} beside FILE)",
    )


def run(args: argparse.Namespace) -> int:
    source = Path(args.file)
    output = Path(args.output) if args.output else source.parent / RULES_NAME
    rules, recorded, unverified = import_rules(source, output)
    print(
        f"created {display_path(output)}: {len(rules.admins)} admins, {len(rules.hosts)} hosts, "
        f"{len(rules.users)} users, {len(rules.secrets)} secrets ({recorded} files verified)"
    )
    for name in unverified:
        print(f"warning: {name}: file missing or its header differs from publicKeys")
    if output.absolute().parent != source.absolute().parent:
        print(
            f"warning: the rules expect the .age files beside {display_path(output)}; "
            f"move them there from {display_path(source.absolute().parent)}"
        )
    if output.absolute().parent.name != RULES_DIR or output.name != RULES_NAME:
        print(
            f"note: nixseal looks for {RULES_DIR}/{RULES_NAME}; pass "
            f"--rules {display_path(output)} or move the rules and files there"
        )
    print("review the roles in the rules, then run: nixseal check")
    return 0
