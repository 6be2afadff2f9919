"""The example hosts' secrets (secrets/), their test keys, and the
committed demo manifest of web1 (hosts/web1/manifest.json)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import HELPER_DIR, NIXPKGS_LIB, REPO_ROOT, needs_nix

from nixseal.age import crypto
from nixseal.errors import DecryptError
from nixseal.repo.rules import load_rules

SECRETS = REPO_ROOT / "secrets"
KEYS = SECRETS / "test-keys"  # TEST-ONLY KEYS, committed on purpose
RULES = load_rules(SECRETS / "secrets.toml")
LABEL = "TEST-ONLY KEY, committed on purpose, never use in production"


def readers(name: str) -> set[str]:
    """Who the rules say may read a secret: admins, hosts (groups expanded), users."""
    return {ref.name for ref in RULES.recipients_for(name)}


def identity(who: str) -> list[crypto.Identity]:
    if who in RULES.hosts:
        return crypto.load_identity_file(KEYS / f"{who}_ssh_host_ed25519_key")
    return crypto.load_identity_file(KEYS / f"{who}.agekey")


def run_cli(*args: str, cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(HELPER_DIR)}
    argv = [sys.executable, "-m", "nixseal", *args]
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)


def test_examples_match_their_rules() -> None:
    proc = run_cli("--rules", str(SECRETS / "secrets.toml"), "check")
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("name", sorted(RULES.secrets))
def test_each_key_reads_exactly_what_the_rules_give_it(name: str) -> None:
    data = (SECRETS / f"{name}.age").read_bytes()
    everyone = {*RULES.admins, *RULES.hosts, *RULES.users}
    for who in sorted(everyone):
        if who in readers(name):
            assert crypto.decrypt(data, identity(who), name), f"{who} must read {name}"
        else:
            with pytest.raises(DecryptError):
                crypto.decrypt(data, identity(who), name)


def test_a_host_cannot_read_another_hosts_secrets() -> None:
    web1, db1 = identity("web1"), identity("db1")
    for name in RULES.secrets:
        data = (SECRETS / f"{name}.age").read_bytes()
        if name.startswith("db1/"):
            with pytest.raises(DecryptError, match=r"no identity matches|No matching keys"):
                crypto.decrypt(data, web1, name)
        if name.startswith("web1/"):
            with pytest.raises(DecryptError):
                crypto.decrypt(data, db1, name)


def test_test_keys_are_labelled_everywhere() -> None:
    assert LABEL in (KEYS / "README.md").read_text().replace("KEYS", "KEY")
    for pub in KEYS.glob("*.pub"):
        assert LABEL in pub.read_text(), pub.name
    for agekey in KEYS.glob("*.agekey"):
        assert LABEL in agekey.read_text(), agekey.name
    rules = (SECRETS / "secrets.toml").read_text()
    assert rules.count(LABEL) == len(RULES.admins) + len(RULES.hosts) + len(RULES.users)
    for user in ("checks/vm/test-keys.nix", "checks/vm/home-manager.nix", "hosts/web1/default.nix"):
        assert "TEST-ONLY KEY" in (REPO_ROOT / user).read_text(), user


def _evaluate_web1() -> dict[str, Any]:
    expr = f"""
      let
        h = import {REPO_ROOT}/checks/eval/lib.nix {{ lib-path = "{NIXPKGS_LIB}"; }};
        cfg = (h.evalHost {{ modules = [ {REPO_ROOT}/hosts/web1 ]; }}).config.nixseal;
      in {{
        inherit (cfg) manifest;
        sources = builtins.mapAttrs (_: s: toString s.file) cfg.secrets;
      }}
    """
    proc = subprocess.run(
        ["nix-instantiate", "--eval", "--strict", "--json", "--readonly-mode", "-E", expr],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


@needs_nix
def test_committed_web1_manifest_is_what_web1_evaluates_to() -> None:
    """hosts/web1/manifest.json cannot drift from hosts/web1 (regenerate it
    with `helper/scripts/make-examples --manifest`)."""
    committed = json.loads((REPO_ROOT / "hosts/web1/manifest.json").read_text())
    evaluated = _evaluate_web1()
    manifest = evaluated["manifest"]
    # The only differences allowed: repository paths for store paths, and
    # the committed test key for the host key paths.
    for secret in manifest["secrets"]:
        source = Path(evaluated["sources"][secret["name"]])
        assert secret["file"].endswith("-" + source.name)
        secret["file"] = str(source.relative_to(REPO_ROOT))
    manifest["identityPaths"] = ["secrets/test-keys/web1_ssh_host_ed25519_key"]
    assert committed == manifest


def test_committed_web1_manifest_passes_the_build_time_check() -> None:
    pub = (KEYS / "web1_ssh_host_ed25519_key.pub").read_text().strip()
    proc = run_cli("check-manifest", "hosts/web1/manifest.json", "--host-key", pub)
    assert proc.returncode == 0, proc.stderr
    other = (KEYS / "db1_ssh_host_ed25519_key.pub").read_text().strip()
    proc = run_cli("check-manifest", "hosts/web1/manifest.json", "--host-key", other)
    assert proc.returncode == 1 and "not encrypted to the host key" in proc.stderr
