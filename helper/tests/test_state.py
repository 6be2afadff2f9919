from __future__ import annotations

import datetime
import json
import subprocess
from pathlib import Path

import pytest
from _admin import Repo, make_repo

from nixseal.errors import RulesError
from nixseal.repo.rules import load_rules, recipient_id
from nixseal.repo.state import State


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    r = make_repo(tmp_path)
    r.write_rules({"b": ["web1"], "a": []})
    return r


def state_file(repo: Repo) -> Path:
    return repo.secrets / "secrets.state.json"


def test_encrypt_records_recipients_mac_and_time(repo: Repo) -> None:
    before = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    repo.encrypt("b", b"v")
    state = State.load(load_rules(repo.rules))
    web1 = repo.hosts["web1"].public
    assert state.recipients("b") == {repo.admin.public, recipient_id(web1)}
    rotated = state.rotated_at("b")
    assert rotated is not None and rotated >= before
    assert state.recipients("a") is None and state.rotated_at("a") is None
    doc = json.loads(state_file(repo).read_text())
    assert doc["version"] == 1 and doc["secrets"]["b"]["mac"]


def test_ssh_recipient_ids_are_openssh_fingerprints(repo: Repo) -> None:
    pub = repo.host("web1").private_path.with_suffix(".pub")
    out = subprocess.run(
        ["ssh-keygen", "-lf", str(pub)], capture_output=True, text=True, check=True
    )
    assert recipient_id(repo.hosts["web1"].public) == out.stdout.split()[1]


def test_saved_json_is_sorted_and_stable(repo: Repo) -> None:
    repo.encrypt("b", b"1")
    repo.encrypt("a", b"2")
    text = state_file(repo).read_text()
    assert list(json.loads(text)["secrets"]) == ["a", "b"]
    state = State.load(load_rules(repo.rules))
    state.dirty = True
    state.save()
    assert state_file(repo).read_text() == text
    assert text.endswith("\n")


def test_round_trip_and_record_value(repo: Repo) -> None:
    rules = load_rules(repo.rules)
    state = State.load(rules)
    when = datetime.datetime(2025, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
    state.record_value("a", when)
    state.record_encryption("a", [repo.admin.public], mac="m")
    state.save()
    again = State.load(rules)
    assert again.rotated_at("a") == when
    assert again.recipients("a") == {repo.admin.public}
    assert again.mac("a") == "m"


def test_removed_secrets_without_files_are_pruned(repo: Repo) -> None:
    repo.encrypt("a", b"1")
    repo.encrypt("b", b"2")
    repo.age_file("a").unlink()
    repo.write_rules({"b": ["web1"]})
    repo.encrypt("b", b"3")
    assert list(json.loads(state_file(repo).read_text())["secrets"]) == ["b"]


def test_malformed_state_names_file_line_and_fix(repo: Repo) -> None:
    state_file(repo).write_text('{"version": 1,\n<<<<<<< HEAD\n}')
    r = repo.run("check")
    assert r.code == 1
    assert "secrets/secrets.state.json: malformed JSON at line 2" in r.err
    assert "merge conflict" in r.err
    state_file(repo).write_text('{"version": 7}')
    with pytest.raises(RulesError, match="not a version 1"):
        State.load(load_rules(repo.rules))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"version": 1, "secrets": ' + "[" * 100_000 + "]" * 100_000 + "}", "malformed JSON;"),
        ('{"version": ' + "1" * 5000 + "}", "malformed JSON;"),
        ('{"version": true}', "not a version 1 nixseal state file"),
        (
            '{"version": 1, "secrets": {"b": {"rotated": "0001-01-01T00:00:00+14:00"}}}',
            "secrets.b.rotated: time '0001-01-01T00:00:00+14:00' out of range",
        ),
    ],
)
def test_pathological_state_is_one_error_and_changes_nothing(
    repo: Repo, text: str, expected: str
) -> None:
    repo.encrypt("b", b"v")
    state_file(repo).write_text(text)
    before = {p: p.read_bytes() for p in repo.secrets.iterdir()}
    for verb in (("check",), ("rekey", "--force"), ("encrypt", "b")):
        r = repo.run(*verb, stdin=b"new")
        assert r.code == 1 and len(r.err.splitlines()) == 1, r.err
        assert r.err.startswith(f"nixseal {verb[0]}: error: secrets/secrets.state.json: ")
        assert expected in r.err
    assert {p: p.read_bytes() for p in repo.secrets.iterdir()} == before


def test_unreadable_state_names_the_cause_once(repo: Repo) -> None:
    state_file(repo).mkdir()
    r = repo.run("check")
    assert r.code == 1
    assert (
        r.err == "nixseal check: error: secrets/secrets.state.json: cannot read state: "
        "not a regular file (a directory)\n"
    )
