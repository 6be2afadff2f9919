"""generators.py: every kind yields a value its consumers accept, new each time."""

from __future__ import annotations

import base64
import binascii
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nixseal.age import crypto, generators
from nixseal.errors import NixsealError
from nixseal.models.repo import Generator, GeneratorKind


def test_password_default_length_and_alphabet() -> None:
    values = {generators.generate(Generator(GeneratorKind.PASSWORD)).value for _ in range(50)}
    assert len(values) == 50, "passwords repeat"
    for v in values:
        text = v.decode()
        assert len(text) == generators.DEFAULT_PASSWORD_LENGTH
        assert set(text) <= set(generators.PASSWORD_ALPHABET)
        assert any(c.islower() for c in text)
        assert any(c.isupper() for c in text)
        assert any(c.isdigit() for c in text)


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=1, max_value=200))
def test_password_any_length(length: int) -> None:
    text = generators.generate(Generator(GeneratorKind.PASSWORD, length)).value.decode()
    assert len(text) == length
    assert set(text) <= set(generators.PASSWORD_ALPHABET)


def test_password_alphabet_needs_no_quoting() -> None:
    # Safe in shells, URLs and config files: no quotes, spaces, $, #, %, /, \.
    assert not set(generators.PASSWORD_ALPHABET) & set(" \t\n'\"`$#%/\\&;|<>(){}[]*?!~=+,:@")


def test_hex_and_base64_sizes() -> None:
    h = generators.generate(Generator(GeneratorKind.HEX)).value
    assert len(bytes.fromhex(h.decode())) == generators.DEFAULT_RANDOM_BYTES
    h16 = generators.generate(Generator(GeneratorKind.HEX, 16)).value
    assert len(h16) == 32 and bytes.fromhex(h16.decode())
    b = generators.generate(Generator(GeneratorKind.BASE64, 48)).value
    assert len(base64.b64decode(b, validate=True)) == 48
    assert (
        generators.generate(Generator(GeneratorKind.BASE64)).value
        != generators.generate(Generator(GeneratorKind.BASE64)).value
    )


def test_values_have_no_trailing_newline() -> None:
    for kind in (GeneratorKind.PASSWORD, GeneratorKind.HEX, GeneratorKind.BASE64):
        assert not generators.generate(Generator(kind)).value.endswith(b"\n")


def test_ed25519_rfc8032_vector() -> None:
    # RFC 8032 section 7.1, TEST 1.
    seed = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
    expected = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
    assert generators.ed25519_public_key(seed).hex() == expected


def test_ssh_ed25519_key_agrees_with_ssh_keygen(tmp_path: Path) -> None:
    gen = generators.generate(Generator(GeneratorKind.SSH_ED25519), comment="deploy")
    assert gen.public is not None and gen.public.startswith("ssh-ed25519 ")
    assert gen.public.endswith(" deploy")
    key = tmp_path / "key"
    key.write_bytes(gen.value)
    key.chmod(0o600)
    derived = subprocess.run(
        ["ssh-keygen", "-y", "-f", str(key)], check=True, capture_output=True, text=True
    ).stdout.split()
    assert derived[:2] == gen.public.split()[:2]


def test_ssh_ed25519_private_key_decrypts_for_its_public_half(tmp_path: Path) -> None:
    gen = generators.generate(Generator(GeneratorKind.SSH_ED25519), comment="x")
    assert gen.public is not None
    key = tmp_path / "id"
    key.write_bytes(gen.value)
    identities = crypto.load_identity_file(key)
    assert identities[0].kind == "ssh"
    sealed = crypto.encrypt(b"payload", [crypto.parse_recipient(gen.public, "test")])
    assert crypto.decrypt(sealed, identities, "test") == b"payload"


def test_ssh_ed25519_keys_differ() -> None:
    a = generators.generate(Generator(GeneratorKind.SSH_ED25519))
    b = generators.generate(Generator(GeneratorKind.SSH_ED25519))
    assert a.value != b.value and a.public != b.public


def test_age_identity_parses_and_matches_public() -> None:
    gen = generators.generate(Generator(GeneratorKind.AGE))
    identities = crypto.identities_from_bytes(gen.value, "gen")
    assert len(identities) == 1 and identities[0].kind == "age"
    assert gen.public is not None and gen.public.startswith("age1")
    assert f"# public key: {gen.public}".encode() in gen.value
    sealed = crypto.encrypt(b"v", [crypto.parse_recipient(gen.public, "t")])
    assert crypto.decrypt(sealed, identities, "t") == b"v"


def test_password_rejects_nonpositive_length() -> None:
    with pytest.raises(NixsealError, match="length must be positive"):
        generators.password(0)


def test_hex_value_is_hex() -> None:
    value = generators.generate(Generator(GeneratorKind.HEX, 8)).value
    try:
        binascii.unhexlify(value)
    except binascii.Error:  # pragma: no cover - the assertion below explains
        pytest.fail(f"not hex: {value!r}")
    assert value == value.lower()
