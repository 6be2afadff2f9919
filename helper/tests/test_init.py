from __future__ import annotations

import stat
from pathlib import Path

import pytest
from _admin import run_cli
from conftest import make_ssh_key

from nixseal.age import crypto
from nixseal.repo.rules import load_rules


def test_init_with_generated_admin_key(tmp_path: Path) -> None:
    key = tmp_path / "keys" / "admin.key"
    r = run_cli("init", "--admin", "alice", "--generate-key", str(key), cwd=tmp_path)
    assert r.code == 0, r.err
    rules = load_rules(tmp_path / "secrets" / "secrets.toml")
    ids = crypto.load_identity_file(key)
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert rules.admins == {"alice": crypto.age_public_key(key.read_text().splitlines()[-1])}
    assert ids[0].kind == "age"
    assert f"NIXSEAL_IDENTITY={key}" in r.text


def test_init_never_overwrites(tmp_path: Path) -> None:
    assert run_cli("init", "--admin", "a", "--generate-key", "k", cwd=tmp_path).code == 0
    rules = tmp_path / "secrets" / "secrets.toml"
    before = rules.read_text(), (tmp_path / "k").read_text()
    r = run_cli("init", cwd=tmp_path)
    assert r.code == 2 and "secrets/secrets.toml: already exists; not overwritten" in r.err
    rules.unlink()
    r = run_cli("init", "--generate-key", "k", cwd=tmp_path)
    assert r.code == 2 and "already exists" in r.err
    assert not rules.exists()
    assert (tmp_path / "k").read_text() == before[1]


def test_init_with_ssh_public_key_file(tmp_path: Path) -> None:
    ssh = make_ssh_key(tmp_path, name="id_ed25519")
    r = run_cli("init", "--admin", "bob", "--admin-key", f"{ssh.private_path}.pub", cwd=tmp_path)
    assert r.code == 0, r.err
    assert load_rules(tmp_path / "secrets" / "secrets.toml").admins == {"bob": ssh.public}


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A home directory of the test's own, with an empty ~/.ssh."""
    path = tmp_path / "home"
    (path / ".ssh").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(path))
    return path


def test_init_defaults_to_the_users_ssh_key_or_a_placeholder(tmp_path: Path, home: Path) -> None:
    work = tmp_path / "w1"
    work.mkdir()
    r = run_cli("init", "--admin", "carol", cwd=work)
    assert r.code == 0 and "add an admin key" in r.text
    assert load_rules(work / "secrets" / "secrets.toml").admins == {}
    ssh = make_ssh_key(home / ".ssh", name="id_ed25519")
    work2 = tmp_path / "w2"
    work2.mkdir()
    assert run_cli("init", "--admin", "carol", cwd=work2).code == 0
    assert load_rules(work2 / "secrets" / "secrets.toml").admins == {"carol": ssh.public}


def test_bad_admin_key_is_rejected(tmp_path: Path) -> None:
    r = run_cli("init", "--admin-key", "age1nope", cwd=tmp_path)
    assert r.code == 1 and "--admin-key: bad recipient" in r.err
    assert r.err.rstrip().endswith("(the line of the .pub file)")
    assert not (tmp_path / "secrets").exists()


def test_unusable_admin_key_files_are_one_line(tmp_path: Path) -> None:
    binary = tmp_path / "binary.pub"
    binary.write_bytes(bytes(range(256)))
    r = run_cli("init", "repo", "--admin-key", str(binary), cwd=tmp_path)
    assert r.code == 2 and r.err.endswith("binary.pub: not a public key file (not text)\n")
    private = make_ssh_key(tmp_path, name="id")
    r = run_cli("init", "repo", "--admin-key", str(private.private_path), cwd=tmp_path)
    assert r.code == 2 and "a private key; give the public key" in r.err
    r = run_cli("init", "repo", "--admin", "a b", "--admin-key", str(binary), cwd=tmp_path)
    assert r.code == 2 and "admin name 'a b'" in r.err
    assert not (tmp_path / "repo").exists()


def test_unwritable_places_are_one_line_and_leave_nothing(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    key = crypto.generate_age_identity()[1]
    r = run_cli("init", "afile", "--admin-key", key, cwd=tmp_path)
    assert r.err == "nixseal init: error: afile/secrets: cannot create: Not a directory\n"
    r = run_cli("init", "afile/repo", "--generate-key", "k", cwd=tmp_path)
    assert r.err == "nixseal init: error: afile/repo/secrets: cannot create: Not a directory\n"
    # The key cannot be written: neither it nor the rules directory is left behind.
    r = run_cli("init", "repo", "--generate-key", str(tmp_path / "afile" / "key"), cwd=tmp_path)
    assert r.code == 2 and r.err.endswith("afile: cannot create: a file is in the way\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_unknown_login_name_asks_for_admin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import getpass

    def no_user() -> str:
        raise KeyError("getpwuid(): uid not found: 4242")

    monkeypatch.setattr(getpass, "getuser", no_user)
    r = run_cli("init", "--admin-key", crypto.generate_age_identity()[1], cwd=tmp_path)
    assert r.code == 2
    assert r.err == "nixseal init: error: cannot tell your login name; pass --admin NAME\n"
    assert not (tmp_path / "secrets").exists()


def test_init_names_the_key_it_used_and_whether_it_has_a_passphrase(
    tmp_path: Path, home: Path
) -> None:
    from test_sshkey import protected_key

    locked = protected_key(home / ".ssh", "pw")  # ~/.ssh/id_ed25519, the default
    work = tmp_path / "w1"
    work.mkdir()
    r = run_cli("init", "--admin", "carol", cwd=work)
    assert r.code == 0, r.err
    assert (
        f"admin key: {locked}.pub (ssh-ed25519); its private key {locked} has a passphrase: "
        "nixseal asks for it once per run (on the terminal, or through SSH_ASKPASS)"
    ) in r.text.splitlines()
    plain = make_ssh_key(tmp_path, name="deploy")
    r = run_cli(
        "init", "w2", "--admin", "carol", "--admin-key", f"{plain.private_path}.pub", cwd=tmp_path
    )
    assert r.code == 0, r.err
    assert (
        "admin key: deploy.pub (ssh-ed25519); its private key deploy has no passphrase"
    ) in r.text.splitlines()
    plain.private_path.unlink()  # shown relative to the working directory
    r = run_cli(
        "init", "w3", "--admin", "carol", "--admin-key", f"{plain.private_path}.pub", cwd=tmp_path
    )
    assert (
        "admin key: deploy.pub (ssh-ed25519); no private key beside it: "
        "decrypt with -i KEY or NIXSEAL_IDENTITY"
    ) in r.text.splitlines()
