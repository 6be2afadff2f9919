"""The boot graph: the evaluated units among systemd's own, checked by systemd.

For every example host and every way users are created (the activation
script, userborn, systemd-sysusers, and keys on a separately mounted
/persist), the units are rendered as NixOS renders them (tests/_units.py),
userborn's and sysusers' units included as nixpkgs orders them (the stubs
in checks/eval), and placed in front of Debian's upstream units
(/usr/lib/systemd/system: local-fs.target, local-fs-pre.target,
systemd-remount-fs.service, systemd-tmpfiles-setup-dev.service,
sysinit.target, ...). `systemd-analyze verify` then builds the boot
transaction of sysinit.target and of multi-user.target, as systemd does at
boot, and must find no ordering cycle (systemd would break one by deleting
a start job, on every boot).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from _nixeval import evaluate
from _nspawn import needs_nspawn
from _units import render_system
from conftest import REPO_ROOT, needs_nix

pytestmark = [needs_nix, needs_nspawn]

UPSTREAM = Path("/usr/lib/systemd/system")

SYSUSERS_HOST = """{
  networking.hostName = "web1";
  services.openssh.enable = true;
  systemd.sysusers.enable = true;
  users.users.svc = { isSystemUser = true; group = "svc";
    hashedPasswordFile = config.nixseal.secrets.svc-password.path; };
  users.groups.svc = { };
  nixseal.secrets.svc-password = { file = "/var/lib/s/svc.age"; neededForUsers = true; };
  nixseal.secrets.token = { file = "/var/lib/s/token.age"; owner = "svc"; };
}"""

PERSIST = """{
  fileSystems."/persist" = { device = "/dev/disk/by-label/persist"; fsType = "ext4"; neededForBoot = true; };
  nixseal.identityPaths = [ "/persist/etc/ssh/ssh_host_ed25519_key" ];
}"""

# name -> the host's modules (as Nix expressions)
HOSTS = {
    "web1 (users by the activation script)": [str(REPO_ROOT / "hosts/web1")],
    "db1 (userborn)": [str(REPO_ROOT / "hosts/db1")],
    "sysusers": [f"({{ config, ... }}: {SYSUSERS_HOST})"],
    "db1 with keys on /persist": [str(REPO_ROOT / "hosts/db1"), PERSIST],
    "web1 with keys on /persist": [str(REPO_ROOT / "hosts/web1"), PERSIST],
}


def evaluated_units(modules: list[str]) -> dict[str, Any]:
    mods = " ".join(f"({m})" for m in modules)
    expr = f"""let r = h.evalHost {{ modules = [ {mods} ]; }}; in
      {{ failed = r.failedAssertions; units = h.unitsOf r;
         fileSystems = lib.mapAttrs (_: f: {{ inherit (f) mountPoint device fsType neededForBoot; }})
           r.config.fileSystems; }}"""
    result: dict[str, Any] = evaluate(expr)
    return result


def mount_units(file_systems: dict[str, Any]) -> dict[str, str]:
    """Mount units as systemd-fstab-generator writes them for fileSystems (NixOS's fstab)."""
    units = {}
    for fs in file_systems.values():
        where = fs["mountPoint"]
        if where == "/":
            continue
        name = where.strip("/").replace("-", "\\x2d").replace("/", "-") + ".mount"
        units[name] = (
            "[Unit]\nBefore=local-fs.target\n"
            f"[Mount]\nWhat={fs['device']}\nWhere={where}\nType={fs['fsType']}\n"
        )
    return units


def verify(directory: Path, units: list[str]) -> str:
    env = {
        **os.environ,
        "SYSTEMD_UNIT_PATH": f"{directory}:{UPSTREAM}",
        "SYSTEMD_LOG_LEVEL": "info",
    }
    proc = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *units],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    return proc.stdout + proc.stderr


def unit_file(directory: Path, name: str) -> str:
    """verify takes files: ours, else upstream's."""
    return str(directory / name if (directory / name).exists() else UPSTREAM / name)


def place(directory: Path, result: dict[str, Any]) -> list[str]:
    units = result["units"]
    rendered = render_system(units, units["defaultPath"], {p.name for p in UPSTREAM.iterdir()})
    # systemd-fstab-generator, for NixOS's fstab (which always has "/"):
    # the root's remount, and a mount unit per other file system.
    remount = "systemd-remount-fs.service"
    rendered.links[f"local-fs.target.wants/{remount}"] = str(UPSTREAM / remount)
    for name, text in mount_units(result["fileSystems"]).items():
        rendered.files[name] = text
        rendered.links[f"local-fs.target.requires/{name}"] = f"../{name}"
    rendered.write(directory)
    return sorted(n for n in rendered.files if "/" not in n)


@pytest.mark.parametrize("name", list(HOSTS))
def test_no_ordering_cycle_at_boot(name: str, tmp_path: Path) -> None:
    result = evaluated_units(HOSTS[name])
    assert result["failed"] == [], result["failed"]
    ours = place(tmp_path / "units", result)
    assert any(u.startswith("nixseal-install") for u in ours)
    for target in ("sysinit.target", "multi-user.target", *ours):
        out = verify(tmp_path / "units", [unit_file(tmp_path / "units", target)])
        assert "ordering cycle" not in out, f"{name}, {target}:\n{out}"
        assert "to break ordering cycle" not in out, out


def test_the_check_finds_a_cycle(tmp_path: Path) -> None:
    """A unit after local-fs.target and before userborn is the cycle systemd reports."""
    result = evaluated_units([str(REPO_ROOT / "hosts/db1")])
    place(tmp_path / "units", result)
    bad = tmp_path / "units/bad.service"
    bad.write_text(
        "[Unit]\nDefaultDependencies=no\nAfter=local-fs.target\nBefore=userborn.service\n"
        "[Service]\nType=oneshot\nExecStart=/bin/true\n"
    )
    (tmp_path / "units/sysinit.target.wants").mkdir(exist_ok=True)
    (tmp_path / "units/sysinit.target.wants/bad.service").symlink_to("../bad.service")
    out = verify(tmp_path / "units", [unit_file(tmp_path / "units", "sysinit.target")])
    assert "Found ordering cycle" in out


def test_keys_on_a_stage_two_mount_fail_evaluation_for_user_passwords() -> None:
    """Not mounted in the initrd: the password unit could not wait for it without a cycle."""
    persist = PERSIST.replace("neededForBoot = true;", "")
    result = evaluated_units([str(REPO_ROOT / "hosts/db1"), persist])
    (message,) = [m for m in result["failed"] if "neededForBoot" in m]
    assert 'fileSystems."/persist".neededForBoot' in message
    assert "/persist/etc/ssh/ssh_host_ed25519_key" in message
