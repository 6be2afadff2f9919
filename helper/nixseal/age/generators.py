"""New secret values: passwords, random bytes, ssh-ed25519, age and
WireGuard keys, bcrypt htpasswd lines, a CA and certificates it signs.
(Command generators, which run a script of the repository, are the admin
side's: nixseal.repo.command.)

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
from collections.abc import Mapping
from dataclasses import dataclass

from nixseal.errors import NixsealError
from nixseal.models.repo import Generator, GeneratorKind

TYPE_CHECKING = False
if TYPE_CHECKING:
    from cryptography import x509

DEFAULT_PASSWORD_LENGTH = 32
DEFAULT_RANDOM_BYTES = 32  # hex and base64: bytes of randomness, like `openssl rand`
DEFAULT_CA_DAYS = 3650
DEFAULT_CERT_DAYS = 365
BCRYPT_ROUNDS = 12
# Letters, digits and three marks that need no quoting in shells, URLs,
# connection strings, INI/TOML/YAML values or systemd credentials.
PASSWORD_ALPHABET = string.ascii_letters + string.digits + "-_."
_CLASSES = (string.ascii_lowercase, string.ascii_uppercase, string.digits)


@dataclass(frozen=True)
class Generated:
    value: bytes  # the secret, exactly as it will be encrypted
    public: str | None = None  # public half: a key's line, a certificate's PEM


def generate(
    gen: Generator,
    comment: str = "",
    inputs: Mapping[str, bytes] | None = None,
    public_inputs: Mapping[str, bytes] | None = None,
) -> Generated:
    """A new value for a secret; comment labels the public half of keys.
    inputs: the values of gen.inputs; public_inputs: their public halves."""
    if gen.kind in (GeneratorKind.HTPASSWD, GeneratorKind.CERT):
        return _made_from(gen, inputs or {}, public_inputs or {})
    if gen.kind == GeneratorKind.PASSWORD:
        return Generated(password(gen.length or DEFAULT_PASSWORD_LENGTH).encode())
    if gen.kind == GeneratorKind.HEX:
        return Generated(secrets.token_bytes(gen.length or DEFAULT_RANDOM_BYTES).hex().encode())
    if gen.kind == GeneratorKind.BASE64:
        raw = secrets.token_bytes(gen.length or DEFAULT_RANDOM_BYTES)
        return Generated(base64.b64encode(raw))
    return _key_pair(gen, comment)


def _key_pair(gen: Generator, comment: str) -> Generated:
    if gen.kind == GeneratorKind.SSH_ED25519:
        private, public = ssh_ed25519(comment)
        return Generated(private, public)
    if gen.kind == GeneratorKind.AGE:
        from nixseal.age import crypto

        secret, age_public = crypto.generate_age_identity()
        created = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        text = f"# created: {created}\n# public key: {age_public}\n{secret}\n"
        return Generated(text.encode(), age_public)
    if gen.kind == GeneratorKind.WIREGUARD:
        wg_private, wg_public = wireguard_keypair()
        return Generated(f"{wg_private}\n".encode(), wg_public)
    if gen.kind == GeneratorKind.CA:
        key, cert = certificate_authority(comment, gen.days or DEFAULT_CA_DAYS)
        return Generated(key, cert)
    raise NixsealError(f"unknown generator kind {gen.kind!r}")


def _made_from(
    gen: Generator, inputs: Mapping[str, bytes], public_inputs: Mapping[str, bytes]
) -> Generated:
    source = gen.inputs[0]
    if gen.kind == GeneratorKind.HTPASSWD:
        assert gen.user is not None
        line = htpasswd_line(gen.user, inputs[source])
        return Generated(f"{line}\n".encode(), line if gen.public else None)
    if source not in public_inputs:
        raise NixsealError(f"{source}.pub, the CA's certificate, is missing; rotate {source}")
    key, cert = certificate(
        gen.names, inputs[source], public_inputs[source], gen.days or DEFAULT_CERT_DAYS
    )
    return Generated(key, cert)


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


# --- WireGuard: X25519 keys as `wg genkey` and `wg pubkey` print them


def wireguard_keypair() -> tuple[str, str]:
    """A new private key and its public key, base64 as wg prints them."""
    raw = bytearray(secrets.token_bytes(32))
    # Clamped as Curve25519 wants and as `wg genkey` stores it.
    raw[0] &= 248
    raw[31] = (raw[31] & 127) | 64
    private = base64.b64encode(bytes(raw)).decode()
    return private, wireguard_public_key(private)


def wireguard_public_key(private: str) -> str:
    """`wg pubkey` of a base64 private key."""
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    raw = base64.b64decode(private, validate=True)
    public = X25519PrivateKey.from_private_bytes(raw).public_key().public_bytes_raw()
    return base64.b64encode(public).decode()


# --- htpasswd


def htpasswd_line(user: str, password: bytes) -> str:
    """user:bcrypt-hash, as `htpasswd -B` writes it; the password is the
    value of another secret (one trailing newline is not part of it)."""
    import bcrypt

    pw = password.removesuffix(b"\n")
    if len(pw) > 72:
        raise NixsealError(
            f"the password for {user!r} is {len(pw)} bytes long; bcrypt uses at most 72"
        )
    hashed = bcrypt.hashpw(pw, bcrypt.gensalt(rounds=BCRYPT_ROUNDS, prefix=b"2b"))
    return f"{user}:{hashed.decode()}"


# --- a CA and the certificates it signs (ECDSA P-256, PEM)


def certificate_authority(name: str, days: int) -> tuple[bytes, str]:
    """A new CA: its private key (PKCS#8 PEM) and self-signed certificate."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name or "nixseal CA")])
    start = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=5)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return _key_pem(key), _cert_pem(cert)


def certificate(
    names: tuple[str, ...], ca_key_pem: bytes, ca_cert_pem: bytes, days: int
) -> tuple[bytes, str]:
    """A new key and a certificate for names, signed by the CA."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    try:
        ca_key = serialization.load_pem_private_key(ca_key_pem, password=None)
        ca_cert = x509.load_pem_x509_certificate(ca_cert_pem)
    except ValueError as err:
        raise NixsealError(f"the CA's key or certificate does not parse: {err}") from err
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise NixsealError("the CA's key is not an ECDSA key made by nixseal")
    key = ec.generate_private_key(ec.SECP256R1())
    start = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=5)
    end = min(start + datetime.timedelta(days=days), ca_cert.not_valid_after_utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return _key_pem(key), _cert_pem(cert)


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    from cryptography import x509

    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=not cert_sign,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _key_pem(key: object) -> bytes:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _cert_pem(cert: object) -> str:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    assert isinstance(cert, x509.Certificate)
    return cert.public_bytes(serialization.Encoding.PEM).decode().rstrip("\n")
