from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from _admin import Repo, make_repo, run_cli
from conftest import make_age_key, needs_age


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    r = make_repo(tmp_path)
    r.write_rules({"a": ["web1"], "b": ["@web"]}, groups='web = ["web1"]')
    r.encrypt("a", b"1")
    r.encrypt("b", b"2")
    return r


def test_all_good_exits_zero(repo: Repo) -> None:
    r = repo.run("check")
    assert r.code == 0 and "all 2 secrets match the rules" in r.text


def test_missing_file_names_secret_and_fix(repo: Repo) -> None:
    repo.age_file("a").unlink()
    r = repo.run("check")
    assert r.code == 1
    assert "a: secrets/a.age is missing; fix: nixseal edit a" in r.text


def test_host_added_to_a_group_is_named_with_the_fix(repo: Repo) -> None:
    repo.host("web2")
    repo.write_rules({"a": ["web1"], "b": ["@web"]}, groups='web = ["web1", "web2"]')
    r = repo.run("check")
    assert r.code == 1
    assert "b: not encrypted to host web2; fix: nixseal rekey b" in r.text
    assert "a:" not in r.text


def test_removed_host_is_reported_as_extra_reader(repo: Repo) -> None:
    repo.write_rules({"a": [], "b": ["@web"]}, groups='web = ["web1"]')
    r = repo.run("check")
    assert r.code == 1
    assert "a: encrypted to host web1 (ssh-ed25519 " in r.text
    assert "which the rules do not list for it; fix: nixseal rekey a" in r.text


def test_new_admin_age_key_found_through_recorded_recipients(repo: Repo, tmp_path: Path) -> None:
    bob = make_age_key(tmp_path, "bob.txt")
    text = repo.rules.read_text().replace("[admins]\n", f'[admins]\nbob = "{bob.public}"\n')
    repo.rules.write_text(text)
    r = repo.run("check", "--json")
    assert r.code == 1
    doc = json.loads(r.out)
    assert doc["ok"] is False
    by_name = {s["name"]: s for s in doc["secrets"]}
    assert by_name["a"]["status"] == "stale"
    assert by_name["a"]["missing"] == [{"kind": "admin", "name": "bob"}]
    assert by_name["a"]["fix"] == "nixseal rekey a"


def test_json_when_all_good(repo: Repo) -> None:
    r = repo.run("check", "--json")
    doc = json.loads(r.out)
    assert r.code == 0 and doc["ok"] is True
    assert [s["status"] for s in doc["secrets"]] == ["ok", "ok"]
    assert doc["orphans"] == []


@needs_age
def test_file_replaced_outside_nixseal_is_unverified(repo: Repo) -> None:
    subprocess.run(
        ["age", "-e", "-r", repo.admin.public, "-r", repo.hosts["web1"].public,
         "-o", str(repo.age_file("a"))],
        input=b"by hand", check=True,
    )  # fmt: skip
    r = repo.run("check")
    assert r.code == 1
    assert "a: cannot verify its age recipients" in r.text
    assert "fix: nixseal rekey a" in r.text
    assert repo.run("rekey").code == 0
    assert repo.run("check").code == 0


def test_orphan_files_are_warned_about_but_do_not_fail(repo: Repo) -> None:
    (repo.secrets / "old.age").write_bytes(repo.age_file("a").read_bytes())
    r = repo.run("check")
    assert r.code == 0
    assert "warning: secrets/old.age: no secret in the rules names this file" in r.text


def test_corrupt_header_is_reported(repo: Repo) -> None:
    repo.age_file("b").write_bytes(b"age-encryption.org/v1\n-> X25519")
    r = repo.run("check")
    assert r.code == 1 and "b: secrets/b.age: truncated age file" in r.text
    assert "restore secrets/b.age from git" in r.text


def test_check_needs_no_identity(repo: Repo, monkeypatch: pytest.MonkeyPatch) -> None:
    from _admin import run_cli

    monkeypatch.setenv("HOME", "/nonexistent")
    monkeypatch.delenv("NIXSEAL_IDENTITY", raising=False)
    assert run_cli("check", cwd=repo.root).code == 0


def _encrypt_outside(repo: Repo, name: str, keys: list[str]) -> None:
    """What another tool (or agenix) writes: no record in the state file."""
    from nixseal.age import crypto

    recipients = [crypto.parse_recipient(k, "test") for k in keys]
    repo.age_file(name).write_bytes(crypto.encrypt(b"by hand", recipients))


def test_file_without_the_admins_age_stanza_is_stale_not_unverified(repo: Repo) -> None:
    _encrypt_outside(repo, "a", [repo.hosts["web1"].public])
    r = repo.run("check")
    assert r.code == 1
    assert "a: not encrypted to admin alice; fix: nixseal rekey a" in r.text
    assert "cannot verify" not in r.text


def test_fewer_age_stanzas_than_age_keys_is_stale(repo: Repo, tmp_path: Path) -> None:
    bob = make_age_key(tmp_path, "bob.txt")
    text = repo.rules.read_text().replace("[admins]\n", f'[admins]\nbob = "{bob.public}"\n')
    repo.rules.write_text(text)
    _encrypt_outside(repo, "a", [repo.admin.public, repo.hosts["web1"].public])
    r = repo.run("check", "--json", "a")
    assert r.code == 1
    entry = json.loads(r.out)["secrets"][0]
    assert entry["status"] == "stale" and entry["fix"] == "nixseal rekey a"
    assert "encrypted to 1 age key(s), the rules list 2" in entry["problems"][0]
    assert repo.run("rekey", "a").code == 0
    assert repo.run("check", "a").code == 0


def test_a_key_shared_by_two_readers_fails_the_check(repo: Repo) -> None:
    web1 = repo.host("web1").public
    with repo.rules.open("a") as f:
        f.write(f'[hosts.web2]\nkey = "{web1}"\n')  # a host key copied to another host
    r = repo.run("check")
    assert r.code == 1
    assert (
        "error: host web1 and host web2 have the same key in secrets/secrets.toml; each "
        "reader needs a key of its own; fix: give each its own key"
    ) in r.text.splitlines()
    assert r.text.splitlines()[-1] == "all 2 secrets match the rules, but keys are shared"
    doc = json.loads(repo.run("check", "--json").out)
    assert doc["ok"] is False and len(doc["shared_keys"]) == 1


def test_a_host_key_that_is_also_an_admin_key_is_reported(repo: Repo) -> None:
    text = repo.rules.read_text().replace(
        f'alice = "{repo.admin.public}"', f'alice = "{repo.host("web1").public}"'
    )
    repo.rules.write_text(text)
    r = run_cli("check", cwd=repo.root)
    assert r.code == 1
    assert (
        "error: admin alice and host web1 have the same key in secrets/secrets.toml; "
        "whoever is root on the host can read that key; fix: give each its own key"
    ) in r.text.splitlines()
