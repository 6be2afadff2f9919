"""nixseal status (nixseal.repo.status): each host's status file, read over
ssh, against the repository. The hosts are scratch roots that real
installs wrote to; the ssh command is a stand-in that runs the command with
the host's /run in place of the real one."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest
from _activation import make_scene
from _admin import make_repo


class Fleet:
    def __init__(self, tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.repo = make_repo(tmp)
        self.hosts = {h: make_scene(tmp / h, capsys) for h in ("db1", "web1")}
        for name, scene in self.hosts.items():
            self.repo.hosts[name] = scene.key
        self.ssh = tmp / "fake-ssh"
        cases = "".join(f"  {h}) root={s.root} ;;\n" for h, s in self.hosts.items())
        self.ssh.write_text(
            "#!/bin/sh\n"
            'host=${1#*@}; shift\ncase "$host" in\n'
            f"{cases}"
            '  *) echo "ssh: Could not resolve hostname $host: Name or service not known" >&2;'
            " exit 255 ;;\nesac\n"
            'exec sh -c "$(printf %s "$*" | sed "s#/run/#$root/run/#g")"\n'
        )
        self.ssh.chmod(0o755)

    def rules(self, secrets: dict[str, list[str]]) -> None:
        self.repo.write_rules(secrets)

    def deploy(self, host: str, *names: str, code: int = 0) -> None:
        scene = self.hosts[host]
        scene.doc["secrets"] = [{"name": n, "file": str(self.repo.age_file(n))} for n in names]
        r = scene.install()
        assert r.code == code, r.err

    def status(self, *args: str) -> Any:
        return self.repo.run("status", "--ssh", str(self.ssh), *args)


@pytest.fixture
def fleet(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Fleet:
    f = Fleet(tmp_path, capsys)
    f.rules({"app": ["db1", "web1"], "web/token": ["web1"]})
    f.repo.encrypt("app", b"a1")
    f.repo.encrypt("web/token", b"t1")
    f.deploy("db1", "app")
    f.deploy("web1", "app", "web/token")
    return f


def test_every_host_up_to_date(fleet: Fleet) -> None:
    r = fleet.status()
    assert r.code == 0, r.err
    assert r.text.splitlines() == [
        "db1 (generation 1)",
        "  app        up to date",
        "web1 (generation 1)",
        "  app        up to date",
        "  web/token  up to date",
        "all 2 hosts up to date",
    ]
    assert fleet.status("--strict").code == 0
    assert fleet.status("web1").text.splitlines()[0] == "web1 (generation 1)"


def test_a_newer_file_in_the_repository_is_outdated(fleet: Fleet) -> None:
    fleet.repo.encrypt("app", b"a2")
    r = fleet.status()
    assert r.code == 0  # a report, not a failure, unless --strict
    assert "  app        outdated  installed from another file than the repository's" in r.text
    assert r.text.splitlines()[-1] == "2 differences on 2 hosts"
    assert fleet.status("--strict").code == 1
    fleet.deploy("web1", "app", "web/token")
    lines = fleet.status("web1").text.splitlines()
    assert lines[:2] == ["web1 (generation 2)", "  app        up to date"]


def test_a_secret_that_failed_at_the_last_install(fleet: Fleet, tmp_path: Path) -> None:
    fleet.repo.encrypt("web/token", b"t2")
    fleet.repo.age_file("web/token").write_bytes(b"age-encryption.org/v1\n-> X25519")
    fleet.deploy("web1", "app", "web/token", code=1)
    r = fleet.status("web1", "--strict")
    assert r.code == 1
    assert "  web/token  failed  its last install failed; it keeps the value it had" in r.text


def test_a_secret_the_host_does_not_declare_is_missing(fleet: Fleet) -> None:
    fleet.rules({"app": ["db1", "web1"], "web/token": ["web1", "db1"]})
    r = fleet.status("db1", "--strict")
    assert r.code == 1
    assert "  web/token  missing  not declared by its configuration" in r.text
    # declared once, then dropped from the configuration
    fleet.deploy("web1", "app")
    assert "  web/token  missing  removed from its configuration" in fleet.status("web1").text


def test_a_value_the_rules_no_longer_give_is_removed(fleet: Fleet) -> None:
    fleet.rules({"app": ["db1", "web1"], "web/token": []})
    r = fleet.status("web1", "--strict")
    assert r.code == 1
    assert "  web/token  removed  the rules no longer give it to web1" in r.text
    fleet.rules({"app": ["db1", "web1"]})
    assert "  web/token  removed  no longer in the rules" in fleet.status("web1").text


def test_templates_report_their_install_state(fleet: Fleet) -> None:
    scene = fleet.hosts["web1"]
    scene.template("app.env", "A=1\n")
    fleet.deploy("web1", "app", "web/token")
    r = fleet.status("web1", "--strict")
    assert r.code == 0, r.text
    assert "  template app.env  installed" in r.text


def test_an_unreachable_host_is_one_line_and_the_others_are_reported(fleet: Fleet) -> None:
    fleet.rules({"app": ["db1", "web1", "web9"], "web/token": ["web1"]})
    r = fleet.status()
    assert r.code == 1
    assert r.err.splitlines() == [
        "nixseal status: error: web9: unreachable: ssh: Could not resolve hostname web9: "
        "Name or service not known"
    ]
    assert "db1 (generation 1)" in r.text and "web1 (generation 1)" in r.text
    assert r.text.splitlines()[-1] == "all 2 hosts up to date; 1 without status"
    doc = json.loads(fleet.status("--json").out)
    (web9,) = [h for h in doc["hosts"] if h["name"] == "web9"]
    assert web9["reachable"] is False and web9["error"].startswith("unreachable: ssh:")


def test_json(fleet: Fleet) -> None:
    fleet.repo.encrypt("app", b"a2")
    r = fleet.status("--json", "web1")
    assert r.code == 0
    doc = json.loads(r.out)
    assert doc["ok"] is False and doc["rules"].endswith("secrets/secrets.toml")
    (web1,) = doc["hosts"]
    assert web1["name"] == "web1" and web1["reachable"] is True and web1["error"] is None
    assert web1["generations"] == {"/run/secrets.d": 1} and web1["differences"] == 1
    app, token = web1["entries"]
    import hashlib

    now = hashlib.sha256(fleet.repo.age_file("app").read_bytes()).hexdigest()
    assert app["kind"] == "secret" and app["name"] == "app" and app["status"] == "outdated"
    assert app["repository"] == now and app["installed"] not in (None, now)
    assert token["status"] == "up to date" and token["installed"] == token["repository"]
    assert fleet.status("--json", "--strict", "web1").code == 1


def test_hosts_without_a_usable_status(fleet: Fleet) -> None:
    run = fleet.hosts["web1"].root / "run/secrets.d"
    status_file = run / "status.json"
    assert stat.S_IMODE(status_file.stat().st_mode) == 0o600
    good = status_file.read_bytes()
    status_file.unlink()  # as after an install by a nixseal before status files
    r = fleet.status("web1")
    assert r.code == 1
    assert "web1: no status file (/run/secrets.d/status.json): nixseal there predates" in r.err
    status_file.write_bytes(good.replace(b'"version":1', b'"version":9'))
    r = fleet.status("web1")
    assert "web1: unreadable status (version 9, this nixseal reads version 1)" in r.err
    status_file.write_bytes(b"{not json")
    assert "web1: unreadable status (not JSON: " in fleet.status("web1").err


def test_unknown_hosts_and_a_bad_ssh_command(fleet: Fleet) -> None:
    r = fleet.status("web2")
    assert r.code == 2 and "no host 'web2'; did you mean 'web1'?" in r.err
    r = fleet.repo.run("status", "--ssh", "")
    assert r.code == 2 and "is empty" in r.err
    r = fleet.repo.run("status", "--ssh", "/nonexistent/ssh", "web1")
    assert r.code == 1 and "cannot run '/nonexistent/ssh': not found" in r.err


def test_values_taken_from_one_document_count_as_that_document(fleet: Fleet) -> None:
    """Two entries take keys of the yaml document `cfg`: status reports
    `cfg`, up to date while both came from the repository's file, outdated
    once the file changes, and never the entries as values of their own."""
    fleet.rules({"app": ["db1", "web1"], "web/token": ["web1"], "cfg": ["web1"]})
    fleet.repo.encrypt("cfg", b"db:\n  password: p1\nsmtp: s1\n")
    scene = fleet.hosts["web1"]

    def deploy() -> None:
        cfg = str(fleet.repo.age_file("cfg"))
        scene.doc["secrets"] = [
            {"name": "app", "file": str(fleet.repo.age_file("app"))},
            {"name": "web/token", "file": str(fleet.repo.age_file("web/token"))},
            *(
                {"name": n, "file": cfg, "document": "cfg", "format": "yaml", "key": k}
                for n, k in (("db-password", ["db", "password"]), ("smtp", ["smtp"]))
            ),
        ]
        r = scene.install()
        assert r.code == 0, r.err

    deploy()
    lines = fleet.status("web1", "--strict").text.splitlines()
    assert "  cfg        up to date" in lines, lines
    assert not any("db-password" in ln or "smtp" in ln for ln in lines), lines
    fleet.repo.encrypt("cfg", b"db:\n  password: p2\nsmtp: s1\n")
    r = fleet.status("web1", "--strict")
    assert r.code == 1
    assert "  cfg        outdated  installed from another file than the repository's" in r.text
    deploy()
    assert "  cfg        up to date" in fleet.status("web1").text
