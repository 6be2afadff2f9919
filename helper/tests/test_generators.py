"""generators.py: every kind yields a value its consumers accept, new each time."""

from __future__ import annotations

import base64
import binascii
import shutil
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


# --- WireGuard -------------------------------------------------------------

# RFC 7748, section 6.1: Alice's and Bob's X25519 private and public keys.
RFC7748 = [
    (
        "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
        "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a",
    ),
    (
        "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb",
        "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f",
    ),
]


@pytest.mark.parametrize(("private", "public"), RFC7748, ids=["alice", "bob"])
def test_wireguard_public_key_matches_rfc7748(private: str, public: str) -> None:
    b64 = base64.b64encode(bytes.fromhex(private)).decode()
    assert generators.wireguard_public_key(b64) == base64.b64encode(bytes.fromhex(public)).decode()


def test_wireguard_keys_are_clamped_and_printed_as_wg_does() -> None:
    seen = set()
    for _ in range(20):
        new = generators.generate(Generator(GeneratorKind.WIREGUARD))
        assert new.value.endswith(b"\n") and new.value.count(b"\n") == 1  # as `wg genkey`
        raw = base64.b64decode(new.value.strip(), validate=True)
        assert len(raw) == 32
        assert raw[0] & 7 == 0 and raw[31] & 0x80 == 0 and raw[31] & 0x40
        assert new.public == generators.wireguard_public_key(new.value.decode().strip())
        assert len(base64.b64decode(new.public, validate=True)) == 32
        seen.add(new.value)
    assert len(seen) == 20


@pytest.mark.skipif(shutil.which("wg") is None, reason="needs wg (wireguard-tools)")
def test_wireguard_public_key_is_what_wg_pubkey_prints() -> None:
    new = generators.generate(Generator(GeneratorKind.WIREGUARD))
    wg = subprocess.run(["wg", "pubkey"], input=new.value, capture_output=True, check=True)
    assert wg.stdout.decode().strip() == new.public


# --- htpasswd --------------------------------------------------------------


def test_htpasswd_line_verifies_with_bcrypt() -> None:
    import bcrypt

    gen = Generator(GeneratorKind.HTPASSWD, inputs=("web/admin",), user="admin")
    new = generators.generate(gen, inputs={"web/admin": b"correct horse\n"})
    user, _, hashed = new.value.decode().rstrip("\n").partition(":")
    assert user == "admin" and hashed.startswith("$2b$12$")
    assert bcrypt.checkpw(b"correct horse", hashed.encode())  # the newline is not hashed
    assert not bcrypt.checkpw(b"wrong", hashed.encode())
    assert new.public is None  # secret unless declared public
    public = generators.generate(gen._replace(public=("hash",)), inputs={"web/admin": b"pw"})
    assert public.public == public.value.decode().rstrip("\n")


def test_htpasswd_refuses_what_bcrypt_would_cut() -> None:
    gen = Generator(GeneratorKind.HTPASSWD, inputs=("pw",), user="admin")
    with pytest.raises(NixsealError, match="is 73 bytes long; bcrypt uses at most 72"):
        generators.generate(gen, inputs={"pw": b"x" * 73})


# --- a CA and its certificates ---------------------------------------------


def test_ca_and_cert_verify_with_cryptography() -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    ca = generators.generate(Generator(GeneratorKind.CA), comment="pki/ca")
    assert ca.public is not None
    ca_cert = x509.load_pem_x509_certificate(ca.public.encode())
    ca_key = serialization.load_pem_private_key(ca.value, password=None)
    assert ca_cert.public_key() == ca_key.public_key()
    assert ca_cert.subject == ca_cert.issuer
    assert ca_cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "pki/ca"
    assert ca_cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    ca_cert.verify_directly_issued_by(ca_cert)

    gen = Generator(
        GeneratorKind.CERT, inputs=("pki/ca",), names=("web1.example", "*.web1.example"), days=30
    )
    cert = generators.generate(
        gen, inputs={"pki/ca": ca.value}, public_inputs={"pki/ca": ca.public.encode()}
    )
    assert cert.public is not None
    leaf = x509.load_pem_x509_certificate(cert.public.encode())
    leaf_key = serialization.load_pem_private_key(cert.value, password=None)
    assert isinstance(leaf_key, ec.EllipticCurvePrivateKey)
    assert leaf.public_key() == leaf_key.public_key()
    assert leaf.issuer == ca_cert.subject
    leaf.verify_directly_issued_by(ca_cert)  # the signature is the CA's
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["web1.example", "*.web1.example"]
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert (leaf.not_valid_after_utc - leaf.not_valid_before_utc).days == 30
    # Another CA's certificate does not vouch for it.
    other = generators.generate(Generator(GeneratorKind.CA), comment="other")
    assert other.public is not None
    with pytest.raises(ValueError, match=r"[Ii]ssuer"):
        leaf.verify_directly_issued_by(x509.load_pem_x509_certificate(other.public.encode()))
