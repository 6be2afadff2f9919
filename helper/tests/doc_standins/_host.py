"""The scratch hosts behind the documentation's stand-ins.

A host is a directory under $DOC_HOSTS holding the parts of its root that
nixseal touches: /etc/ssh (a real host key, made on first use), /etc/passwd
and /etc/group (from the evaluated users.users and users.groups), and /run.
Commands "on the host" run in a private mount namespace where those are
bound over the real ones, so nixseal runs exactly as on a NixOS host, only
with --no-mount (a ramfs mounted there would vanish with the namespace).
Needs root and unshare, like the tests that use it.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

# The stand-ins run outside pytest; tests/ holds the accounts code they share.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _accounts import Accounts

HOSTS = Path(os.environ["DOC_HOSTS"])
NIXPKGS = os.environ["DOC_NIXPKGS"]
NIXSEAL = os.environ["DOC_NIXSEAL"]
MODULES = Path(os.environ["DOC_MODULES"])


def root(host: str) -> Path:
    r = HOSTS / host
    ssh = r / "etc/ssh"
    # Both keys a NixOS host with sshd has (services.openssh.hostKeys).
    for kind, extra in (("ed25519", []), ("rsa", ["-b", "2048"])):
        key = ssh / f"ssh_host_{kind}_key"
        if not key.exists():
            ssh.mkdir(parents=True, exist_ok=True)
            subprocess.run(
                [
                    "ssh-keygen",
                    "-q",
                    "-t",
                    kind,
                    *extra,
                    "-N",
                    "",
                    "-C",
                    f"root@{host}",
                    "-f",
                    str(key),
                ],
                check=True,
            )
    (r / "run/systemd/system").mkdir(parents=True, exist_ok=True)
    for name in ("passwd", "group"):
        if not (r / "etc" / name).exists():
            (r / "etc" / name).write_text(
                "root:x:0:0::/root:/bin/sh\n" if name == "passwd" else "root:x:0:\n"
            )
    return r


def host_key(host: str) -> str:
    return (root(host) / "etc/ssh/ssh_host_ed25519_key.pub").read_text().strip()


def on_host(host: str, argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """argv run as root on host: its /run, /etc/passwd, /etc/group, /etc/ssh."""
    r = root(host)
    binds = [("run", "/run"), ("etc/passwd", "/etc/passwd"), ("etc/group", "/etc/group")]
    if Path("/etc/ssh").is_dir():
        binds.append(("etc/ssh", "/etc/ssh"))
    mounts = " && ".join(f"mount --bind {shlex.quote(str(r / s))} {d}" for s, d in binds)
    env = dict(os.environ, DOC_HOST=host)
    return subprocess.run(
        [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            f'{mounts} && exec "$@"',
            "sh",
            *argv,
        ],
        env=env,
        text=True,
        check=False,
        **kwargs,
    )


def nix_eval(installable: str, apply: str) -> Any:
    argv = [
        *("nix", "eval", "--json", "--impure", "--no-write-lock-file"),
        *("--override-input", "nixpkgs", f"path:{NIXPKGS}"),
        *("--override-input", "nixseal", f"path:{NIXSEAL}"),
        *("--override-input", "nixseal/nixpkgs", f"path:{NIXPKGS}"),
        installable,
        *("--apply", apply),
    ]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines() if not ln.startswith("warning: Git tree")]
        sys.stderr.write("\n".join(lines) + "\n")
        raise SystemExit(1)
    return json.loads(proc.stdout)


def extra_modules(host: str) -> str:
    files = sorted((MODULES / host).glob("*.nix")) if (MODULES / host).is_dir() else []
    return "[ " + " ".join(f"(import {json.dumps(str(f))})" for f in files) + " ]"


# Applied to an evaluated NixOS configuration `e`: what activating it needs.
# As NixOS's toplevel does, failed assertions stop it before anything else
# is evaluated (a declared secret whose file does not exist yet must fail
# with its assertion, not with Nix's "getting status of ...").
SUMMARY = """let
  failed = map (a: a.message) (builtins.filter (a: !a.assertion) e.config.assertions);
  ok = failed == [ ];
in {
  inherit failed;
  manifest = if ok then e.config.nixseal.manifest else null;
  manifestForUsers = if ok then e.config.nixseal.manifestForUsers or null else null;
  warnings = e.config.warnings;
  check = if ok then e.config.system.build.nixsealManifest.buildCommand or null else null;
  checkForUsers =
    if ok then e.config.system.build.nixsealManifestForUsers.buildCommand or null else null;
  users = builtins.mapAttrs
    (_: u: { inherit (u) name uid group isNormalUser home extraGroups; }) e.config.users.users;
  groups = builtins.mapAttrs (_: g: { inherit (g) name gid members; }) e.config.users.groups;
}"""


def _write_accounts(host: str, r: Path, data: dict[str, Any]) -> None:
    """/etc/passwd and /etc/group from the configuration; ids stay stable
    across deploys, as NixOS keeps them."""
    idfile = HOSTS / f"{host}.ids.json"
    previous = Accounts(**json.loads(idfile.read_text())) if idfile.exists() else None
    acc = Accounts.from_config(data["users"], data["groups"], previous)
    acc.write(r, data["users"], data["groups"])
    idfile.write_text(json.dumps({"uids": acc.uids, "gids": acc.gids}))


def _build_check(command: str | None, manifest: Path) -> bool:
    """The module's build-time check, as the manifest's derivation runs it."""
    if not command:
        return True
    script = re.sub(r"\S*/bin/nixseal\b", "nixseal", command)
    env = dict(os.environ, manifestPath=str(manifest), out=os.devnull)
    proc = subprocess.run(
        ["bash", "-e", "-c", script], env=env, capture_output=True, text=True, check=False
    )
    if proc.returncode == 0:
        return True
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    print(
        f"error: builder for '/nix/store/...-{manifest.name}.drv' failed with exit code {proc.returncode};"
    )
    print(f"       last {len(lines)} log lines:")
    for line in lines:
        print(f"       > {line}")
    return False


def activate(host: str, data: dict[str, Any]) -> int:
    """Build the manifests, then install them on the host as its activation does."""
    for w in data["warnings"]:
        print(f"evaluation warning: {w}")
    if data["failed"]:
        print("error:\nFailed assertions:")
        for msg in data["failed"]:
            print(f"- {msg}")
        return 1
    r = root(host)
    _write_accounts(host, r, data)
    steps = []
    for key, check, name in (
        ("manifestForUsers", "checkForUsers", "nixseal-manifest-for-users.json"),
        ("manifest", "check", "nixseal-manifest.json"),
    ):
        manifest = data[key]
        if not manifest or not (manifest["secrets"] or manifest.get("templates")):
            continue
        if not Path("/etc/ssh").is_dir():  # else on_host binds the host's /etc/ssh there
            manifest["identityPaths"] = [str(r) + p for p in manifest["identityPaths"]]
        path = HOSTS / f"{host}.build" / name
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps(manifest))
        if not _build_check(data[check], path):
            return 1
        steps.append(path)
    print("activating the configuration...")
    status = 0
    for path in steps:
        proc = on_host(host, ["nixseal", "install", "--manifest", str(path), "--no-mount"])
        status = status or proc.returncode
    restart = r / "run/nixos/activation-restart-list"
    if restart.exists():
        units = sorted(set(restart.read_text().split()))
        restart.unlink()
        if units:
            print(f"restarting the following units: {', '.join(units)}")
    if status:
        print("warning: error(s) occurred while switching to the new configuration")
        return 4
    return 0
