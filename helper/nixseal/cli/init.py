"""nixseal init: create secrets/secrets.toml, and an admin age key if asked.

Never overwrites: an existing rules file or key file is an error and
nothing is changed.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import getpass
import os
import re
from pathlib import Path

from nixseal.age import crypto
from nixseal.errors import CryptoError, PrivateKeyError, UsageError
from nixseal.repo.rules import (
    KEY_FIX,
    RULES_DIR,
    RULES_NAME,
    parse_rules,
    toml_key,
    toml_string,
)
from nixseal.util.keytext import PRIVATE_KEY, looks_private
from nixseal.util.paths import display_path
from nixseal.util.readfile import TEXT_LIMIT, read_regular

DEFAULT_KEY = "~/.config/nixseal/admin.key"
_ADMIN_NAME = re.compile(r"[A-Za-z0-9._-]+")  # as the rules accept in [admins]

_TEMPLATE = """\
# nixseal rules: who can read which secret. Encrypted files live beside
# this file as <name>.age. After changing recipients, run `nixseal rekey`;
# `nixseal check` tells which files are stale.
version = 1

[admins]  # can read and edit every secret
{admins}
# [hosts.web1]
# key = "ssh-ed25519 AAAA... root@web1"   # nixseal host add web1 /etc/ssh/ssh_host_ed25519_key.pub

# [users.carol]
# key = "age1..."

# [groups]
# web = ["web1", "web2"]                  # "@web" in a secret's hosts

# [secrets."grafana/admin-password"]
# hosts = ["@web"]
# generator = {{ kind = "password", length = 32 }}
# rotate_after = "90d"
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


def _special(path: Path) -> bool:
    """Something other than a directory or a regular file: refused by name, not parsed as a key."""
    try:
        return not path.is_dir() and path.exists()
    except OSError:
        return False


def public_key_from(value: str) -> str:
    """A key string, or the first key line of a .pub file."""
    path = Path(value).expanduser()
    if not value.startswith(("age1", "ssh-")) and (path.is_file() or _special(path)):
        try:
            text = read_regular(path, TEXT_LIMIT).decode()
        except OSError as err:
            raise UsageError(f"{value}: cannot read: {err.strerror}") from err
        except UnicodeDecodeError as err:
            raise UsageError(f"{value}: not a public key file (not text)") from err
        if looks_private(text):
            raise UsageError(f"{value}: {PRIVATE_KEY}; give the public key (the .pub file)")
        for line in text.splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                return line.strip()
        raise UsageError(f"{value}: no public key in file")
    return value.strip()


def generate_key(path: Path) -> str:
    """Write a new age identity (0600, never overwriting); its public key."""
    secret, public = crypto.generate_age_identity()
    created = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as err:
        why = "a file is in the way" if isinstance(err, FileExistsError) else err.strerror
        raise UsageError(f"{path.parent}: cannot create: {why}") from err
    _create(path, str(path), 0o600, f"# created: {created}\n# public key: {public}\n{secret}\n")
    return public


def _create(path: Path, shown: str, mode: int, text: str) -> None:
    """Write a new file with mode from the start; never replace one."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError as err:
        raise UsageError(f"{shown}: already exists; not overwritten") from err
    except OSError as err:
        raise UsageError(f"{shown}: cannot create: {err.strerror}") from err
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)


def _login_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError) as err:  # no $USER and no passwd entry (containers)
        raise UsageError("cannot tell your login name; pass --admin NAME") from err


def _check_key(key: str) -> None:
    try:
        crypto.parse_recipient(key, "--admin-key")
    except PrivateKeyError:
        raise
    except CryptoError as err:
        raise CryptoError(f"{err}; {KEY_FIX}") from err


def _make_dir(directory: Path) -> list[Path]:
    """Create directory (before any key: keys are not made for rules that cannot be).

    The directories created, deepest first, to remove if a later step fails.
    """
    new_dirs = [d for d in (directory, *directory.parents) if not d.exists()]
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        why = "a file is in the way" if isinstance(err, FileExistsError) else err.strerror
        raise UsageError(f"{display_path(directory)}: cannot create: {why}") from err
    return new_dirs


def _generate_or_undo(key_path: Path, new_dirs: list[Path]) -> str:
    try:
        return generate_key(key_path)
    except UsageError:
        with contextlib.suppress(OSError):  # a failed init leaves nothing behind
            for d in new_dirs:
                d.rmdir()
        raise


def run(args: argparse.Namespace) -> int:
    root = Path(args.directory)
    rules_path = root / RULES_DIR / RULES_NAME
    if rules_path.exists():
        raise UsageError(f"{display_path(rules_path)}: already exists; not overwritten")
    admin = args.admin or _login_name()
    if not _ADMIN_NAME.fullmatch(admin):
        raise UsageError(f"admin name {admin!r}: use A-Z a-z 0-9 . _ - (pass --admin NAME)")
    key_path: Path | None = None
    if args.admin_key:
        key: str | None = public_key_from(args.admin_key)
    elif args.generate_key:
        key_path = Path(args.generate_key).expanduser().absolute()
        if key_path.exists():
            raise UsageError(f"{key_path}: already exists; not overwritten")
        key = None
    else:
        default_pub = Path("~/.ssh/id_ed25519.pub").expanduser()
        key = public_key_from(str(default_pub)) if default_pub.is_file() else None
    if key is not None:
        _check_key(key)
    new_dirs = _make_dir(rules_path.parent)
    if key_path is not None:
        key = _generate_or_undo(key_path, new_dirs)
    admins = f"{toml_key(admin)} = {toml_string(key)}\n" if key else '# alice = "age1..."\n'
    text = _TEMPLATE.format(admins=admins)
    parse_rules(text, rules_path.absolute())  # the template must always load
    _create(rules_path, display_path(rules_path), 0o644, text)
    print(f"created {display_path(rules_path)}")
    if key_path is not None:
        print(f"created admin identity {key_path} (public key {key})")
        print(f"use it with: export NIXSEAL_IDENTITY={key_path}")
    if key is None:
        print(f"add an admin key to [admins] in {display_path(rules_path)}")
    print("next: nixseal host add NAME /etc/ssh/ssh_host_ed25519_key.pub (or its ssh-keyscan)")
    return 0
