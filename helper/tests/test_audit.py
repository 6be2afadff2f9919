from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from _admin import Repo, make_repo

from nixseal.age import crypto

GIT_ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.org",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.org",
}


def git(repo: Repo, *args: str, date: str | None = None) -> None:
    env = dict(os.environ, **GIT_ENV)
    if date:
        env["GIT_COMMITTER_DATE"] = env["GIT_AUTHOR_DATE"] = date
    subprocess.run(["git", *args], cwd=repo.root, env=env, check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    r = make_repo(tmp_path)
    r.write_rules({"db": ["web1"], "tls": [], "old": []})
    text = r.rules.read_text()
    text = text.replace('[secrets."db"]\n', '[secrets."db"]\nrotate_after = "30d"\n')
    text = text.replace('[secrets."old"]\n', '[secrets."old"]\nrotate_after = "90d"\n')
    r.rules.write_text(text)
    for n in ("db", "tls", "old"):
        r.encrypt(n, b"v")
    return r


def set_rotated(repo: Repo, name: str, when: str) -> None:
    path = repo.secrets / "secrets.state.json"
    doc = json.loads(path.read_text())
    doc["secrets"][name]["rotated"] = when
    path.write_text(json.dumps(doc))


def test_table_lists_readers_rotation_and_findings(repo: Repo) -> None:
    set_rotated(repo, "db", "2020-01-01T00:00:00Z")
    r = repo.run("audit")
    assert r.code == 0
    lines = {line.split()[0]: line for line in r.text.splitlines() if line}
    assert "admins:alice hosts:web1" in lines["db"]
    assert "2020-01-01" in lines["db"] and "30d" in lines["db"]
    assert "rotate_after is 30d" in lines["db"]
    assert lines["tls"].endswith("ok")
    assert "1 finding(s) in 3 secrets" in r.text


def test_json_and_strict(repo: Repo) -> None:
    r = repo.run("audit", "--json", "--strict")
    assert r.code == 0
    doc = json.loads(r.out)
    db = {s["name"]: s for s in doc["secrets"]}["db"]
    assert db["readers"][0] == {
        "kind": "admin",
        "name": "alice",
        "key": repo.admin.public,
        "verified": True,
    }
    assert db["readers"][1]["name"] == "web1" and db["readers"][1]["verified"] is True
    assert db["overdue"] is False and db["rotate_after"] == "30d" and db["age_days"] == 0
    set_rotated(repo, "db", "2020-01-01T00:00:00Z")
    r = repo.run("audit", "--json", "--strict")
    assert r.code == 1
    db = {s["name"]: s for s in json.loads(r.out)["secrets"]}["db"]
    assert db["overdue"] is True and db["age_days"] > 365


def test_stale_and_missing_files_are_findings(repo: Repo) -> None:
    repo.age_file("tls").unlink()
    repo.host("web2")
    text = repo.rules.read_text().replace('hosts = ["web1"]', 'hosts = ["web1", "web2"]')
    web2 = repo.hosts["web2"].public
    text = text.replace('[secrets."db"]\n', f'[hosts.web2]\nkey = "{web2}"\n[secrets."db"]\n')
    repo.rules.write_text(text)
    r = repo.run("audit", "--json", "--strict")
    assert r.code == 1
    by = {s["name"]: s for s in json.loads(r.out)["secrets"]}
    assert "not encrypted to host web2" in by["db"]["findings"]
    assert by["db"]["readers"][2] == {
        "kind": "host",
        "name": "web2",
        "key": by["db"]["readers"][2]["key"],
        "verified": False,
    }
    assert by["tls"]["findings"] == ["secrets/tls.age is missing"]
    table = repo.run("audit").text
    assert "web2!" in table


def test_last_change_from_git_and_age_fallback(repo: Repo) -> None:
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "one", date="2021-03-04T05:06:07+00:00")
    repo.encrypt("tls", b"new")
    git(repo, "commit", "-qam", "two", date="2022-05-06T07:08:09+00:00")
    doc = json.loads(repo.run("audit", "--json").out)
    by = {s["name"]: s for s in doc["secrets"]}
    assert by["old"]["last_change"].startswith("2021-03-04T05:06:07")
    assert by["tls"]["last_change"].startswith("2022-05-06T07:08:09")
    # no recorded rotation: the value's age falls back to the last commit
    path = repo.secrets / "secrets.state.json"
    state = json.loads(path.read_text())
    del state["secrets"]["old"]["rotated"]
    path.write_text(json.dumps(state))
    by = {s["name"]: s for s in json.loads(repo.run("audit", "--json").out)["secrets"]}
    assert by["old"]["age_basis"] == "git" and by["old"]["overdue"] is True


def test_outside_git_last_change_is_unknown(repo: Repo) -> None:
    doc = json.loads(repo.run("audit", "--json").out)
    assert all(s["last_change"] is None for s in doc["secrets"])


def _replace_with_another_tool(repo: Repo, name: str) -> None:
    """Re-encrypt name.age to the same readers, as agenix or age would: no state record."""
    keys = [repo.admin.public, repo.hosts["web1"].public]
    recipients = [crypto.parse_recipient(k, "t") for k in keys]
    repo.age_file(name).write_bytes(crypto.encrypt(b"someone else's value", recipients))


def test_recorded_rotation_is_not_vouched_for_a_file_replaced_by_another_tool(
    repo: Repo,
) -> None:
    set_rotated(repo, "db", "2020-01-01T00:00:00Z")
    _replace_with_another_tool(repo, "db")
    r = repo.run("audit")
    lines = {line.split()[0]: line for line in r.text.splitlines() if line}
    assert "2020-01-01" not in lines["db"]
    assert "(replaced)" in lines["db"]
    assert "secrets/db.age was replaced outside nixseal" in lines["db"]
    assert "value is" not in lines["db"]  # no age claimed, so no overdue claim either
    assert "(replaced) = file replaced outside nixseal" in r.text
    assert "(replaced)" not in lines["old"] and "(replaced)" not in lines["tls"]
    r = repo.run("audit", "--json", "--strict")
    assert r.code == 1
    db = {s["name"]: s for s in json.loads(r.out)["secrets"]}["db"]
    assert db["age_basis"] == "replaced"
    assert db["rotated"] is None and db["age_days"] is None and db["overdue"] is False
    assert any("replaced outside nixseal" in f for f in db["findings"])


def test_nixseal_reencrypting_keeps_the_recorded_rotation(repo: Repo) -> None:
    set_rotated(repo, "db", "2020-01-01T00:00:00Z")
    assert repo.run("rekey", "--force").code == 0  # new file, same value: time still holds
    db = {s["name"]: s for s in json.loads(repo.run("audit", "--json").out)["secrets"]}["db"]
    assert db["age_basis"] == "recorded" and db["rotated"].startswith("2020-01-01")
    assert db["overdue"] is True


def test_values_made_from_a_rotated_input_are_findings(tmp_path: Path) -> None:
    r = make_repo(tmp_path / "chain")
    r.write_rules({"pki/ca": [], "pki/web1": ["web1"]})
    text = r.rules.read_text()
    text = text.replace('[secrets."pki/ca"]\n', '[secrets."pki/ca"]\ngenerator = "ca"\n')
    text = text.replace(
        '[secrets."pki/web1"]\n',
        '[secrets."pki/web1"]\ngenerator = { kind = "cert", ca = "pki/ca", names = ["web1.example"] }\n',
    )
    r.rules.write_text(text)
    assert r.run("rotate", "--with-dependents", "pki/ca").code == 0
    doc = json.loads(r.run("audit", "--json").out)
    leaf = next(e for e in doc["secrets"] if e["name"] == "pki/web1")
    assert (leaf["derived_from"], leaf["inputs_rotated"], leaf["findings"]) == (["pki/ca"], [], [])
    assert r.run("rotate", "pki/ca").code == 0
    doc = json.loads(r.run("audit", "--json").out)
    leaf = next(e for e in doc["secrets"] if e["name"] == "pki/web1")
    assert leaf["inputs_rotated"] == ["pki/ca"]
    finding = "made from pki/ca, rotated since: rotate it with `nixseal rotate pki/web1`"
    assert leaf["findings"] == [finding]
    table = r.run("audit").out.decode()
    assert finding in table and "1 finding(s) in 2 secrets" in table
