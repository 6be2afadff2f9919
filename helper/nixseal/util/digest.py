"""SHA-256 and HMAC-SHA256 for the boot path, without hashlib and hmac.

hashlib loads OpenSSL's libcrypto, about 5 ms of every boot; the
interpreter's own SHA-256 module (`_sha2` from Python 3.12 on, `_sha256`
before) gives the same digests at no cost. HMAC is RFC 2104 over it,
as the hmac module computes it; tests/test_digest.py holds both to
hashlib and hmac.
"""

from __future__ import annotations

TYPE_CHECKING = False

if TYPE_CHECKING:
    from hashlib import sha256
    from hmac import compare_digest
else:
    from _operator import _compare_digest as compare_digest

    try:
        from _sha2 import sha256
    except ImportError:
        try:
            from _sha256 import sha256
        except ImportError:  # an interpreter built without its own hashes
            from hashlib import sha256

__all__ = ["compare_digest", "hmac_sha256", "sha256"]

_BLOCK = 64
_INNER = bytes(x ^ 0x36 for x in range(256))
_OUTER = bytes(x ^ 0x5C for x in range(256))


def hmac_sha256(key: bytes, message: bytes) -> bytes:
    if len(key) > _BLOCK:
        key = sha256(key).digest()
    key = key.ljust(_BLOCK, b"\0")
    inner = sha256(key.translate(_INNER))
    inner.update(message)
    return sha256(key.translate(_OUTER) + inner.digest()).digest()
