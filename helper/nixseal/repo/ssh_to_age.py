"""The age recipient that ssh-to-age makes from an ssh-ed25519 key.

sops-nix hosts decrypt with their ssh host key turned into an age X25519
key, so `.sops.yaml` lists that age key where the rules have the ssh key:
this finds one from the other. The Edwards point's y becomes the Montgomery
u of the same curve, bech32-encoded as age writes its recipients.
"""

from __future__ import annotations

import base64
import binascii

_BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_P = 2**255 - 19


def _bech32_checksum(values: list[int]) -> int:
    gen = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
    chk = 1
    for v in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ v
        for i, g in enumerate(gen):
            chk ^= g if (top >> i) & 1 else 0
    return chk


def bech32(hrp: str, data: bytes) -> str:
    acc = bits = 0
    five: list[int] = []
    for byte in data:
        acc, bits = (acc << 8) | byte, bits + 8
        while bits >= 5:
            bits -= 5
            five.append((acc >> bits) & 31)
    if bits:
        five.append((acc << (5 - bits)) & 31)
    expanded = [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]
    pm = _bech32_checksum([*expanded, *five, 0, 0, 0, 0, 0, 0]) ^ 1
    return (
        hrp
        + "1"
        + "".join(_BECH32[d] for d in [*five, *((pm >> 5 * (5 - i)) & 31 for i in range(6))])
    )


def age_of_ssh_key(key: str) -> str | None:
    """The age X25519 recipient ssh-to-age derives from an ssh-ed25519 key."""
    fields = key.split()
    if len(fields) < 2 or fields[0] != "ssh-ed25519":
        return None
    try:
        blob = base64.b64decode(fields[1], validate=True)
    except binascii.Error:
        return None
    # string "ssh-ed25519", string key (32 bytes): each with a 4-byte length
    if len(blob) != 4 + 11 + 4 + 32:
        return None
    y = int.from_bytes(blob[-32:], "little") & ((1 << 255) - 1)
    u = (1 + y) * pow(1 - y, _P - 2, _P) % _P  # Edwards y to Montgomery u
    return bech32("age", u.to_bytes(32, "little"))
