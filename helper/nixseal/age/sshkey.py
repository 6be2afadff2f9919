"""OpenSSH private keys: whether one is passphrase-protected, and unlocking one.

pyrage reads only unprotected OpenSSH keys, and an admin's key usually has
a passphrase. Unlocking decrypts the key in memory with the
``cryptography`` package (imported only then) and hands pyrage the same
key without its passphrase, as OpenSSH text in a bytes object: it is never
written anywhere. A host's key is never unlocked: nobody is there at boot
to type a passphrase.
"""

from __future__ import annotations

import base64
import binascii

from nixseal.errors import CryptoError, WrongPassphrase

BEGIN = b"-----BEGIN OPENSSH PRIVATE KEY-----"
_END = b"-----END OPENSSH PRIVATE KEY-----"
_MAGIC = b"openssh-key-v1\0"


def cipher(data: bytes) -> str | None:
    """The cipher an OpenSSH private key file is encrypted with ("none" when
    it has no passphrase), or None when data is not such a file."""
    text = data.strip()
    if not text.startswith(BEGIN) or _END not in text:
        return None
    body = b"".join(text[len(BEGIN) : text.index(_END)].split())
    try:
        raw = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        return None
    start = len(_MAGIC) + 4
    if not raw.startswith(_MAGIC) or len(raw) < start:
        return None
    length = int.from_bytes(raw[len(_MAGIC) : start], "big")
    name = raw[start : start + length]
    if len(name) != length:
        return None
    return name.decode("ascii", "replace")


def is_protected(data: bytes) -> bool:
    found = cipher(data)
    return found is not None and found != "none"


def unlock(data: bytes, passphrase: str, source: str) -> bytes:
    """The key in data without its passphrase, as OpenSSH private key text."""
    try:
        from cryptography.exceptions import UnsupportedAlgorithm
        from cryptography.hazmat.primitives import serialization
    except ImportError as err:  # an install without the dependency
        raise CryptoError(
            f"{source}: passphrase-protected ssh key, and the Python package "
            "'cryptography' (with 'bcrypt') that unlocks it is not installed"
        ) from err
    try:
        key = serialization.load_ssh_private_key(data, passphrase.encode())
    except ValueError as err:
        # cryptography says "Corrupt data: broken checksum" for a wrong
        # passphrase: the checksum is what the passphrase decrypts.
        if "checksum" in str(err):
            raise WrongPassphrase(f"{source}: wrong passphrase") from err
        raise CryptoError(f"{source}: unusable ssh private key: {err}") from err
    except UnsupportedAlgorithm as err:
        raise CryptoError(f"{source}: unusable ssh private key: {err}") from err
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )


def public_line(data: bytes) -> str | None:
    """The public key line (`ssh-ed25519 AAAA...`) stored in an OpenSSH
    private key file, or None when data is not one. The public half is
    stored unencrypted beside the private one, so no passphrase is needed."""
    if cipher(data) is None:
        return None
    text = data.strip()
    raw = base64.b64decode(b"".join(text[len(BEGIN) : text.index(_END)].split()))
    at = len(_MAGIC)
    for _ in range(3):  # cipher name, kdf name, kdf options
        value, at = _string(raw, at)
        if value is None:
            return None
    if raw[at : at + 4] != b"\0\0\0\1":  # one key
        return None
    blob, at = _string(raw, at + 4)
    if blob is None:
        return None
    key_type, _ = _string(blob, 0)
    if key_type is None:
        return None
    return f"{key_type.decode('ascii', 'replace')} {base64.b64encode(blob).decode()}"


def _string(raw: bytes, at: int) -> tuple[bytes | None, int]:
    """An SSH wire string at offset at, and the offset after it."""
    if len(raw) < at + 4:
        return None, at
    length = int.from_bytes(raw[at : at + 4], "big")
    value = raw[at + 4 : at + 4 + length]
    return (value, at + 4 + length) if len(value) == length else (None, at)
