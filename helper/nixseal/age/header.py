"""Reading age headers without any key.

The header lists one stanza per recipient. ssh-ed25519 and ssh-rsa stanzas
carry a tag derived from the recipient's public key, so which ssh keys can
read a file is visible without decrypting it; X25519 stanzas are anonymous.
The MAC needs the file key, so what a header says is a claim, not proof.
Pure Python on purpose: checks and audits must not need pyrage or keys.
"""

from __future__ import annotations

import binascii

from nixseal.errors import CryptoError
from nixseal.util.digest import sha256
from nixseal.util.keytext import PRIVATE_KEY, looks_private
from nixseal.util.lean import NamedTuple

MAGIC = b"age-encryption.org/v1\n"
ARMOR_BEGIN = b"-----BEGIN AGE ENCRYPTED FILE-----"
ARMOR_END = b"-----END AGE ENCRYPTED FILE-----"
SSH_TYPES = ("ssh-ed25519", "ssh-rsa")
_BASE64 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


class Stanza(NamedTuple):
    type: str
    args: tuple[str, ...]


class Header(NamedTuple):
    stanzas: tuple[Stanza, ...]
    armored: bool
    # The header MAC (base64): unique per encryption, so it identifies one
    # file version without any key (the state file records it).
    mac: str = ""

    @property
    def ssh_tags(self) -> frozenset[str]:
        """Tags of the ssh recipients, as "<type> <tag>" strings."""
        return frozenset(
            f"{s.type} {s.args[0]}" for s in self.stanzas if s.type in SSH_TYPES and s.args
        )

    @property
    def x25519_count(self) -> int:
        return sum(1 for s in self.stanzas if s.type == "X25519")

    @property
    def plugin_types(self) -> frozenset[str]:
        # Stanza types other than the built-in ones: plugins and grease.
        # pyrage adds one random grease stanza to every file, so this is
        # informative only.
        builtin = {"X25519", "scrypt", *SSH_TYPES}
        return frozenset(s.type for s in self.stanzas if s.type not in builtin)


def _dearmor(data: bytes, source: str) -> bytes:
    lines = data.strip().splitlines()
    if not lines or lines[0].strip() != ARMOR_BEGIN:
        raise CryptoError(f"{source}: not an age file (bad armor)")
    body = []
    for line in lines[1:]:
        if line.strip() == ARMOR_END:
            break
        body.append(line.strip())
    else:
        raise CryptoError(f"{source}: truncated age file (armor has no end line)")
    try:
        return b64decode(b"".join(body))
    except binascii.Error as err:
        raise CryptoError(f"{source}: corrupt age file (bad armor base64)") from err


def b64decode(data: bytes | str) -> bytes:
    """base64.b64decode(data, validate=True), without base64 (it imports re
    and struct: ~8 ms at every boot); binascii.Error for what it refuses."""
    if isinstance(data, str):
        if not data.isascii():
            raise binascii.Error("non-ASCII character")
        data = data.encode()
    digits = data.rstrip(b"=")
    if len(data) - len(digits) > 2 or digits.translate(None, _BASE64):
        raise binascii.Error("Non-base64 digit found")
    return binascii.a2b_base64(data)


def is_armored(data: bytes) -> bool:
    return data.lstrip().startswith(ARMOR_BEGIN)


def parse_header(data: bytes, source: str) -> Header:
    """Parse the header of an age file (binary or armored).

    Raises CryptoError naming source when the data is not an age file or
    the header is cut short.
    """
    armored = is_armored(data)
    if armored:
        data = _dearmor(data, source)
    if not data.startswith(MAGIC):
        if MAGIC.startswith(data):
            raise CryptoError(f"{source}: truncated age file (ends inside the header)")
        raise CryptoError(f"{source}: not an age file (no age-encryption.org/v1 header)")
    stanzas: list[Stanza] = []
    pos = len(MAGIC)
    while True:
        end = data.find(b"\n", pos)
        if end < 0:
            raise CryptoError(f"{source}: truncated age file (ends inside the header)")
        line = data[pos:end]
        pos = end + 1
        if line.startswith(b"--- ") or line == b"---":
            return Header(tuple(stanzas), armored, line[4:].decode("ascii", "replace"))
        if not line.startswith(b"-> "):
            raise CryptoError(f"{source}: corrupt age header (unexpected line)")
        try:
            words = line[3:].decode("ascii").split(" ")
        except UnicodeDecodeError as err:
            raise CryptoError(f"{source}: corrupt age header (non-ASCII stanza)") from err
        # Body lines: 64 columns each, the last one shorter (maybe empty).
        while True:
            end = data.find(b"\n", pos)
            if end < 0:
                raise CryptoError(f"{source}: truncated age file (ends inside the header)")
            body_line = data[pos:end]
            pos = end + 1
            if len(body_line) < 64:
                break
        stanzas.append(Stanza(words[0], tuple(words[1:])))


def ssh_key_tag(public_key: str) -> str:
    """The "<type> <tag>" an age header uses for an OpenSSH public key line.

    The tag is the unpadded base64 of the first 4 bytes of SHA-256 of the
    key's SSH wire encoding (the base64 field of the public key line).
    """
    if looks_private(public_key):
        raise CryptoError(f"{PRIVATE_KEY}, not an ssh public key")
    fields = public_key.strip().split()
    if len(fields) < 2 or fields[0] not in SSH_TYPES:
        # Never quote the input: it may be a private key given by mistake.
        kind = fields[0] if fields and fields[0].isascii() and len(fields[0]) < 40 else "?"
        raise CryptoError(f"not an ssh-ed25519 or ssh-rsa public key (starts with {kind!r})")
    try:
        blob = b64decode(fields[1])
    except binascii.Error as err:
        raise CryptoError(f"bad base64 in {fields[0]} public key") from err
    tag = binascii.b2a_base64(sha256(blob).digest()[:4], newline=False).decode().rstrip("=")
    return f"{fields[0]} {tag}"
