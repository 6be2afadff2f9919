from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from _admin import Repo, age_decrypt, make_repo
from conftest import needs_age

from nixseal.age.header import parse_header


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    r = make_repo(tmp_path)
    r.write_rules({"db/password": ["web1"], "api": []})
    return r


def test_encrypt_from_stdin_and_from_file(repo: Repo, tmp_path: Path) -> None:
    r = repo.run("encrypt", "db/password", stdin=b"hunter2\n")
    assert r.code == 0, r.err
    assert repo.decrypt("db/password") == b"hunter2\n"
    value = tmp_path / "value"
    value.write_bytes(b"\x00binary\xff")
    assert repo.run("encrypt", "api", str(value)).code == 0
    assert repo.decrypt("api") == b"\x00binary\xff"


def test_encrypted_to_admins_and_the_secrets_hosts_only(repo: Repo) -> None:
    repo.encrypt("db/password", b"v")
    repo.encrypt("api", b"v")
    web1_tag = parse_header(repo.age_file("db/password").read_bytes(), "f").ssh_tags
    assert len(web1_tag) == 1
    assert parse_header(repo.age_file("api").read_bytes(), "f").ssh_tags == frozenset()


def test_unknown_secret_empty_value_and_missing_file_are_clear(repo: Repo) -> None:
    r = repo.run("encrypt", "nope", stdin=b"x")
    assert r.code == 1
    assert "no secret 'nope'" in r.err and '[secrets."nope"]' in r.err
    assert "Traceback" not in r.err
    r = repo.run("encrypt", "api", stdin=b"")
    assert r.code == 2 and "empty value" in r.err
    assert not repo.age_file("api").exists()
    assert repo.run("encrypt", "api", "--allow-empty", stdin=b"").code == 0
    r = repo.run("encrypt", "api", "/nonexistent/value")
    assert r.code == 2 and "/nonexistent/value: cannot read" in r.err


def test_rules_found_from_any_subdirectory(repo: Repo) -> None:
    deep = repo.root / "hosts" / "web1" / "deeper"
    deep.mkdir(parents=True)
    assert repo.run("encrypt", "api", stdin=b"from below", cwd=deep).code == 0
    assert repo.run("decrypt", "api", cwd=deep).out == b"from below"
    assert repo.run("decrypt", "api", cwd=repo.secrets).out == b"from below"


def test_no_rules_anywhere_says_how_to_start(tmp_path: Path, repo: Repo) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    r = repo.run("encrypt", "api", stdin=b"x", cwd=elsewhere)
    assert r.code == 1 and "nixseal init" in r.err and "--rules" in r.err


def test_replacing_a_value_is_atomic_and_leaves_no_temp_files(repo: Repo) -> None:
    repo.encrypt("db/password", b"one")
    repo.encrypt("db/password", b"two")
    assert repo.decrypt("db/password") == b"two"
    leftovers = [p.name for p in repo.secrets.rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []


def test_armor_from_rules(repo: Repo) -> None:
    repo.rules.write_text(repo.rules.read_text() + "armor = true\n")  # last table: api
    repo.encrypt("api", b"armored")
    assert repo.age_file("api").read_bytes().startswith(b"-----BEGIN AGE ENCRYPTED FILE-----")
    assert repo.decrypt("api") == b"armored"


@needs_age
def test_age_cli_decrypts_what_nixseal_writes(repo: Repo) -> None:
    repo.encrypt("db/password", b"interop\n")
    file = repo.age_file("db/password")
    assert age_decrypt(repo.admin.path, file) == b"interop\n"
    assert age_decrypt(repo.hosts["web1"].private_path, file) == b"interop\n"


@needs_age
def test_nixseal_decrypts_what_age_cli_writes(repo: Repo) -> None:
    file = repo.age_file("db/password")
    file.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["age", "-e", "-a", "-r", repo.admin.public, "-o", str(file)],
        input=b"from age\n",
        check=True,
    )
    assert repo.decrypt("db/password") == b"from age\n"


def test_unwritable_target_is_one_line_and_keeps_the_state(repo: Repo) -> None:
    repo.encrypt("api", b"v1")
    state = (repo.secrets / "secrets.state.json").read_bytes()
    repo.age_file("db/password").mkdir(parents=True)  # a directory where the file goes
    r = repo.run("encrypt", "db/password", stdin=b"plaintext-value")
    assert r.code == 1
    assert (
        r.err == "nixseal encrypt: error: secrets/db/password.age: cannot write: Is a directory\n"
    )
    assert (repo.secrets / "secrets.state.json").read_bytes() == state
    assert not [p for p in repo.secrets.rglob("*.tmp")]
