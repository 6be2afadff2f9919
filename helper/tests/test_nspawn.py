"""The module's units under a real systemd (Debian's, booted with systemd-nspawn).

Every host scenario of checks/scenarios runs here a third time (besides its
VM test and its local twin): the evaluated units are rendered as NixOS
renders them (tests/_units.py), booted in a Debian guest (tests/_nspawn.py)
and switched as switch-to-configuration would, and real systemd orders,
starts, restarts and reloads everything. The dependent services are ordered
only by their default dependencies; the install unit must still come
first. The home-manager scenario runs the user unit in a lingering user's
`systemd --user`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from _guesthost import GuestHost, Ids, mono, snapshot
from _nixeval import evaluate as evaluate_nix
from _nspawn import GUEST_PACKAGE, Guest, needs_nspawn
from _twin import TEST_KEYS, committed_key, evaluate, load_scenarios, password_matches
from _units import GuestStore, render_user
from conftest import NIXPKGS_LIB, REPO_ROOT, needs_nix

pytestmark = [needs_nix, needs_nspawn]

SCENARIOS = load_scenarios()
CONSUMERS = ("webapp.service", "webapp-worker.service", "database.service")


def of_kind(kind: str) -> list[str]:
    return [n for n, s in SCENARIOS.items() if s.get("kind", "nixos") == kind]


@pytest.fixture(scope="module")
def evaluated() -> dict[str, Any]:
    env = {**os.environ, "NIXPKGS_LIB": str(NIXPKGS_LIB)}
    return evaluate(env, nixseal_out=GUEST_PACKAGE)


def failed_names(journal: str) -> set[str]:
    return {m.group(1) for m in re.finditer(r"\] failed .*?\bname=(\S+)", journal)}


class Step:
    """One scenario step's expectations, checked in the running guest."""

    def __init__(self, guest: Guest, host: GuestHost, where: str) -> None:
        self.guest, self.host, self.where = guest, host, where

    def files(self, files: dict[str, dict[str, str]], links: dict[str, str]) -> None:
        ids = self.host.ids
        assert ids is not None
        seen = snapshot(self.guest, [*files, *links])
        for path, want in files.items():
            got = seen[path]
            assert got is not None, f"{self.where}: {path} is missing"
            if "content" in want:
                assert got["content"] == want["content"], f"{self.where}: {path}: content"
            if "owner" in want:
                assert ids.user(got["uid"]) == want["owner"], f"{self.where}: {path}: owner"
            if "group" in want:
                assert ids.group(got["gid"]) == want["group"], f"{self.where}: {path}: group"
            if "mode" in want:
                assert got["mode"] == int(want["mode"], 8), f"{self.where}: {path}: mode"
        for path, target in links.items():
            link = seen[path]["link"]
            resolved = os.path.normpath(os.path.join(os.path.dirname(path), link))
            assert resolved == target, f"{self.where}: {path} -> {link}"

    def active(self, units: list[str]) -> None:
        for unit in units:
            state = self.guest.run(["systemctl", "is-active", unit]).stdout.strip()
            assert state == "active", f"{self.where}: {unit} is {state}\n{self.guest.journal(unit)}"

    def order(self, pairs: list[list[str]]) -> None:
        for first, then in pairs:
            done = mono(self.guest, first, "ActiveEnterTimestampMonotonic")
            began = mono(self.guest, then, "InactiveExitTimestampMonotonic")
            assert 0 < done <= began, f"{self.where}: {first} finished after {then} started"


def entries(guest: Guest, unit: str, *matches: str) -> list[dict[str, Any]]:
    """The unit's journal entries of this boot matching FIELD=value matches."""
    argv = ["journalctl", "-b", "-o", "json", "--no-pager", "-u", unit, *matches]
    out = guest.run(argv, check=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def check_journal(guest: Guest, where: str, failing: set[str], values: list[str]) -> None:
    """The install's events are entries with fields of their own, found by
    field (journalctl NIXSEAL_STATE=failed), and no value is in any entry."""
    install = "nixseal-install.service"
    failed = entries(guest, install, "NIXSEAL_STATE=failed")
    assert {e["NIXSEAL_NAME"] for e in failed} >= failing, where
    assert all(e["PRIORITY"] == "3" and e.get("NIXSEAL_REASON") for e in failed), where
    summaries = entries(guest, install, "NIXSEAL_EVENT=summary")
    assert summaries and all("NIXSEAL_GENERATION" in e for e in summaries), where
    everything = guest.run(["journalctl", "-b", "-o", "json", "--no-pager"], check=True).stdout
    for value in values:
        assert value not in everything, f"{where}: a secret's value is in the journal"


def invocations(guest: Guest, units: list[str]) -> dict[str, str]:
    return {u: guest.show(u, "InvocationID")["InvocationID"] for u in units}


@pytest.mark.parametrize("name", of_kind("nixos"))
def test_host_scenario_under_systemd(name: str, evaluated: dict[str, Any], tmp_path: Path) -> None:
    scenario = SCENARIOS[name]
    systems = evaluated[name]
    key = TEST_KEYS / f"{scenario['host']}_ssh_host_ed25519_key"
    host = GuestHost(systems["base"], key, tmp_path / "store")
    install = "nixseal-install.service"
    with host.guest() as guest:
        for i, step in enumerate(scenario["steps"]):
            where = f"{name} step {i} ({step['action']} to {step['system']})"
            check = Step(guest, host, where)
            watched = [*step.get("restarted", []), *step.get("notRestarted", [])]
            if step["action"] == "boot":
                status = (
                    1
                    if guest.run(
                        ["systemctl", "is-failed", "--quiet", "nixseal-install.service"]
                    ).returncode
                    == 0
                    else 0
                )
            else:
                before = invocations(guest, watched)
                status = host.switch(guest, systems[step["system"]])
                after = invocations(guest, watched)
                for unit in step.get("restarted", []):
                    assert after[unit] != before[unit], f"{where}: {unit} was not restarted"
                for unit in step.get("notRestarted", []):
                    assert after[unit] == before[unit], f"{where}: {unit} was restarted"
            journal = guest.journal("nixseal-install.service")
            failing = set(step.get("installFails", []))
            assert failed_names(journal) >= failing, f"{where}: {journal}"
            if failing:
                assert status != 0, f"{where}: the switch did not fail"
                state = guest.run(["systemctl", "is-failed", "nixseal-install.service"]).stdout
                assert state.strip() == "failed", where
            else:
                assert status == 0, f"{where}: {journal}"
            check.files(step.get("files", {}), step.get("links", {}))
            values = [f["content"] for f in step.get("files", {}).values() if "content" in f]
            if step["action"] == "boot" or guest.run(["systemctl", "cat", install]).returncode == 0:
                check_journal(guest, where, failing, [v for v in values if len(v) >= 8])
            fstype = guest.run(["findmnt", "-n", "-o", "FSTYPE", "/run/secrets.d"]).stdout
            assert fstype.strip() == "ramfs", f"{where}: /run/secrets.d is {fstype!r}"
            check.active([u for u in step.get("active", []) if u != "nixseal.service"])
            check.order(step.get("order", []))
            # Ordered only by default dependencies, every consumer started
            # after its secrets were there: at boot, after the install unit
            # finished; at a switch, a restarted one after it began.
            install = "nixseal-install.service"
            if step["action"] == "boot":
                ready = mono(guest, install, "ActiveEnterTimestampMonotonic")
                consumers = [
                    u for u in CONSUMERS if guest.run(["systemctl", "cat", u]).returncode == 0
                ]
            else:
                ready = mono(guest, install, "InactiveExitTimestampMonotonic")
                consumers = step.get("restarted", [])
            for unit in consumers:
                started = mono(guest, unit, "ExecMainStartTimestampMonotonic")
                assert 0 < ready <= started, f"{where}: {unit} started before its secrets"
            if "login" in step:
                login = step["login"]
                shadow = snapshot(guest, [login["hashFile"]])[login["hashFile"]]
                assert password_matches(login["password"], shadow["content"]), where


@pytest.mark.parametrize("name", of_kind("home-manager"))
def test_home_scenario_under_systemd_user(
    name: str, evaluated: dict[str, Any], tmp_path: Path
) -> None:
    scenario = SCENARIOS[name]
    home = scenario["home"]
    system = evaluated[name]["base"]
    user = home["user"]
    store = GuestStore(tmp_path / "store")
    rendered = render_user(system["userUnits"])
    store.add(
        list(rendered.files.values()), {system["manifestFile"]: json.dumps(system["manifest"])}
    )
    ids: dict[str, Ids] = {}

    def setup(root: Path) -> None:
        users = {
            user: {
                "name": user,
                "uid": home["uid"],
                "group": "users",
                "home": f"/home/{user}",
                "isNormalUser": True,
                "extraGroups": [],
            }
        }
        ids["x"] = Ids(root, users, {})
        uid = ids["x"].uids[user]
        gid = ids["x"].gids["users"]
        home_dir = root / "home" / user
        config = home_dir / ".config"
        rendered.write(config / "systemd/user")
        key = Path(str(root) + home["keyPath"])
        key.parent.mkdir(parents=True, exist_ok=True)
        key.write_bytes(committed_key(home["key"]).read_bytes())  # TEST-ONLY KEY
        key.chmod(0o400)
        for path in [home_dir, *home_dir.rglob("*")]:
            os.lchown(path, uid, gid)
        (root / "var/lib/systemd/linger").mkdir(parents=True, exist_ok=True)
        (root / "var/lib/systemd/linger" / user).touch()

    with Guest(setup=setup, binds={str(store.dir): "/nix/store"}) as guest:
        uid = ids["x"].uids[user]
        runtime = f"/run/user/{uid}"
        env = {"XDG_RUNTIME_DIR": runtime}

        def user_manager_up() -> bool:
            out = guest.run(["systemctl", "--user", "is-system-running"], user=user, env=env).stdout
            return out.strip() in {"running", "degraded"}

        guest.wait_until("the user's systemd", user_manager_up)
        for step in scenario["steps"]:
            for unit in step.get("active", []):
                state = guest.run(["systemctl", "--user", "is-active", unit], user=user, env=env)
                assert state.stdout.strip() == "active", guest.run(
                    ["journalctl", "--no-pager", "-o", "cat"]
                ).stdout[-3000:]
            paths = {p.replace("%r", runtime, 1): want for p, want in step.get("files", {}).items()}
            seen = snapshot(guest, list(paths))
            for path, want in paths.items():
                got = seen[path]
                assert got is not None, path
                assert got["content"] == want["content"]
                assert got["uid"] == uid
                assert got["mode"] == int(want["mode"], 8)

        # home-manager switch to a new manifest: its activation restarts the
        # unit, whatever systemd.user.startServices says.
        new = evaluate_nix(
            f"""let r = h.evalHome {{ pkgsArgs.nixsealOutPath = "{GUEST_PACKAGE}";
              modules = [ {REPO_ROOT / home["module"]}
                ({{ nixseal.secrets."carol/api-token".mode = "0440"; }}) ]; }};
            in {{ units = r.config.systemd.user.services; inherit (r.config.nixseal) manifest;
                  file = toString r.config.nixseal.manifestFile;
                  activation = r.config.home.activation.nixseal.data; }}""",
            readonly=False,
        )
        rendered = render_user(new["units"])
        store.add(
            [*rendered.files.values(), new["activation"]],
            {new["file"]: json.dumps(new["manifest"])},
        )
        rendered.write(Path(f"{guest.root}/home/{user}/.config/systemd/user"))
        guest.run(["systemctl", "--user", "daemon-reload"], user=user, env=env, check=True)
        script = 'run() { "$@"; }\n' + new["activation"]
        guest.run(["bash", "-euc", script], user=user, env=env, check=True)
        token = f"{runtime}/secrets/carol/api-token"
        assert snapshot(guest, [token])[token]["mode"] == 0o440


def encrypted_for(host: str, value: bytes, path: Path) -> Path:
    from nixseal.age import crypto

    public = (TEST_KEYS / f"{host}_ssh_host_ed25519_key.pub").read_text().strip()
    path.write_bytes(crypto.encrypt(value, [crypto.parse_recipient(public, "test")]))
    return path


def changed_files(files: dict[str, Path]) -> str:
    body = " ".join(f'nixseal.secrets."{name}".file = {path};' for name, path in files.items())
    return "{ " + body + " }"


# A service that only reloads on a new smtp password.
MAILER = """{ pkgs, ... }: {
  nixseal.secrets."shared/smtp-password".reloadUnits = [ "mailer.service" ];
  systemd.services.mailer = {
    wantedBy = [ "multi-user.target" ];
    serviceConfig.ExecStart = "${pkgs.coreutils}/bin/sleep infinity";
    serviceConfig.ExecReload = "${pkgs.coreutils}/bin/true";
  };
}"""


def test_userborn_switch_reloads_reload_units_and_applies_a_new_password(tmp_path: Path) -> None:
    """db1: its smtp password has reloadUnits database.service; dbadmin's
    password is a neededForUsers secret, and userborn only sees its path."""
    new_hash = subprocess.run(
        ["openssl", "passwd", "-6", "-salt", "nixsealswitch", "dbadmin-new-password"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    files = {
        "shared/smtp-password": encrypted_for("db1", b"smtp-relay-v2", tmp_path / "smtp.age"),
        "db1/dbadmin-password": encrypted_for("db1", new_hash.encode(), tmp_path / "dbadmin.age"),
    }
    env = {**os.environ, "NIXPKGS_LIB": str(NIXPKGS_LIB)}
    base = evaluate(env, GUEST_PACKAGE, [MAILER], only=["userborn"])["userborn"]["base"]
    modules = [MAILER, changed_files(files)]
    new = evaluate(env, GUEST_PACKAGE, modules, only=["userborn"])["userborn"]["base"]
    host = GuestHost(base, TEST_KEYS / "db1_ssh_host_ed25519_key", tmp_path / "store")
    with host.guest() as guest:
        shadow = snapshot(guest, ["/etc/shadow"])["/etc/shadow"]["content"]
        assert "dbadmin:$6$nixsealtestsalt2$" in shadow  # set at boot by userborn
        watched = ["mailer.service", "database.service", "userborn.service"]
        before = invocations(guest, watched)
        assert host.switch(guest, new) == 0, guest.journal("nixseal-install.service")
        after = invocations(guest, watched)
        assert after["mailer.service"] == before["mailer.service"]  # reloaded, not restarted
        assert "Reloaded" in guest.journal("mailer.service")
        # database.conf (a template of the smtp password) restarts the database
        assert after["database.service"] != before["database.service"]
        assert after["userborn.service"] != before["userborn.service"]
        shadow = snapshot(guest, ["/etc/shadow"])["/etc/shadow"]["content"]
        assert f"dbadmin:{new_hash}:" in shadow
        conf = snapshot(guest, ["/run/secrets/rendered/database.conf"])
        assert (
            "smtp_password = smtp-relay-v2"
            in conf["/run/secrets/rendered/database.conf"]["content"]
        )


def test_script_mode_restarts_changed_units_after_the_switch(tmp_path: Path) -> None:
    """web1 with activation = "script": the snippet defers, nixseal-restart-units signals."""
    env = {**os.environ, "NIXPKGS_LIB": str(NIXPKGS_LIB)}
    script = '{ nixseal.activation = "script"; }'
    systems = evaluate(env, GUEST_PACKAGE, [script], only=["switch-restarts-changed"])
    systems = systems["switch-restarts-changed"]
    assert "nixseal-install" not in systems["base"]["units"]["services"]
    host = GuestHost(systems["base"], TEST_KEYS / "web1_ssh_host_ed25519_key", tmp_path / "store")
    with host.guest() as guest:
        token = snapshot(guest, ["/run/secrets/web1/app-token"])["/run/secrets/web1/app-token"]
        assert token["content"] == "tok-web1-Yv3q9sLm2Xw8Rk4NcT6bZpA1"
        Step(guest, host, "boot").active(["webapp.service", "nixseal-restart-units.service"])
        before = invocations(guest, ["webapp.service", "webapp-worker.service"])
        assert host.switch(guest, systems["app-token-v2"]) == 0, host.activation_log
        after = invocations(guest, ["webapp.service", "webapp-worker.service"])
        assert after["webapp.service"] != before["webapp.service"]
        assert after["webapp-worker.service"] == before["webapp-worker.service"]
        assert not Path(str(guest.root) + "/run/nixos/activation-restart-list").exists()
        journal = guest.journal("nixseal-restart-units.service")
        assert "pending units signalled" in journal, journal


# Hostile values for typed placeholders, all of web1's own secrets.
TYPED_VALUES = {
    "web1/app-token": b" \"dq\" 'sq' \\back\\slash $HOME ${X} `id` #not-a-comment = ",
    "web1/session-key": b"line one\nline \\\ntwo \\n not-an-escape\\",
    "shared/smtp-password": "ünïcødé ☃ 😀\ttab-and-more".encode(),
}
TYPED_ENV = {"web1/app-token": "APP", "web1/session-key": "SESSION", "shared/smtp-password": "SMTP"}

# The verdict names what differs, never a value: the journal must not hold one.
TYPED_CHECK = """
import json, os
expected = {EXPECTED}
wrong = []
for var, value in expected.items():
    if os.environb.get(var.encode()) != bytes.fromhex(value):
        wrong.append("env " + var)
with open("/run/secrets/rendered/typed.json", "rb") as f:
    doc = json.load(f)
for var, value in expected.items():
    if doc.get(var, "").encode() != bytes.fromhex(value):
        wrong.append("json " + var)
with open("/run/typed-check/verdict", "w") as f:
    f.write(" ".join(wrong) or "ok")
"""


def typed_module() -> str:
    expected = {TYPED_ENV[n]: v.hex() for n, v in TYPED_VALUES.items()}
    check = TYPED_CHECK.replace("{EXPECTED}", json.dumps(expected))
    env = "".join(f'{var}=${{p.dotenv."{name}"}}\n' for name, var in TYPED_ENV.items())
    doc = ", ".join(f'"{var}": ${{p.json."{name}"}}' for name, var in TYPED_ENV.items())
    return f"""{{ config, ... }}:
let p = config.nixseal.placeholders; in {{
  nixseal.templates."typed.env".content = ''
{env}  '';
  nixseal.templates."typed.json".content = ''{{ {doc} }}'';
  systemd.services.typed-check = {{
    wantedBy = [ "multi-user.target" ];
    # Debian's python3: the guest's store has no python package.
    script = ''
      /usr/bin/python3 - <<'EOF'
{check}
EOF
    '';
    serviceConfig = {{
      Type = "oneshot";
      RemainAfterExit = true;
      RuntimeDirectory = "typed-check";
      EnvironmentFile = config.nixseal.templates."typed.env".path;
    }};
  }};
}}"""


def test_typed_placeholders_reach_environment_file_and_json_intact(tmp_path: Path) -> None:
    """systemd's own EnvironmentFile= parser and python3's json read back the
    values of dotenv and json placeholders exactly, hostile ones included."""
    files = {
        name: encrypted_for("web1", value, tmp_path / f"{name.replace('/', '_')}.age")
        for name, value in TYPED_VALUES.items()
    }
    env = {**os.environ, "NIXPKGS_LIB": str(NIXPKGS_LIB)}
    modules = [typed_module(), changed_files(files)]
    system = evaluate(env, GUEST_PACKAGE, modules, only=["install-at-boot"])
    system = system["install-at-boot"]["base"]
    host = GuestHost(system, TEST_KEYS / "web1_ssh_host_ed25519_key", tmp_path / "store")
    with host.guest() as guest:
        guest.wait_until(
            "typed-check finished",
            lambda: (
                guest.show("typed-check.service", "ActiveState")["ActiveState"]
                in ("active", "failed")
            ),
        )
        journal = guest.journal("typed-check.service")
        verdict = snapshot(guest, ["/run/typed-check/verdict"])["/run/typed-check/verdict"]
        assert verdict is not None, journal
        assert verdict["content"] == "ok", journal
        everything = guest.run(["journalctl", "-b", "-o", "json", "--no-pager"], check=True).stdout
        for word in ("not-a-comment", "not-an-escape", "tab-and-more"):
            assert word not in everything, "a secret's value is in the journal"
