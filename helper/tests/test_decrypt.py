from __future__ import annotations

from pathlib import Path

import pytest
from _admin import Repo, make_repo, run_cli
from conftest import make_age_key


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    r = make_repo(tmp_path)
    r.write_rules({"db": ["web1"]})
    return r


def test_decrypt_writes_exact_bytes_to_stdout(repo: Repo) -> None:
    repo.encrypt("db", b"line1\nline2")
    r = repo.run("decrypt", "db")
    assert (r.code, r.out) == (0, b"line1\nline2")


def test_host_key_decrypts_with_identity_option(repo: Repo) -> None:
    repo.encrypt("db", b"for the host")
    r = run_cli("-i", str(repo.hosts["web1"].private_path), "decrypt", "db", cwd=repo.root)
    assert r.out == b"for the host"


def test_missing_file_names_it_and_the_fix(repo: Repo) -> None:
    r = repo.run("decrypt", "db")
    assert r.code == 1
    assert "secrets/db.age: missing" in r.err and "nixseal edit db" in r.err


def test_wrong_key_names_file_and_cause(repo: Repo, tmp_path: Path) -> None:
    repo.encrypt("db", b"v")
    other = make_age_key(tmp_path, "other.txt")
    r = run_cli("-i", str(other.path), "decrypt", "db", cwd=repo.root)
    assert r.code == 1
    assert "secrets/db.age: no identity matches" in r.err
    assert r.out == b""


def test_corrupt_and_truncated_files(repo: Repo) -> None:
    repo.encrypt("db", b"x" * 1000)
    data = repo.age_file("db").read_bytes()
    repo.age_file("db").write_bytes(data[: len(data) - 100])
    r = repo.run("decrypt", "db")
    assert r.code == 1 and "truncated or corrupt" in r.err and "Traceback" not in r.err
    repo.age_file("db").write_bytes(b"not age at all")
    r = repo.run("decrypt", "db")
    assert r.code == 1 and "not an age file" in r.err


def test_identity_from_environment_and_default_path(
    repo: Repo, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    repo.encrypt("db", b"env")
    monkeypatch.setenv("NIXSEAL_IDENTITY", str(repo.admin.path))
    assert run_cli("decrypt", "db", cwd=repo.root).out == b"env"
    monkeypatch.delenv("NIXSEAL_IDENTITY")
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    r = run_cli("decrypt", "db", cwd=repo.root)
    assert r.code == 1
    assert "~/.ssh/id_ed25519: no such identity file" in r.err
    assert "NIXSEAL_IDENTITY" in r.err
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_ed25519").write_bytes(repo.hosts["web1"].private_path.read_bytes())
    assert run_cli("decrypt", "db", cwd=repo.root).out == b"env"
