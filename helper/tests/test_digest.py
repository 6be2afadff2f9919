"""nixseal.util.digest gives hashlib's SHA-256 and hmac's HMAC-SHA256."""

from __future__ import annotations

import hashlib
import hmac

from hypothesis import example, given
from hypothesis import strategies as st

from nixseal.util import digest


@given(st.binary(max_size=300))
def test_sha256_is_hashlib_s(data: bytes) -> None:
    assert digest.sha256(data).hexdigest() == hashlib.sha256(data).hexdigest()


@given(st.binary(max_size=200), st.binary(max_size=300))
@example(b"", b"")
@example(b"k" * 64, b"block-sized key")
@example(b"k" * 65, b"a key longer than a block is hashed first")
def test_hmac_is_hmac_s(key: bytes, message: bytes) -> None:
    assert digest.hmac_sha256(key, message) == hmac.digest(key, message, "sha256")


def test_compare_digest_compares() -> None:
    assert digest.compare_digest(b"abc", b"abc")
    assert not digest.compare_digest(b"abc", b"abd")
    assert not digest.compare_digest(b"abc", b"ab")
