"""A new repository's rules file, and an admin age key if asked (`nixseal init`).

Never overwrites: an existing rules file or key file is an error and
nothing is changed; a failed init leaves no directory it made.
"""

from __future__ import annotations

import contextlib
import datetime
import getpass
import os
import re
from pathlib import Path
from typing import NamedTuple

from nixseal.age import crypto, sshkey
from nixseal.errors import UsageError
from nixseal.repo.rules import (
    RULES_DIR,
    RULES_NAME,
    check_key,
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


class Created(NamedTuple):
    rules_path: Path
    key: str | None  # the admin's public key written into [admins], if any
    key_path: Path | None  # the identity generated, if one was
    key_file: Path | None  # the .pub file the key was read from, if any
    private: Path | None  # the private key beside key_file, when there is one
    protected: bool | None  # whether that private key has a passphrase (None: unknown)


def _private_beside(pub: Path) -> tuple[Path | None, bool | None]:
    """The private key a .pub file belongs to, and whether it has a passphrase."""
    if pub.suffix != ".pub":
        return None, None
    private = pub.with_suffix("")
    try:
        data = read_regular(private, TEXT_LIMIT)
    except OSError:
        return None, None
    return private, sshkey.is_protected(data)


def create_rules(
    root: Path, admin: str | None, admin_key: str | None, generate: str | None
) -> Created:
    """The rules file under root, with admin's key: admin_key (a key or a
    .pub file), a new identity at generate, or else ~/.ssh/id_ed25519.pub
    when it exists."""
    rules_path = root / RULES_DIR / RULES_NAME
    if rules_path.exists():
        raise UsageError(f"{display_path(rules_path)}: already exists; not overwritten")
    admin = admin or _login_name()
    if not _ADMIN_NAME.fullmatch(admin):
        raise UsageError(f"admin name {admin!r}: use A-Z a-z 0-9 . _ - (pass --admin NAME)")
    key_path: Path | None = None
    key_file: Path | None = None
    if admin_key:
        key: str | None = public_key_from(admin_key)
        if not admin_key.startswith(("age1", "ssh-")):
            key_file = Path(admin_key).expanduser()
    elif generate:
        key_path = Path(generate).expanduser().absolute()
        if key_path.exists():
            raise UsageError(f"{key_path}: already exists; not overwritten")
        key = None
    else:
        default_pub = Path("~/.ssh/id_ed25519.pub").expanduser()
        key = public_key_from(str(default_pub)) if default_pub.is_file() else None
        key_file = default_pub if key is not None else None
    if key is not None:
        check_key(key, "--admin-key")
    new_dirs = _make_dir(rules_path.parent)
    if key_path is not None:
        key = _generate_or_undo(key_path, new_dirs)
    admins = f"{toml_key(admin)} = {toml_string(key)}\n" if key else '# alice = "age1..."\n'
    text = _TEMPLATE.format(admins=admins)
    parse_rules(text, rules_path.absolute())  # the template must always load
    _create(rules_path, display_path(rules_path), 0o644, text)
    private, protected = _private_beside(key_file) if key_file else (None, None)
    return Created(rules_path, key, key_path, key_file, private, protected)
