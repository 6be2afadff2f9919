"""New secret values: passwords, random bytes, ssh-ed25519 and age keys.

Everything is produced in memory from the ``secrets`` module (the OS
CSPRNG). ssh-ed25519 keys are built here rather than by ``ssh-keygen``:
ssh-keygen can only hand its private key over through a file, and even a
tmpfs file is one more place a key could outlive the run (a crash, a swap
of tmpfs pages). Ed25519 needs one fixed-base scalar multiplication to get
the public key from the random seed, and the OpenSSH private key format is
a simple length-prefixed container, so about sixty lines of arithmetic on
Python integers replace a subprocess and a file. Python integers are not
constant-time; that is acceptable for a key generated once, on the admin's
own machine, with no one able to time repeated operations on it.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import secrets
import string
import struct
from dataclasses import dataclass

from nixseal.errors import NixsealError
from nixseal.models.repo import Generator, GeneratorKind

DEFAULT_PASSWORD_LENGTH = 32
DEFAULT_RANDOM_BYTES = 32  # hex and base64: bytes of randomness, like `openssl rand`
# Letters, digits and three marks that need no quoting in shells, URLs,
# connection strings, INI/TOML/YAML values or systemd credentials.
PASSWORD_ALPHABET = string.ascii_letters + string.digits + "-_."
_CLASSES = (string.ascii_lowercase, string.ascii_uppercase, string.digits)


@dataclass(frozen=True)
class Generated:
    value: bytes  # the secret, exactly as it will be encrypted
    public: str | None = None  # public half of a key pair, one line


def generate(gen: Generator, comment: str = "") -> Generated:
    """A new value for a secret; comment labels the public half of keys."""
    if gen.kind == GeneratorKind.PASSWORD:
        return Generated(password(gen.length or DEFAULT_PASSWORD_LENGTH).encode())
    if gen.kind == GeneratorKind.HEX:
        return Generated(secrets.token_bytes(gen.length or DEFAULT_RANDOM_BYTES).hex().encode())
    if gen.kind == GeneratorKind.BASE64:
        raw = secrets.token_bytes(gen.length or DEFAULT_RANDOM_BYTES)
        return Generated(base64.b64encode(raw))
    if gen.kind == GeneratorKind.SSH_ED25519:
        private, public = ssh_ed25519(comment)
        return Generated(private, public)
    if gen.kind == GeneratorKind.AGE:
        from nixseal.age import crypto

        secret, public = crypto.generate_age_identity()
        created = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        text = f"# created: {created}\n# public key: {public}\n{secret}\n"
        return Generated(text.encode(), public)
    raise NixsealError(f"unknown generator kind {gen.kind!r}")


def password(length: int) -> str:
    """Uniform over PASSWORD_ALPHABET; from 8 characters on, at least one
    lower-case letter, one upper-case letter and one digit, since many
    services insist. Redrawing until that holds keeps every accepted
    password equally likely."""
    if length < 1:
        raise NixsealError(f"password length must be positive, not {length}")
    while True:
        pw = "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(length))
        if length < 8 or all(any(c in cls for c in pw) for cls in _CLASSES):
            return pw


# --- Ed25519 (RFC 8032): curve -x^2 + y^2 = 1 + d x^2 y^2 over GF(2^255 - 19)

_P = 2**255 - 19
_D = -121665 * pow(121666, -1, _P) % _P
_BASE_Y = 4 * pow(5, -1, _P) % _P
_BASE_X = 15112221349535400772501151409588531511454012693041857206046113283949847762202

# Points in extended coordinates (X, Y, Z, T) with x = X/Z, y = Y/Z, x*y = T/Z.
_Point = tuple[int, int, int, int]
_BASE: _Point = (_BASE_X, _BASE_Y, 1, _BASE_X * _BASE_Y % _P)
_IDENTITY: _Point = (0, 1, 1, 0)


def _add(p: _Point, q: _Point) -> _Point:
    # Unified addition (add-2008-hwcd-3 for a = -1); also correct for doubling.
    x1, y1, z1, t1 = p
    x2, y2, z2, t2 = q
    a = (y1 - x1) * (y2 - x2) % _P
    b = (y1 + x1) * (y2 + x2) % _P
    c = 2 * _D * t1 * t2 % _P
    dd = 2 * z1 * z2 % _P
    e, f, g, h = b - a, dd - c, dd + c, b + a
    return (e * f % _P, g * h % _P, f * g % _P, e * h % _P)


def _scalar_mult(k: int, p: _Point) -> _Point:
    acc = _IDENTITY
    while k:
        if k & 1:
            acc = _add(acc, p)
        p = _add(p, p)
        k >>= 1
    return acc


def ed25519_public_key(seed: bytes) -> bytes:
    """The 32-byte public key of a 32-byte Ed25519 private seed."""
    h = hashlib.sha512(seed).digest()
    a = int.from_bytes(h[:32], "little")
    a &= (1 << 254) - 8  # clear the 3 low bits and bit 255
    a |= 1 << 254
    x, y, z, _ = _scalar_mult(a, _BASE)
    zi = pow(z, -1, _P)
    x, y = x * zi % _P, y * zi % _P
    return (y | (x & 1) << 255).to_bytes(32, "little")


def _ssh_string(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def ssh_ed25519(comment: str = "") -> tuple[bytes, str]:
    """A new unencrypted OpenSSH ed25519 private key and its public line."""
    return openssh_ed25519(secrets.token_bytes(32), comment)


def openssh_ed25519(seed: bytes, comment: str = "") -> tuple[bytes, str]:
    """The OpenSSH private key file and public line of an Ed25519 seed."""
    pub = ed25519_public_key(seed)
    key_type = b"ssh-ed25519"
    pub_blob = _ssh_string(key_type) + _ssh_string(pub)
    check = secrets.token_bytes(4)
    private = (
        check
        + check
        + _ssh_string(key_type)
        + _ssh_string(pub)
        + _ssh_string(seed + pub)
        + _ssh_string(comment.encode())
    )
    # Pad to the cipher block size ("none": 8) with bytes 1, 2, 3, ...
    private += bytes(range(1, 1 + (-len(private)) % 8))
    body = (
        b"openssh-key-v1\0"
        + _ssh_string(b"none")
        + _ssh_string(b"none")
        + _ssh_string(b"")
        + struct.pack(">I", 1)
        + _ssh_string(pub_blob)
        + _ssh_string(private)
    )
    b64 = base64.b64encode(body)
    lines = [b64[i : i + 70] for i in range(0, len(b64), 70)]
    pem = (
        b"-----BEGIN OPENSSH PRIVATE KEY-----\n"
        + b"\n".join(lines)
        + b"\n-----END OPENSSH PRIVATE KEY-----\n"
    )
    public = f"ssh-ed25519 {base64.b64encode(pub_blob).decode()}"
    return pem, f"{public} {comment}" if comment else public
