"""Private key text where a public key belongs: recognised, named, never shown.

Whoever pastes a private key into the rules, or passes it to ``host add``,
must not find it again in a terminal's scroll-back, a CI log or a bug
report. Every message that would quote a key string asks shown() for it.
"""

from __future__ import annotations

from nixseal.errors import PrivateKeyError

# Upper-cased text is searched: bech32 is case-insensitive, so age keys may
# be written in lower case too.
_MARKERS = (
    "AGE-SECRET-KEY-",  # age identities (also AGE-SECRET-KEY-PQ-...)
    "AGE-PLUGIN-",  # plugin identities (hardware keys): what a plugin needs to decrypt
    "PRIVATE KEY-----",  # PEM and OpenSSH armour: BEGIN [OPENSSH |RSA |EC ]PRIVATE KEY
    "PUTTY-USER-KEY-FILE",
    # base64 of "openssh-key-v1\0", how every OpenSSH private key's body starts
    "B3BLBNNZAC1RZXKTDJE",
)

PRIVATE_KEY = "a private key"


def looks_private(text: str) -> bool:
    """Whether text holds (a piece of) a private key."""
    upper = text.upper()
    return any(m in upper for m in _MARKERS)


def shown(text: str, width: int = 40) -> str:
    """How a message may show a key string: quoted and cut, or just named."""
    return PRIVATE_KEY if looks_private(text) else repr(text[:width])


def refuse(where: str) -> PrivateKeyError:
    return PrivateKeyError(
        f"{where}: {PRIVATE_KEY} where a public key is expected; give the public key "
        "(age1..., or the line of the .pub file)"
    )
