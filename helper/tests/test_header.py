from __future__ import annotations

import base64
import hashlib
import subprocess
from pathlib import Path

import pytest
from conftest import AgeKey, SshKey, make_ssh_key, needs_age

from nixseal.age import crypto
from nixseal.age.header import parse_header, ssh_key_tag
from nixseal.errors import CryptoError


def test_header_names_ssh_recipients_by_tag(tmp_path: Path, age_key: AgeKey) -> None:
    ed = make_ssh_key(tmp_path, "ed25519")
    rsa = make_ssh_key(tmp_path, "rsa")
    recipients = [
        crypto.parse_recipient(r, "test") for r in (ed.public, rsa.public, age_key.public)
    ]
    data = crypto.encrypt(b"value", recipients)
    header = parse_header(data, "x.age")
    assert header.ssh_tags == {ssh_key_tag(ed.public), ssh_key_tag(rsa.public)}
    assert header.x25519_count == 1
    assert not header.armored


def test_tag_is_sha256_prefix_of_wire_key(ssh_key: SshKey) -> None:
    blob = base64.b64decode(ssh_key.public.split()[1])
    expected = base64.b64encode(hashlib.sha256(blob).digest()[:4]).decode().rstrip("=")
    assert ssh_key_tag(ssh_key.public) == f"ssh-ed25519 {expected}"


def test_armored_header(age_key: AgeKey, ssh_key: SshKey) -> None:
    data = crypto.encrypt(b"v", [crypto.parse_recipient(ssh_key.public, "t")], armor=True)
    header = parse_header(data, "a.age")
    assert header.armored
    assert header.ssh_tags == {ssh_key_tag(ssh_key.public)}


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"", "truncated"),
        (b"age-encryption", "truncated"),
        (b"hello world\n", "not an age file"),
        (b"age-encryption.org/v1\n-> X25519 abc\n", "truncated"),
        (b"age-encryption.org/v1\nbogus\n", "corrupt"),
        (b"-----BEGIN AGE ENCRYPTED FILE-----\nYWJj\n", "truncated"),
    ],
)
def test_bad_headers_name_the_file(data: bytes, words: str) -> None:
    with pytest.raises(CryptoError) as err:
        parse_header(data, "secrets/x.age")
    assert "secrets/x.age" in str(err.value)
    assert words in str(err.value)


@needs_age
def test_header_of_file_written_by_age_cli(tmp_path: Path, ssh_key: SshKey) -> None:
    out = tmp_path / "x.age"
    subprocess.run(["age", "-r", ssh_key.public, "-o", str(out)], input=b"v", check=True)
    assert parse_header(out.read_bytes(), str(out)).ssh_tags == {ssh_key_tag(ssh_key.public)}


def test_tag_of_a_private_key_never_quotes_it(ssh_key: SshKey) -> None:
    text = ssh_key.private_path.read_text()
    with pytest.raises(CryptoError) as err:
        ssh_key_tag(text)
    body = "".join(text.splitlines()[1:3])
    assert body[:12] not in str(err.value)
    assert str(err.value) == "a private key, not an ssh public key"
