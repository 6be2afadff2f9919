"""An example host's evaluated system laid into a Debian guest (tests/_nspawn.py).

NixOS would write the accounts, the units and the store; here the test does,
from the evaluation (checks/scenarios/evaluate.nix): accounts appended to
Debian's own, the rendered units in /usr/local/lib/systemd/system (a
directory only this harness writes, so a switch replaces it whole), the
files they name in the guest's /nix/store, and the host's committed test key.
NixOS runs the activation script before systemd starts; here a unit
without default dependencies, before everything else, stands in for that at
boot. A switch then does what switch-to-configuration does: the activation
script, daemon-reload, then a restart of sysinit-reactivation.target with
every changed unit.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from _nspawn import Guest
from _units import GuestStore, Rendered, render_system, store_path

UNIT_DIR = "usr/local/lib/systemd/system"
ACTIVATION_UNIT = "nixos-activation-standin.service"

# A stand-in for userborn (not in Debian): sets the password of each user
# from its hashedPasswordFile, as userborn does on every run.
USERBORN = r"""#!/usr/bin/python3
import json, sys
config = json.load(open(sys.argv[1]))
hashes = {}
for u in config["users"]:
    if u.get("hashedPasswordFile"):
        hashes[u["name"]] = open(u["hashedPasswordFile"]).read().strip()
lines = []
for line in open("/etc/shadow").read().splitlines():
    name, _, rest = line.partition(":")
    if name in hashes:
        rest = hashes.pop(name) + ":" + rest.split(":", 1)[1]
    lines.append(name + ":" + rest)
open("/etc/shadow", "w").write("".join(l + "\n" for l in lines))
"""


class Ids:
    """The guest's accounts: Debian's, then the evaluated ones it lacks."""

    def __init__(self, root: Path, users: dict[str, Any], groups: dict[str, Any]) -> None:
        self.uids = _ids(root / "etc/passwd")
        self.gids = _ids(root / "etc/group")
        new_groups = [
            g
            for g in sorted(groups.values(), key=lambda g: g["name"])
            if g["name"] not in self.gids
        ]
        for g in new_groups:
            self.gids[g["name"]] = _free(g["gid"], self.gids, 990)
        new_users = [
            u for u in sorted(users.values(), key=lambda u: u["name"]) if u["name"] not in self.uids
        ]
        for u in new_users:
            start = 1000 if u["isNormalUser"] else 990
            self.uids[u["name"]] = _free(u["uid"], self.uids, start, up=u["isNormalUser"])
        with (root / "etc/group").open("a") as f:
            for g in new_groups:
                members = [
                    *g["members"],
                    *(n for n, u in users.items() if g["name"] in u["extraGroups"]),
                ]
                f.write(f"{g['name']}:x:{self.gids[g['name']]}:{','.join(members)}\n")
        with (root / "etc/passwd").open("a") as f, (root / "etc/shadow").open("a") as sh:
            for u in new_users:
                gid = self.gids.get(u["group"], 65534)
                f.write(f"{u['name']}:x:{self.uids[u['name']]}:{gid}::{u['home']}:/bin/sh\n")
                sh.write(f"{u['name']}:!:19000::::::\n")

    def user(self, uid: int) -> str:
        return next(n for n, i in self.uids.items() if i == uid)

    def group(self, gid: int) -> str:
        return next(n for n, i in self.gids.items() if i == gid)


def _ids(path: Path) -> dict[str, int]:
    return {
        f[0]: int(f[2])
        for f in (line.split(":") for line in path.read_text().splitlines())
        if len(f) > 2
    }


def _free(wanted: int | None, taken: dict[str, int], start: int, up: bool = False) -> int:
    used = set(taken.values())
    if wanted is not None and wanted not in used:
        return wanted
    step = 1 if up else -1
    candidate = start
    while candidate in used:
        candidate += step
    return candidate


def upstream_units(root: Path) -> set[str]:
    return {p.name for p in (root / "usr/lib/systemd/system").iterdir()}


class GuestHost:
    """A NixOS system of a scenario, in a guest to boot and switch."""

    def __init__(self, system: dict[str, Any], key: Path, store_dir: Path) -> None:
        self.system = system
        self.key = key
        self.store = GuestStore(store_dir)
        self.rendered = Rendered()
        self.ids: Ids | None = None
        self.activate = ""
        self.activation_log = ""

    def guest(self) -> Guest:
        return Guest(setup=self._setup, binds={str(self.store.dir): "/nix/store"})

    def _render(self, root: Path, system: dict[str, Any]) -> Rendered:
        units = system["units"]
        rendered = render_system(units, units["defaultPath"], upstream_units(root))
        files = {**units["storeTexts"], **rendered.store}
        files[f"{units['userbornPackage']}/bin/userborn"] = USERBORN
        script = store_path("activate", "#!/bin/bash\nset -e\n" + units["activationScript"])
        files[script] = "#!/bin/bash\nset -e\n" + units["activationScript"]
        self.activate = script
        rendered.files[ACTIVATION_UNIT] = (
            "[Unit]\nDefaultDependencies=false\nBefore=sysinit.target local-fs-pre.target\n"
            "[Service]\nType=oneshot\nRemainAfterExit=true\nEnvironment=NIXOS_ACTION=boot\n"
            f"ExecStart={script}\n"
        )
        rendered.links[f"sysinit.target.wants/{ACTIVATION_UNIT}"] = f"../{ACTIVATION_UNIT}"
        self.store.add([*rendered.files.values()], files)
        return rendered

    def _setup(self, root: Path) -> None:
        self.ids = Ids(root, self.system["users"], self.system["groups"])
        key = root / "etc/ssh/ssh_host_ed25519_key"
        key.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.key, key)  # TEST-ONLY KEY, committed on purpose
        key.chmod(0o600)
        self.rendered = self._render(root, self.system)
        self.rendered.write(root / UNIT_DIR)

    def switch(self, guest: Guest, system: dict[str, Any]) -> int:
        """Activate system as switch-to-configuration would; the restart's exit status."""
        new = self._render(guest.root, system)
        changed = sorted(
            name
            for name, text in new.files.items()
            if name.endswith(".service")
            and name != ACTIVATION_UNIT
            and self.rendered.files.get(name) not in (None, text)
        )
        activation = guest.run([self.activate], env={"NIXOS_ACTION": "switch"})
        new.write(guest.root / UNIT_DIR)
        self.rendered, self.system = new, system
        guest.systemctl("daemon-reload")
        restart = guest.run(["systemctl", "restart", "sysinit-reactivation.target", *changed])
        guest.wait_until("no jobs", lambda: guest.systemctl("list-jobs").startswith("No jobs"))
        self.activation_log = activation.stdout + activation.stderr
        return restart.returncode or activation.returncode


SNAPSHOT = r"""
import json, os, sys
out = {}
for p in sys.argv[1:]:
    try:
        st = os.stat(p)
        body = open(p, "rb").read().decode("utf-8", "replace")
    except OSError:
        out[p] = None
        continue
    link = os.readlink(p) if os.path.islink(p) else None
    out[p] = {"mode": st.st_mode & 0o7777, "uid": st.st_uid, "gid": st.st_gid, "content": body, "link": link}
print(json.dumps(out))
"""


def snapshot(guest: Guest, paths: list[str], user: str | None = None) -> dict[str, Any]:
    proc = guest.run(["python3", "-c", SNAPSHOT, *paths], user=user, check=True)
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def mono(guest: Guest, unit: str, prop: str) -> int:
    return int(guest.show(unit, prop)[prop] or 0)
