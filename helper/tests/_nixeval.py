"""Evaluate NixOS hosts and home-manager users offline, through the harness
in checks/eval (the real nixpkgs lib at NIXPKGS_LIB, stubs, a fake pkgs).

Tests write host modules as Nix text and select what they assert on; each
call is one ``nix-instantiate --eval --strict --json``. Skip such tests with
``conftest.needs_nix``.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from conftest import NIX_CONFIG, NIXPKGS_LIB, REPO_ROOT

HARNESS = REPO_ROOT / "checks" / "eval" / "lib.nix"

# A host most tests start from: sshd's host keys are the default identities.
BASE_HOST = """{
  networking.hostName = "web1";
  services.openssh.enable = true;
  users.users.grafana = { isSystemUser = true; group = "grafana"; };
  users.groups.grafana = { };
}"""

# A nix-darwin host most darwin tests start from.
BASE_DARWIN = """{
  networking.hostName = "web1";
  users.users.alice = { uid = 501; home = "/Users/alice"; };
}"""

BASE_HOME = """{
  home.username = "carol";
  home.homeDirectory = "/home/carol";
}"""


class NixEvalError(Exception):
    """nix-instantiate failed; str() is its stderr."""


def nix_string(text: str | Path) -> str:
    """A Nix string literal holding text (no interpolation)."""
    escaped = (
        str(text)
        .replace("\\", "\\\\")
        .replace('"', '\\"')
        .replace("${", "\\${")
        .replace("\n", "\\n")
    )
    return f'"{escaped}"'


def nix_env() -> dict[str, str]:
    env = dict(os.environ)
    env["NIX_CONFIG"] = NIX_CONFIG
    env["NIXPKGS_LIB"] = str(NIXPKGS_LIB)
    return env


def evaluate(expr: str, *, readonly: bool = True) -> Any:
    """Value of expr as JSON. In scope: h (the harness), lib.

    readonly: compute store paths without writing the store (nix-instantiate
    --eval's own default); pass False when Nix path values must really be
    copied there, to be read afterwards.
    """
    full = f"let h = import {HARNESS} {{ lib-path = {nix_string(NIXPKGS_LIB)}; }}; lib = h.lib; in {expr}"
    args = ["nix-instantiate", "--eval", "--strict", "--json"]
    args.append("--readonly-mode" if readonly else "--read-write-mode")
    proc = subprocess.run(
        [*args, "-E", full], capture_output=True, text=True, env=nix_env(), check=False
    )
    if proc.returncode != 0:
        raise NixEvalError(proc.stderr)
    return json.loads(proc.stdout)


def _modules(modules: tuple[str, ...]) -> str:
    return "[ " + " ".join(f"({m})" for m in modules) + " ]"


def _select(evaluator: str, modules: tuple[str, ...], select: str) -> str:
    # `with r;` puts config, options, pkgs, failedAssertions and warnings in scope.
    return f"let r = h.{evaluator} {{ modules = {_modules(modules)}; }}; in with r; ({select})"


def host(*modules: str, select: str = "config.nixseal.manifest", **kwargs: Any) -> Any:
    """Evaluate a host made of BASE_HOST and modules; return the select expression.

    In select's scope: config, options, pkgs, failedAssertions, warnings, lib.
    """
    return evaluate(_select("evalHost", (BASE_HOST, *modules), select), **kwargs)


def host_many(*modules: str, **selects: str) -> dict[str, Any]:
    """Several selections (keyword -> select expression) from one evaluation."""
    fields = " ".join(f"{name} = {sel};" for name, sel in selects.items())
    result: dict[str, Any] = evaluate(_select("evalHost", (BASE_HOST, *modules), f"{{ {fields} }}"))
    return result


def failed(*modules: str) -> list[str]:
    """Messages of the host's failed assertions."""
    messages: list[str] = host(*modules, select="failedAssertions")
    return messages


def home(*modules: str, select: str = "config.nixseal.manifest", **kwargs: Any) -> Any:
    """Evaluate a home-manager configuration of BASE_HOME and modules."""
    return evaluate(_select("evalHome", (BASE_HOME, *modules), select), **kwargs)


def darwin(*modules: str, select: str = "config.nixseal.manifest", **kwargs: Any) -> Any:
    """Evaluate a nix-darwin host of BASE_DARWIN and modules (evalDarwin)."""
    return evaluate(_select("evalDarwin", (BASE_DARWIN, *modules), select), **kwargs)
