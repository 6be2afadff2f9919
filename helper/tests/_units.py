"""Unit files from evaluated NixOS and home-manager options, as NixOS writes them.

The rules mirror nixpkgs: the `unitConfig` module of nixos/lib/systemd-lib.nix
(dependency lists become space-separated `Requires=`, `After=`, ...;
`restartTriggers` and `reloadTriggers` become `X-Restart-Triggers=` /
`X-Reload-Triggers=` naming a store file holding them; `description`
becomes `Description=`), its `serviceConfig` and `stage2ServiceConfig`
(`path` gets coreutils, findutils, gnugrep, gnused and systemd appended and
becomes `PATH=` of their bin and sbin directories), the unit options'
scripts (nixos/lib/systemd-unit-options.nix: `script`, `preStart`,
`postStart`, `reload`, `preStop`, `postStop` become `ExecStart`,
`ExecStartPre`, `ExecStartPost`, `ExecReload`, `ExecStop`, `ExecStopPost` of a
`writeShellScriptBin` holding `set -e` and the text), `serviceToUnit` and
`attrsToSection` (keys sorted; a list is one line per element; booleans
`true`/`false`; `Environment="NAME=value"` as JSON strings, sorted by
name; `X-ReloadIfChanged`, `X-RestartIfChanged`, `X-StopIfChanged`;
`[Install] WantedBy=`), and `generateUnits` (`wantedBy`, `requiredBy`,
`upheldBy` become `.wants`/`.requires`/`.upholds` symlinks `../<unit>`;
`aliases` become symlinks; a unit that upstream systemd already ships
becomes `<unit>.d/overrides.conf`). home-manager's INI-shaped user units
(modules/systemd.nix: `<Section>.<Key> = value or list`) are written
section by section, `Install.WantedBy` as `.wants` symlinks.

Store paths: files the units need that nothing built (job scripts, trigger
files) are returned in `store` (path -> text) for `GuestStore`.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STORE = "/nix/store"
STORE_PATH = re.compile(r"/nix/store/[0-9a-z]{32}-[^/\s\"';:]+")
DEP_KEYS = {
    "requires": "Requires",
    "wants": "Wants",
    "upholds": "Upholds",
    "after": "After",
    "before": "Before",
    "bindsTo": "BindsTo",
    "partOf": "PartOf",
    "conflicts": "Conflicts",
    "requisite": "Requisite",
}


@dataclass
class Rendered:
    """A unit directory: files (relative path -> text) and symlinks (-> target)."""

    files: dict[str, str] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)
    store: dict[str, str] = field(default_factory=dict)  # store path -> text (0755 if script)

    def write(self, directory: Path) -> None:
        """Replace directory's contents with these units."""
        if directory.exists():
            shutil.rmtree(directory)
        directory.mkdir(parents=True)
        for rel, text in self.files.items():
            (directory / rel).parent.mkdir(parents=True, exist_ok=True)
            (directory / rel).write_text(text)
        for rel, target in self.links.items():
            (directory / rel).parent.mkdir(parents=True, exist_ok=True)
            (directory / rel).symlink_to(target)


def store_path(name: str, text: str) -> str:
    """A store path for text nothing built (a stand-in hash of name and text)."""
    digest = hashlib.sha256(f"{name}\0{text}".encode()).hexdigest()
    alphabet = "0123456789abcdfghijklmnpqrsvwxyz"  # Nix's base32 letters
    return f"{STORE}/{''.join(alphabet[int(c, 16) * 2] for c in digest[:32])}-{name}"


def to_option(value: Any) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    return str(value)


def section(attrs: dict[str, Any]) -> str:
    """attrsToSection: sorted keys, one line per list element."""
    lines = []
    for key in sorted(attrs):
        value = attrs[key]
        for item in value if isinstance(value, list) else [value]:
            lines.append(f"{key}={to_option(item)}\n")
    return "".join(lines)


def _triggers(name: str, kind: str, values: list[Any]) -> tuple[str, str]:
    def flat(v: Any) -> list[Any]:
        return [x for item in v for x in flat(item)] if isinstance(v, list) else [v]

    text = " ".join(to_option(v) for v in flat(values))
    return store_path(f"{kind}-{name}", text), text


def _job_script(name: str, text: str, out: Rendered) -> str:
    script_name = name.replace("\\", "-").replace("@", "_")
    body = f"#!/bin/bash\nset -e\n\n{text}"
    package = store_path(f"unit-script-{script_name}", body)
    out.store[f"{package}/bin/{script_name}"] = body
    return f"{package}/bin/{script_name}"


def service_text(name: str, svc: dict[str, Any], default_path: list[str], out: Rendered) -> str:
    """One service's unit file (name without .service)."""
    unit: dict[str, Any] = {}
    for opt, key in DEP_KEYS.items():
        if svc.get(opt):
            unit[key] = " ".join(svc[opt])
    for opt, key in (
        ("restartTriggers", "X-Restart-Triggers"),
        ("reloadTriggers", "X-Reload-Triggers"),
    ):
        if svc.get(opt):
            path, text = _triggers(name, key, svc[opt])
            out.store[path] = text
            unit[key] = path
    if svc.get("description"):
        unit["Description"] = svc["description"]
    if svc.get("onFailure"):
        unit["OnFailure"] = " ".join(svc["onFailure"])
    unit.update(svc.get("unitConfig", {}))

    service = dict(svc.get("serviceConfig", {}))
    for opt, key, suffix in (
        ("preStart", "ExecStartPre", "pre-start"),
        ("script", "ExecStart", "start"),
        ("postStart", "ExecStartPost", "post-start"),
        ("reload", "ExecReload", "reload"),
        ("preStop", "ExecStop", "pre-stop"),
        ("postStop", "ExecStopPost", "post-stop"),
    ):
        if svc.get(opt):
            service[key] = _job_script(f"{name}-{suffix}", svc[opt], out)

    env = dict(svc.get("environment", {}))
    path = [*svc.get("path", []), *default_path]
    if path:
        env["PATH"] = ":".join([f"{p}/bin" for p in path] + [f"{p}/sbin" for p in path])
    text = "[Unit]\n" + section(unit) + "\n[Service]\n"
    for key in sorted(env):
        if env[key] is not None:
            text += "Environment=" + json.dumps(f"{key}={env[key]}") + "\n"
    if svc.get("reloadIfChanged"):
        text += "X-ReloadIfChanged=true\n"
    elif svc.get("restartIfChanged") is False:
        text += "X-RestartIfChanged=false\n"
    if svc.get("stopIfChanged") is False:
        text += "X-StopIfChanged=false\n"
    text += section(service)
    if svc.get("wantedBy"):
        text += "\n[Install]\nWantedBy=" + " ".join(svc["wantedBy"]) + "\n"
    return text


def target_text(target: dict[str, Any]) -> str:
    unit: dict[str, Any] = {k: " ".join(target[o]) for o, k in DEP_KEYS.items() if target.get(o)}
    if target.get("description"):
        unit["Description"] = target["description"]
    unit.update(target.get("unitConfig", {}))
    return "[Unit]\n" + section(unit)


def render_system(
    units: dict[str, Any], default_path: list[str], upstream: set[str] | None = None
) -> Rendered:
    """NixOS's /etc/systemd/system from evaluated `services` and `targets`.

    upstream: unit names systemd itself ships (they get a drop-in instead).
    """
    out = Rendered()
    upstream = upstream or set()
    typed = [(f"{n}.service", s, "service") for n, s in units.get("services", {}).items()]
    typed += [(f"{n}.target", t, "target") for n, t in units.get("targets", {}).items()]
    for full, unit, kind in typed:
        if not unit.get("enable", True):
            out.links[full] = "/dev/null"
            continue
        base = full.rsplit(".", 1)[0]
        text = (
            service_text(base, unit, default_path, out) if kind == "service" else target_text(unit)
        )
        out.files[f"{full}.d/overrides.conf" if full in upstream else full] = text
        for alias in unit.get("aliases", []):
            out.links[alias] = full
        for opt, suffix in (
            ("wantedBy", "wants"),
            ("requiredBy", "requires"),
            ("upheldBy", "upholds"),
        ):
            for other in unit.get(opt, []):
                out.links[f"{other}.{suffix}/{full}"] = f"../{full}"
    return out


def render_user(units: dict[str, dict[str, dict[str, Any]]]) -> Rendered:
    """home-manager's ~/.config/systemd/user from `systemd.user.services`."""
    out = Rendered()
    for name, sections in units.items():
        full = f"{name}.service"
        text = ""
        for sect in sorted(sections):  # lib.generators.toINI sorts sections
            text += ("\n" if text else "") + f"[{sect}]\n" + section(sections[sect])
        out.files[full] = text
        for target in sections.get("Install", {}).get("WantedBy", []):
            out.links[f"{target}.wants/{full}"] = f"../{full}"
    return out


def store_paths(text: str) -> set[str]:
    return set(STORE_PATH.findall(text))


# Fake packages of checks/eval/pkgs.nix whose programs Debian has in /usr.
USR_PACKAGES = re.compile(r"-(bash|coreutils|findutils|gnugrep|gnused|systemd|util-linux)-[0-9.]+$")


class GuestStore:
    """The guest's /nix/store: the files its units and manifests name.

    Each store path is, in this order: a file given by the test (a manifest,
    which the evaluation names but never builds), a file the renderer made
    (job scripts, trigger files), a path that exists in the host's store
    (the secrets' age files, copied there by a read-write evaluation), or a
    fake package whose programs are Debian's in /usr (a symlink to /usr).
    Anything else is an error: a unit would name a missing file.
    """

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)

    def add(self, texts: list[str], files: dict[str, str]) -> None:
        todo = [p for t in [*texts, *files.values()] for p in store_paths(t)] + list(files)
        seen: set[str] = set()
        while todo:
            path = todo.pop()
            top = "/".join(path.split("/")[:4])
            if path in seen:
                continue
            seen.add(path)
            dest = self.dir / path.removeprefix(STORE + "/")
            if path in files:
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_text(files[path])
                dest.chmod(0o755 if files[path].startswith("#!") else 0o444)
                todo += list(store_paths(files[path]))
            elif Path(top).exists():
                host = self.dir / top.removeprefix(STORE + "/")
                if not host.exists():
                    shutil.copytree(top, host, symlinks=True) if Path(
                        top
                    ).is_dir() else shutil.copy(top, host)
            elif USR_PACKAGES.search(top):
                host = self.dir / top.removeprefix(STORE + "/")
                if not host.is_symlink():
                    host.symlink_to("/usr")
            elif not any(f == top or f.startswith(top + "/") for f in files):
                raise AssertionError(f"the guest's units name {path}, which nothing provides")
