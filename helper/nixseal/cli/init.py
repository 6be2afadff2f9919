"""nixseal init: create secrets/secrets.toml, and an admin age key if asked
(nixseal.repo.init).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from nixseal.repo.init import DEFAULT_KEY, Created, create_rules
from nixseal.util.paths import display_path

EXAMPLES = """\
examples:
  nixseal init
  nixseal init --generate-key
  nixseal init --admin alice --admin-key ~/.ssh/id_ed25519.pub
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "directory", nargs="?", default=".", help="repository root (default: the cwd)"
    )
    parser.add_argument(
        "--admin", metavar="NAME", help="admin name for the key (default: your login name)"
    )
    key = parser.add_mutually_exclusive_group()
    key.add_argument(
        "--admin-key",
        metavar="KEY",
        help="the admin's public key: age1..., ssh-ed25519 ..., or a .pub file "
        "(default: ~/.ssh/id_ed25519.pub when it exists)",
    )
    key.add_argument(
        "--generate-key",
        nargs="?",
        const=DEFAULT_KEY,
        metavar="PATH",
        help=f"create a new age identity for the admin at PATH (default {DEFAULT_KEY})",
    )


def run(args: argparse.Namespace) -> int:
    made = create_rules(Path(args.directory), args.admin, args.admin_key, args.generate_key)
    rules_path, key, key_path = made.rules_path, made.key, made.key_path
    print(f"created {display_path(rules_path)}")
    if made.key_file is not None:
        print(f"admin key: {display_path(made.key_file)} ({key_kind(key)}); {_private_note(made)}")
    if key_path is not None:
        print(f"created admin identity {key_path} (public key {key})")
        print(f"use it with: export NIXSEAL_IDENTITY={key_path}")
    if key is None:
        print(f"add an admin key to [admins] in {display_path(rules_path)}")
    print("next: nixseal host add NAME /etc/ssh/ssh_host_ed25519_key.pub (or its ssh-keyscan)")
    return 0


def key_kind(key: str | None) -> str:
    return "age" if key is None or key.startswith("age1") else key.split()[0]


def _private_note(made: Created) -> str:
    if made.private is None:
        return "no private key beside it: decrypt with -i KEY or NIXSEAL_IDENTITY"
    shown = display_path(made.private)
    if made.protected:
        return (
            f"its private key {shown} has a passphrase: nixseal asks for it once per run "
            "(on the terminal, or through SSH_ASKPASS)"
        )
    return f"its private key {shown} has no passphrase"
