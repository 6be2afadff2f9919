from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from conftest import AgeKey, SshKey, make_age_key, make_ssh_key, needs_age

from nixseal.age import crypto
from nixseal.errors import CryptoError, DecryptError


def test_roundtrip_with_ssh_ed25519_and_rsa(tmp_path: Path) -> None:
    for kind in ("ed25519", "rsa"):
        key = make_ssh_key(tmp_path, kind)
        data = crypto.encrypt(b"s3cret\n", [crypto.parse_recipient(key.public, "t")])
        ids = crypto.load_identity_file(key.private_path)
        assert ids[0].kind == "ssh"
        assert crypto.decrypt(data, ids, "x.age") == b"s3cret\n"


def test_age_identity_file_with_comments_and_several_keys(tmp_path: Path) -> None:
    a = make_age_key(tmp_path, "a.txt")
    b = make_age_key(tmp_path, "b.txt")
    both = tmp_path / "both.txt"
    both.write_text(a.path.read_text() + "\n\n# second\n" + b.path.read_text())
    ids = crypto.load_identity_file(both)
    assert len(ids) == 2
    data = crypto.encrypt(b"v", [crypto.parse_recipient(b.public, "t")])
    assert crypto.decrypt(data, ids, "x.age") == b"v"


def test_wrong_key_names_file_and_cause(age_key: AgeKey, tmp_path: Path) -> None:
    other = make_age_key(tmp_path, "other.txt")
    data = crypto.encrypt(b"v", [crypto.parse_recipient(other.public, "t")])
    with pytest.raises(DecryptError) as err:
        crypto.decrypt(data, crypto.load_identity_file(age_key.path), "secrets/db.age")
    assert str(err.value).startswith("secrets/db.age: no identity matches")


def test_truncated_and_garbage(age_key: AgeKey) -> None:
    ids = crypto.load_identity_file(age_key.path)
    data = crypto.encrypt(b"x" * 5000, [crypto.parse_recipient(age_key.public, "t")])
    with pytest.raises(DecryptError, match="truncated or corrupt"):
        crypto.decrypt(data[: len(data) // 2], ids, "a.age")
    with pytest.raises(DecryptError, match="not an age file"):
        crypto.decrypt(b"plain text", ids, "a.age")


def test_load_identities_skips_unusable_with_warning(tmp_path: Path, age_key: AgeKey) -> None:
    warnings: list[tuple[str, str]] = []
    bad = tmp_path / "bad"
    bad.write_text("not a key\n")
    ids = crypto.load_identities(
        [tmp_path / "missing", bad, age_key.path], lambda p, r: warnings.append((p, r))
    )
    assert len(ids) == 1
    assert [w[0] for w in warnings] == [str(tmp_path / "missing"), str(bad)]
    with pytest.raises(CryptoError, match="no usable identity"):
        crypto.load_identities([bad], lambda p, r: None)


def test_passphrase_protected_ssh_key_is_explained(tmp_path: Path) -> None:
    path = tmp_path / "locked"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "pw", "-f", str(path)], check=True)
    with pytest.raises(CryptoError, match="passphrase"):
        crypto.load_identity_file(path)


@pytest.mark.parametrize("bad", ["age1nope", "ssh-ed25519 AAAA", "ecdsa-sha2-nistp256 AAAA", ""])
def test_bad_recipients(bad: str) -> None:
    with pytest.raises(CryptoError, match=r"rules\.toml: bad recipient"):
        crypto.parse_recipient(bad, "rules.toml")


@needs_age
def test_interop_with_age_cli(tmp_path: Path, age_key: AgeKey, ssh_key: SshKey) -> None:
    # age CLI encrypts, nixseal decrypts
    out = tmp_path / "a.age"
    subprocess.run(["age", "-r", age_key.public, "-o", str(out)], input=b"from age", check=True)
    ids = crypto.load_identity_file(age_key.path)
    assert crypto.decrypt(out.read_bytes(), ids, "a.age") == b"from age"
    # nixseal encrypts, age CLI decrypts (ssh identity)
    data = crypto.encrypt(b"from nixseal", [crypto.parse_recipient(ssh_key.public, "t")])
    res = subprocess.run(
        ["age", "-d", "-i", str(ssh_key.private_path)], input=data, capture_output=True, check=True
    )
    assert res.stdout == b"from nixseal"
