"""nixseal pull: 1Password sources into age files, through the stand-in op."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import pytest
from _admin import Repo, age_decrypt, make_repo, run_cli
from _fakeop import FakeOp, files_containing, install, private_tmpdir, write_rules
from conftest import needs_age

from nixseal.repo.state import state_path


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeOp:
    return install(monkeypatch, tmp_path / "onepassword")


@pytest.fixture
def repo(tmp_path: Path, fake: FakeOp) -> Repo:
    r = make_repo(tmp_path)
    fake.add_item("Infra", "grafana", {"admin password": "gr-" + secrets.token_hex(10)})
    fake.add_item("Infra", "smtp", {"password": "sm-" + secrets.token_hex(10)}, section="relay")
    write_rules(
        r,
        {
            "grafana/admin": 'source = "op://Infra/grafana/admin password"',
            "smtp": 'source = "op://Infra/smtp/relay/password"',
            "local": 'generator = "password"',
        },
    )
    return r


def state(repo: Repo) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(state_path(repo.rules).read_text())["secrets"]
    return result


@needs_age
def test_pull_encrypts_every_source(repo: Repo, fake: FakeOp) -> None:
    r = repo.run("pull")
    assert r.code == 0, r.err
    grafana = fake.value("Infra", "grafana", "admin password").encode()
    smtp = fake.value("Infra", "smtp", "password").encode()
    assert repo.decrypt("grafana/admin") == grafana
    assert age_decrypt(repo.admin.path, repo.age_file("smtp")) == smtp
    assert not repo.age_file("local").exists()  # generators are rotate's business
    recorded = state(repo)
    assert recorded["grafana/admin"]["rotated"] and recorded["smtp"]["rotated"]
    assert "pulled 2 of 2 secrets" in r.err


def test_pull_skips_unchanged_values(repo: Repo, fake: FakeOp) -> None:
    assert repo.run("pull").code == 0
    before = {n: repo.age_file(n).read_bytes() for n in ("grafana/admin", "smtp")}
    r = repo.run("pull")
    assert r.code == 0, r.err
    assert "2 unchanged" in r.err
    assert {n: repo.age_file(n).read_bytes() for n in before} == before

    data = fake.data()
    data["vaults"][0]["items"][1]["fields"][0]["value"] = "changed-in-1password"
    fake.save(data)
    r = repo.run("pull")
    assert r.code == 0, r.err
    assert repo.age_file("grafana/admin").read_bytes() == before["grafana/admin"]
    assert repo.age_file("smtp").read_bytes() != before["smtp"]
    assert repo.decrypt("smtp") == b"changed-in-1password"


def test_pull_without_identity_always_writes(
    repo: Repo, fake: FakeOp, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert repo.run("pull").code == 0
    before = repo.age_file("smtp").read_bytes()
    monkeypatch.setenv("HOME", str(tmp_path / "nohome"))
    monkeypatch.delenv("NIXSEAL_IDENTITY", raising=False)
    r = run_cli("pull", "smtp", cwd=repo.root)
    assert r.code == 0, r.err
    assert "cannot decrypt current values" in r.err
    assert repo.age_file("smtp").read_bytes() != before
    assert repo.decrypt("smtp") == fake.value("Infra", "smtp", "password").encode()


def test_pull_that_cannot_compare_keeps_the_recorded_age(
    repo: Repo, fake: FakeOp, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The value may be the same as before: recording it as new would make
    audit and rotate --due call an old value fresh."""
    assert repo.run("pull").code == 0
    doc = json.loads(state_path(repo.rules).read_text())
    doc["secrets"]["smtp"]["rotated"] = "2020-01-01T00:00:00Z"
    state_path(repo.rules).write_text(json.dumps(doc))
    monkeypatch.setenv("HOME", str(tmp_path / "nohome"))
    monkeypatch.delenv("NIXSEAL_IDENTITY", raising=False)
    r = run_cli("pull", "smtp", cwd=repo.root)
    assert r.code == 0, r.err
    assert "keeping the recorded ages" in r.err
    assert state(repo)["smtp"]["rotated"] == "2020-01-01T00:00:00Z"
    # Compared and changed: the new value is recorded as new.
    data = fake.data()
    data["vaults"][0]["items"][1]["fields"][0]["value"] = "sm-changed"
    fake.save(data)
    assert repo.run("pull", "smtp").code == 0
    assert state(repo)["smtp"]["rotated"] != "2020-01-01T00:00:00Z"


def test_named_pull(repo: Repo, fake: FakeOp) -> None:
    r = repo.run("pull", "smtp")
    assert r.code == 0, r.err
    assert repo.age_file("smtp").exists()
    assert not repo.age_file("grafana/admin").exists()
    assert [c for c in fake.calls() if c[0] == "read"] == [
        ["read", "--no-newline", "op://Infra/smtp/relay/password"]
    ]


def test_pull_of_secret_without_source_is_usage_error(repo: Repo, fake: FakeOp) -> None:
    r = repo.run("pull", "local", "smtp")
    assert r.code == 2
    assert "local: no source in secrets/secrets.toml" in r.err
    assert fake.calls() == []
    assert not repo.age_file("smtp").exists()


def test_one_failure_does_not_stop_the_others(repo: Repo, fake: FakeOp) -> None:
    data = fake.data()
    data["vaults"][0]["items"][0]["title"] = "grafana-renamed"
    fake.save(data)
    r = repo.run("pull")
    assert r.code == 1
    errors = [ln for ln in r.err.splitlines() if "error:" in ln]
    assert len(errors) == 1
    assert errors[0].startswith(
        "nixseal pull: error: grafana/admin: op read op://Infra/grafana/admin password: "
    )
    assert "isn't an item" in errors[0]
    assert repo.age_file("smtp").exists()
    assert not repo.age_file("grafana/admin").exists()
    assert "pulled 1 of 2 secrets, 1 failed" in r.err


def test_not_signed_in_stops_after_one_error(repo: Repo, fake: FakeOp) -> None:
    fake.sign_out()
    r = repo.run("pull")
    assert r.code == 1
    errors = [ln for ln in r.err.splitlines() if "error:" in ln]
    assert "not signed in" in errors[0] and "eval $(op signin)" in errors[0]
    assert "1 more not tried" in r.err
    assert len([c for c in fake.calls() if c[0] == "read"]) == 1
    assert not repo.age_file("smtp").exists() and not repo.age_file("grafana/admin").exists()


def test_op_missing(repo: Repo, fake: FakeOp) -> None:
    fake.uninstall()
    r = repo.run("pull", "smtp")
    assert r.code == 1
    assert "the 1Password CLI `op` is not on PATH" in r.err


def test_empty_field_is_refused(repo: Repo, fake: FakeOp) -> None:
    data = fake.data()
    data["vaults"][0]["items"][1]["fields"][0]["value"] = ""
    fake.save(data)
    r = repo.run("pull", "smtp")
    assert r.code == 1
    assert "the field is empty" in r.err
    assert not repo.age_file("smtp").exists()


def test_plaintext_stays_in_memory(
    repo: Repo, fake: FakeOp, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    tmp = private_tmpdir(monkeypatch, tmp_path / "tmp")
    r = repo.run("-v", "pull")
    assert r.code == 0, r.err
    # Values changed in 1Password are pulled again, logged as JSON this time.
    data = fake.data()
    for item in data["vaults"][0]["items"]:
        item["fields"][0]["value"] += "-2"
    fake.save(data)
    r2 = repo.run("--log-format", "json", "-v", "pull")
    assert r2.code == 0, r2.err
    for name, (item, label) in {
        "grafana/admin": ("grafana", "admin password"),
        "smtp": ("smtp", "password"),
    }.items():
        value = fake.value("Infra", item, label).encode()
        assert repo.decrypt(name) == value  # it is there, encrypted
        assert files_containing(value, repo.root, tmp) == []
        for res in (r, r2):
            assert value not in res.out and value.decode() not in res.err
            assert value.decode().removesuffix("-2") not in res.err
        for argv in fake.calls():
            assert not any(value.decode() in a for a in argv)
