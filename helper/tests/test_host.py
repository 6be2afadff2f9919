from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from _admin import Repo, make_repo
from conftest import make_ssh_key

from nixseal.age.header import parse_header, ssh_key_tag
from nixseal.repo.rules import load_rules


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    r = make_repo(tmp_path)
    r.write_rules({"db": ["web1"]})
    r.rules.write_text("# keep this comment\n" + r.rules.read_text())
    r.encrypt("db", b"v")
    return r


def test_add_from_key_string(repo: Repo, tmp_path: Path) -> None:
    key = make_ssh_key(tmp_path, name="web2")
    r = repo.run("host", "add", "web2", key.public)
    assert r.code == 0, r.err
    rules = load_rules(repo.rules)
    assert rules.hosts["web2"].key == key.public
    assert repo.rules.read_text().startswith("# keep this comment\n")
    assert 'list "web2" in the hosts of its secrets' in r.text


def test_add_from_pub_file_and_keyscan_output(repo: Repo, tmp_path: Path) -> None:
    key = make_ssh_key(tmp_path, name="web2")
    assert repo.run("host", "add", "web2", f"{key.private_path}.pub").code == 0
    other = make_ssh_key(tmp_path, name="web3")
    b64 = other.public.split()[1]
    scan = (
        "# web3:22 SSH-2.0-OpenSSH_9.6\n"
        "web3 ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAI\n"
        f"web3 ssh-ed25519 {b64}\n"
    )
    r = repo.run("host", "add", "web3", "-", stdin=scan.encode())
    assert r.code == 0, r.err
    assert load_rules(repo.rules).hosts["web3"].key == f"ssh-ed25519 {b64} web3"


def test_ecdsa_only_and_garbage_are_rejected(repo: Repo) -> None:
    before = repo.rules.read_text()
    r = repo.run("host", "add", "web9", "-", stdin=b"web9 ecdsa-sha2-nistp256 AAAA\n")
    assert r.code == 2 and "no ssh-ed25519, ssh-rsa or age1 key" in r.err
    r = repo.run("host", "add", "web9", "ssh-ed25519 notbase64!")
    assert r.code == 1 and "bad recipient" in r.err
    assert "; give the whole public key: age1..., or ssh-ed25519 AAAA..." in r.err
    r = repo.run("host", "add", "bad/name", repo.hosts["web1"].public)
    assert r.code == 1 and "[hosts] bad/name: bad name" in r.err
    assert repo.rules.read_text() == before


def test_existing_host_needs_replace(repo: Repo, tmp_path: Path) -> None:
    key = make_ssh_key(tmp_path, name="new")
    r = repo.run("host", "add", "web1", key.public)
    assert r.code == 2 and "pass --replace" in r.err


def test_replace_prints_rekey_command_or_rekeys(repo: Repo, tmp_path: Path) -> None:
    key = make_ssh_key(tmp_path, name="new")
    r = repo.run("host", "add", "web1", key.public, "--replace")
    assert r.code == 0, r.err
    assert "run: nixseal rekey db" in r.text
    assert repo.run("check").code == 1
    key2 = make_ssh_key(tmp_path, name="newer")
    r = repo.run("host", "add", "web1", key2.public, "--replace", "--rekey")
    assert r.code == 0, r.err
    assert "rekeyed 1 of 1" in r.text
    tags = parse_header(repo.age_file("db").read_bytes(), "db").ssh_tags
    assert tags == {ssh_key_tag(key2.public)}
    assert repo.run("check").code == 0
    assert repo.rules.read_text().startswith("# keep this comment\n")


def test_private_key_or_binary_file_is_refused_without_quoting_it(
    repo: Repo, tmp_path: Path
) -> None:
    before = repo.rules.read_bytes()
    key = make_ssh_key(tmp_path, name="web2")
    secret_line = key.private_path.read_text().splitlines()[1]
    r = repo.run("host", "add", "web2", str(key.private_path))
    assert r.code == 2 and "a private key; give the public key (the .pub file)" in r.err
    assert secret_line[:20] not in r.err
    binary = tmp_path / "binary"
    binary.write_bytes(bytes(range(256)))
    r = repo.run("host", "add", "web2", str(binary))
    assert r.err == f"nixseal host: error: {binary}: not a public key file (not text)\n"
    r = repo.run("host", "add", "web2", "-", stdin=b"\xff\xfe")
    assert r.code == 2 and len(r.err.splitlines()) == 1
    assert repo.rules.read_bytes() == before


def test_unusable_key_types_are_named_by_type_only(repo: Repo, tmp_path: Path) -> None:
    pub = tmp_path / "ecdsa.pub"
    pub.write_text("ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAI root@web2\n")
    r = repo.run("host", "add", "web2", str(pub))
    assert r.code == 2 and r.err.endswith("(found ecdsa-sha2-nistp256)\n")


def test_host_name_that_toml_cannot_hold_is_a_bad_name(repo: Repo) -> None:
    # Not UTF-8 (e.g. a Latin-1 terminal): a real process, as argv is bytes.
    before = repo.rules.read_bytes()
    argv = [sys.executable, "-m", "nixseal", "host", "add", b"w\xff", repo.hosts["web1"].public]
    r = subprocess.run(argv, cwd=repo.root, capture_output=True, check=False)
    assert r.returncode == 1
    assert (
        r.stderr == b"nixseal host: error: secrets/secrets.toml: [hosts] w\\udcff: bad name: "
        b"use A-Z a-z 0-9 . _ -\n"
    )
    assert repo.rules.read_bytes() == before


def test_many_affected_secrets_get_the_short_rekey_command(repo: Repo, tmp_path: Path) -> None:
    repo.write_rules({f"s{i}": ["web1"] for i in range(7)})
    for i in range(6):  # s6 has no file yet: nothing to rekey
        repo.encrypt(f"s{i}", b"v")
    key = make_ssh_key(tmp_path, name="new")
    r = repo.run("host", "add", "web1", key.public, "--replace", "--no-rekey")
    assert r.code == 0, r.err
    assert r.text.splitlines()[-1] == ("6 secrets are encrypted to the old key; run: nixseal rekey")
