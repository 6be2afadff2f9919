from __future__ import annotations

import subprocess
import sys
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


def _decrypt_process(repo: Repo, shell_redirect: str) -> subprocess.CompletedProcess[bytes]:
    # A real process: what stdout is (closed, full, a pipe) is about file descriptors.
    cmd = f'exec "$@" {shell_redirect}'
    argv = [sys.executable, "-m", "nixseal", "-i", str(repo.admin.path), "decrypt", "db"]
    return subprocess.run(
        ["sh", "-c", cmd, "sh", *argv], cwd=repo.root, capture_output=True, check=False
    )


@pytest.mark.parametrize(
    ("redirect", "code", "message"),
    [
        (">/dev/full", 1, "nixseal decrypt: error: writing output: No space left on device\n"),
        (">&-", 2, "nixseal decrypt: error: stdout is closed; "),
    ],
    ids=["full disk", "closed"],
)
def test_unwritable_stdout_is_one_line_without_the_value(
    repo: Repo, redirect: str, code: int, message: str
) -> None:
    repo.encrypt("db", b"plaintext-value")
    r = _decrypt_process(repo, redirect)
    assert r.returncode == code
    assert r.stderr.decode().startswith(message) and len(r.stderr.splitlines()) == 1
    assert b"plaintext-value" not in r.stderr


def test_reader_leaving_early_is_a_failure_not_a_short_success(repo: Repo) -> None:
    repo.encrypt("db", b"x" * 1_000_000)  # more than a pipe holds
    argv = [sys.executable, "-m", "nixseal", "-i", str(repo.admin.path), "decrypt", "db"]
    proc = subprocess.Popen(argv, cwd=repo.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.read(1) == b"x"
    proc.stdout.close()
    assert proc.wait(timeout=30) == 1
    assert proc.stderr.read() == b""  # like other tools at a closed pipe: no noise


def test_missing_generated_file_names_rotate(repo: Repo) -> None:
    with repo.rules.open("a") as f:
        f.write('[secrets.gen]\ngenerator = "password"\n')
    r = repo.run("decrypt", "gen")
    assert r.code == 1
    assert "secrets/gen.age: missing; create it with `nixseal rotate gen`" in r.err
