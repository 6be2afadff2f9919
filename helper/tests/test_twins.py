"""Local twins of the NixOS VM tests in checks/vm.

Each scenario in checks/scenarios/*.json runs here as: evaluate the
scenario's systems offline (checks/scenarios/evaluate.nix: real nixpkgs
lib, stubbed NixOS options), take their manifests, run `nixseal install
--root` in a private mount namespace with the accounts of the evaluated
configuration, switch by installing the next system's manifests, and
assert what the VM test asserts, from the same JSON.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _accounts import Accounts
from _twin import (
    TEST_KEYS,
    Namespace,
    Run,
    committed_key,
    evaluate,
    load_scenarios,
    nixseal,
    password_matches,
    place_key,
    run_here,
    write_manifest,
)
from conftest import NIXPKGS_LIB, needs_nix, needs_root

SCENARIOS = load_scenarios()

# Every word a step may use. checks/vm/driver.nix turns the same words into
# testScript code; test_flake.py checks it knows each of them.
STEP_KEYS = {
    "action",
    "system",
    "active",
    "files",
    "links",
    "restarted",
    "notRestarted",
    "installFails",
    "login",
    "order",
}
KINDS = {"nixos", "home-manager", "build-failure"}


def kind(scenario: dict[str, Any]) -> str:
    return str(scenario.get("kind", "nixos"))


def of_kind(wanted: str) -> list[str]:
    return [name for name, s in SCENARIOS.items() if kind(s) == wanted]


@pytest.fixture(scope="module")
def evaluated() -> dict[str, Any]:
    env = {**os.environ, "NIXPKGS_LIB": str(NIXPKGS_LIB)}
    return evaluate(env)


@pytest.fixture
def public_tmp() -> Iterator[Path]:
    """A scratch directory other uids can traverse (for the user-mode twin)."""
    path = Path(tempfile.mkdtemp(prefix="nixseal-twin-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path)


def readable_packages(into: Path) -> str:
    """A PYTHONPATH holding nixseal and what it imports at install, copied
    where the scenario's user can read them: a checkout (and its
    virtualenv) may sit in a directory only its owner can enter."""
    import importlib

    into.mkdir(mode=0o755)
    for name in ("nixseal", "structlog", "pyrage"):
        package = Path(importlib.import_module(name).__file__ or "").parent
        shutil.copytree(package, into / name, ignore=shutil.ignore_patterns("__pycache__"))
    for path in into.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return str(into)


class Checker:
    """Asserts one step's expectations against what the twin produced."""

    def __init__(
        self, ns: Namespace, root: Path, acc: Accounts, runtime_dir: str = "/run/user/0"
    ) -> None:
        self.ns, self.root, self.acc, self.runtime_dir = ns, root, acc, runtime_dir

    def host_path(self, path: str) -> str:
        return str(self.root) + path.replace("%r", self.runtime_dir, 1)

    def files(self, where: str, files: dict[str, dict[str, str]], links: dict[str, str]) -> None:
        seen = self.ns.snapshot([self.host_path(p) for p in [*files, *links]])
        for path, want in files.items():
            got = seen[self.host_path(path)]
            assert got is not None, f"{where}: {path} is missing"
            if "content" in want:
                assert got["content"] == want["content"], f"{where}: {path}: wrong content"
            if "owner" in want:
                assert self.acc.user(got["uid"]) == want["owner"], f"{where}: {path}: owner"
            if "group" in want:
                assert self.acc.group(got["gid"]) == want["group"], f"{where}: {path}: group"
            if "mode" in want:
                assert got["mode"] == int(want["mode"], 8), f"{where}: {path}: mode {got['mode']:o}"
        for path, target in links.items():
            got = seen[self.host_path(path)]
            assert got is not None, f"{where}: {path} is missing"
            link = got["link"]
            assert link is not None, f"{where}: {path} is not a symlink"
            resolved = os.path.normpath(os.path.join(os.path.dirname(self.host_path(path)), link))
            assert resolved == self.host_path(target), f"{where}: {path} -> {link}"

    def units(self, where: str, step: dict[str, Any], runs: list[Run]) -> None:
        codes = [r.code for r in runs]
        errors = "\n".join(r.err for r in runs)
        failing = sorted(step.get("installFails", []))
        assert sorted({n for r in runs for n in r.failed()}) == failing, f"{where}: {errors}"
        if failing:
            assert 1 in codes and set(codes) <= {0, 1}, f"{where}: exit statuses {codes}"
        else:
            assert set(codes) <= {0}, f"{where}: exit statuses {codes}\n{errors}"
        restarted = {u for r in runs for u in r.signalled("restart")}
        touched = restarted | {u for r in runs for u in r.signalled("reload")}
        for unit in step.get("restarted", []):
            assert unit in restarted, f"{where}: {unit} not restarted ({sorted(restarted)})"
        for unit in step.get("notRestarted", []):
            assert unit not in touched, f"{where}: {unit} was signalled"


def declared_or_ordered(unit: str, services: dict[str, Any]) -> bool:
    """The unit is ours, or one of ours is ordered against it (a NixOS unit)."""
    if unit.removesuffix(".service") in services:
        return True
    return any(unit in s["before"] + s["after"] + s["wantedBy"] for s in services.values())


def runs_before(first: str, then: str, services: dict[str, Any]) -> bool:
    a, b = first.removesuffix(".service"), then.removesuffix(".service")
    return (a in services and then in services[a]["before"]) or (
        b in services and first in services[b]["after"]
    )


@needs_root
@needs_nix
@pytest.mark.parametrize("name", of_kind("nixos"))
def test_host_scenario(name: str, evaluated: dict[str, Any], tmp_path: Path) -> None:
    scenario = SCENARIOS[name]
    systems = evaluated[name]
    root = tmp_path / "root"
    base = systems["base"]
    acc = Accounts.from_config(base["users"], base["groups"])
    acc.write(root, base["users"], base["groups"])
    # TEST-ONLY KEY, committed on purpose: where the VM test puts it too.
    key = TEST_KEYS / f"{scenario['host']}_ssh_host_ed25519_key"
    place_key(key, root / "etc/ssh/ssh_host_ed25519_key")
    ns = Namespace(root)
    check = Checker(ns, root, acc)
    try:
        for i, step in enumerate(scenario["steps"]):
            where = f"{name} step {i} ({step['action']} to {step['system']})"
            system = systems[step["system"]]
            assert system["failedAssertions"] == [], where
            runs = []
            # As on NixOS: password secrets first (before users), then the rest.
            for which in ("manifestForUsers", "manifest"):
                manifest = system[which]
                if not manifest["secrets"] and not manifest["templates"]:
                    continue
                path = write_manifest(tmp_path / f"{which}-{i}.json", manifest, root)
                proc = ns.run(nixseal("install", "--manifest", str(path), "--root", str(root)))
                runs.append(Run(proc.returncode, proc.stderr))
            check.units(where, step, runs)
            check.files(where, step.get("files", {}), step.get("links", {}))
            services = system["services"]
            for unit in step.get("active", []):
                assert declared_or_ordered(unit, services), f"{where}: no unit {unit}"
            for first, then in step.get("order", []):
                assert runs_before(first, then, services), f"{where}: {first} before {then}"
            if "login" in step:
                check_login(where, step["login"], system, check)
    finally:
        ns.close()


def check_login(where: str, login: dict[str, str], system: dict[str, Any], check: Checker) -> None:
    user = system["users"][login["user"]]
    assert user["hashedPasswordFile"] == login["hashFile"], where
    stored = check.ns.snapshot([check.host_path(login["hashFile"])])
    entry = stored[check.host_path(login["hashFile"])]
    assert entry is not None, f"{where}: {login['hashFile']} missing"
    assert password_matches(login["password"], entry["content"]), f"{where}: wrong hash"
    # The hash must be there before users are created: the activation
    # script creating users runs after nixseal's, or userborn/sysusers
    # after nixseal-install-for-users.
    services = system["services"]
    by_script = "nixsealForUsers" in system["activationDeps"].get("users", [])
    by_unit = any(
        runs_before("nixseal-install-for-users.service", u, services)
        for u in ("userborn.service", "systemd-sysusers.service")
    )
    assert by_script or by_unit, f"{where}: users may be created before their password exists"


@needs_root
@needs_nix
@pytest.mark.parametrize("name", of_kind("home-manager"))
def test_home_scenario(name: str, evaluated: dict[str, Any], public_tmp: Path) -> None:
    scenario = SCENARIOS[name]
    home = scenario["home"]
    system = evaluated[name]["base"]
    assert system["failedAssertions"] == []
    uid, gid = int(home["uid"]), 100
    root = public_tmp / "root"
    users = {
        "root": {"name": "root", "uid": 0, "group": "root", "home": "/root"},
        home["user"]: {"name": home["user"], "uid": uid, "group": "users", "home": "/home/x"},
    }
    for u in users.values():
        u.update(extraGroups=[], isNormalUser=u["uid"] != 0)
    groups = {
        "root": {"name": "root", "gid": 0, "members": []},
        "users": {"name": "users", "gid": gid, "members": []},
    }
    acc = Accounts.from_config(users, groups)
    acc.write(root, users, groups)
    # TEST-ONLY KEY, committed on purpose: the user's own key.
    place_key(committed_key(home["key"]), Path(str(root) + home["keyPath"]), uid, gid)
    runtime = f"/run/user/{uid}"
    packages = readable_packages(public_tmp / "packages")
    ns = Namespace(root)
    check = Checker(ns, root, acc, runtime)
    try:
        made = ns.run(
            ["install", "-d", "-o", str(uid), "-g", str(gid), "-m", "0700", str(root) + runtime]
        )
        assert made.returncode == 0, made.stderr
        for i, step in enumerate(scenario["steps"]):
            where = f"{name} step {i}"
            path = write_manifest(root / f"manifest-{i}.json", system["manifest"], root)
            path.chmod(0o644)
            argv = ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups"]
            env = {
                "XDG_RUNTIME_DIR": str(root) + runtime,
                "HOME": str(root) + f"/home/{uid}",
                "PYTHONPATH": packages,
            }
            proc = ns.run([*argv, *nixseal("install", "--manifest", str(path))], env)
            check.units(where, step, [Run(proc.returncode, proc.stderr)])
            check.files(where, step.get("files", {}), step.get("links", {}))
            for unit in step.get("active", []):
                assert unit.removesuffix(".service") in system["services"], where
    finally:
        ns.close()


@needs_nix
@pytest.mark.parametrize("name", of_kind("build-failure"))
def test_build_failure_scenario(name: str, evaluated: dict[str, Any], tmp_path: Path) -> None:
    """What the module's manifest derivation runs at build time, and its assertions."""
    scenario = SCENARIOS[name]
    systems = evaluated[name]

    def check_manifest(system: str) -> Run:
        data = systems[system]
        path = write_manifest(tmp_path / f"{system}.json", data["manifest"], Path("/"))
        proc = run_here(nixseal("check-manifest", str(path), "--host-key", data["hostKey"]))
        return Run(proc.returncode, proc.stderr)

    assert check_manifest("base").code == 0, "the host itself must build"
    assert systems["base"]["failedAssertions"] == []

    failure = scenario["buildFailure"]
    broken = check_manifest(failure["system"])
    assert broken.code == 1, broken.err
    for message in failure["messages"]:
        assert message in broken.err, f"{message!r} not in {broken.err!r}"

    failure = scenario["evalFailure"]
    failed = systems[failure["system"]]["failedAssertions"]
    assert any(all(m in a for m in failure["messages"]) for a in failed), failed


def test_scenarios_use_only_known_words() -> None:
    """A check the VM test makes must be one the twin makes too."""
    assert SCENARIOS, "no scenarios found"
    for name, scenario in SCENARIOS.items():
        assert kind(scenario) in KINDS, name
        assert scenario["description"], name
        systems = {"base", *scenario.get("systems", {})}
        for i, step in enumerate(scenario.get("steps", [])):
            assert set(step) <= STEP_KEYS, f"{name} step {i}: {set(step) - STEP_KEYS}"
            assert step["system"] in systems, f"{name} step {i}"
            assert step["action"] in {"boot", "switch", "rollback"}, f"{name} step {i}"
        if kind(scenario) != "build-failure":
            assert scenario["steps"][0]["action"] == "boot", name


def test_scenarios_cover_the_issue() -> None:
    """Every behaviour the VM tests promise has a scenario (and so a twin)."""
    steps = [s for sc in SCENARIOS.values() for s in sc.get("steps", [])]
    assert any(s.get("restarted") and s.get("notRestarted") for s in steps)
    assert any(s["action"] == "rollback" for s in steps)
    assert any(s.get("installFails") for s in steps)
    assert any("login" in s for s in steps)
    assert any(p.startswith("/run/secrets/rendered/") for s in steps for p in s.get("files", {}))
    assert any(sc["host"] == "db1" for sc in SCENARIOS.values())  # userborn host
    assert of_kind("home-manager") and of_kind("build-failure")


@needs_root
@needs_nix
def test_a_host_installs_only_its_own_secrets(evaluated: dict[str, Any], tmp_path: Path) -> None:
    """db1's system on a machine holding web1's key: only what both share is installed."""
    db1 = evaluated["userborn"]["base"]
    root = tmp_path / "root"
    acc = Accounts.from_config(db1["users"], db1["groups"])
    acc.write(root, db1["users"], db1["groups"])
    # TEST-ONLY KEY, committed on purpose: web1's, where db1 expects its own.
    place_key(TEST_KEYS / "web1_ssh_host_ed25519_key", root / "etc/ssh/ssh_host_ed25519_key")
    ns = Namespace(root)
    try:
        runs = []
        for which in ("manifestForUsers", "manifest"):
            path = write_manifest(tmp_path / f"{which}.json", db1[which], root)
            proc = ns.run(nixseal("install", "--manifest", str(path), "--root", str(root)))
            runs.append(Run(proc.returncode, proc.stderr))
        entries = [e["name"] for w in ("manifestForUsers", "manifest") for e in db1[w]["secrets"]]
        shared = {n for n in entries if n.startswith("shared/")}
        assert shared and len(shared) < len(entries)
        failed = {n for r in runs for n in r.failed()}
        templates = {t["name"] for t in db1["manifest"]["templates"]}
        assert failed == (set(entries) - shared) | templates
        assert [r.code for r in runs] == [1, 1]
        seen = ns.snapshot([str(root) + f"/run/secrets/{n}" for n in sorted(entries)])
        readable = {p.rsplit("/run/secrets/", 1)[1] for p, v in seen.items() if v is not None}
        assert readable == shared
    finally:
        ns.close()
