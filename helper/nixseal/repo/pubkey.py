"""A reader's public key from what admins have at hand (the KEY of
`host add`, `admin add`, `user add`).

KEY is a key string, a ``.pub`` file, or ``ssh-keyscan`` output (a file,
or ``-`` for stdin). Only public keys: a private key is refused without
quoting a line of it.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from nixseal.errors import UsageError
from nixseal.util.keytext import PRIVATE_KEY, looks_private
from nixseal.util.readfile import TEXT_LIMIT, read_regular

# age can encrypt to these ssh key types only (no ECDSA).
_USABLE = ("ssh-ed25519", "ssh-rsa")
# What a key type looks like (ecdsa-sha2-nistp256, sk-ssh-ed25519@openssh.com):
# only such words are quoted back, never a line of a file that may be a secret.
_KEY_TYPE = re.compile(r"(ssh|ecdsa|sk)-[a-z0-9@.-]+")


def _key_from_text(text: str, where: str) -> str:
    found: dict[str, str] = {}
    others: list[str] = []
    if looks_private(text):
        raise _private(where)
    for raw in text.splitlines():
        fields = raw.split()
        if not fields or fields[0].startswith("#"):
            continue
        if fields[0] in _USABLE and len(fields) >= 2:
            found.setdefault(fields[0], " ".join(fields))
        elif len(fields) >= 3 and fields[1] in _USABLE:
            # ssh-keyscan: "<host> <type> <base64>"; the host becomes the comment
            found.setdefault(fields[1], f"{fields[1]} {fields[2]} {fields[0]}")
        elif fields[0].startswith("age1") and len(fields) == 1:
            found.setdefault("age", fields[0])
        else:
            others += [f for f in fields[:2] if _KEY_TYPE.fullmatch(f)][:1]
    for kind in ("ssh-ed25519", "age", "ssh-rsa"):
        if kind in found:
            return found[kind]
    hint = f" (found {', '.join(sorted(set(others)))[:60]})" if others else ""
    raise UsageError(f"{where}: no ssh-ed25519, ssh-rsa or age1 key{hint}")


def _private(where: str) -> UsageError:
    return UsageError(f"{where}: {PRIVATE_KEY}; give the public key (the .pub file) instead")


def key_from_argument(value: str) -> str:
    if value == "-":
        try:
            return _key_from_text(sys.stdin.read(), "stdin")
        except UnicodeDecodeError as err:
            raise UsageError("stdin: not a public key (not text)") from err
    if value.startswith(("ssh-", "age1")) or looks_private(value):
        return _key_from_text(value, "KEY")
    path = Path(value)
    try:
        text = read_regular(path, TEXT_LIMIT).decode()
    except OSError as err:
        raise UsageError(
            f"{value}: not a key string, and cannot read it as a file: {err.strerror}"
        ) from err
    except UnicodeDecodeError as err:
        raise UsageError(f"{value}: not a public key file (not text)") from err
    return _key_from_text(text, value)
