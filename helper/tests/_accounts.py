"""The accounts of a scratch root, from an evaluated NixOS configuration.

Used by the local twins (tests/_twin.py) and the documentation's scratch
hosts (doc_standins/_host.py), which run outside pytest: so no imports of
conftest or pytest here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

NOGROUP = 65534


@dataclass
class Accounts:
    """passwd and group of the rootfs, from the evaluated users and groups."""

    uids: dict[str, int] = field(default_factory=dict)
    gids: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_config(
        cls, users: dict[str, Any], groups: dict[str, Any], previous: Accounts | None = None
    ) -> Accounts:
        """Ids as NixOS allocates them: system accounts from 999 down, normal
        users from 1000 up; an account in previous keeps its id, as NixOS
        keeps them across switches."""
        old = previous or cls()
        acc = cls()
        free_system = iter(range(999, 400, -1))
        free_normal = iter(range(1000, 30000))
        taken = {g["gid"] for g in groups.values() if g["gid"] is not None}
        taken |= set(old.gids.values())
        for g in sorted(groups.values(), key=lambda g: g["name"]):
            gid = g["gid"] if g["gid"] is not None else old.gids.get(g["name"])
            if gid is None:
                gid = next(x for x in free_system if x not in taken)
            acc.gids[g["name"]] = gid
        taken = {u["uid"] for u in users.values() if u["uid"] is not None}
        taken |= set(old.uids.values())
        for u in sorted(users.values(), key=lambda u: u["name"]):
            uid = u["uid"] if u["uid"] is not None else old.uids.get(u["name"])
            if uid is None:
                pool = free_normal if u["isNormalUser"] else free_system
                uid = next(x for x in pool if x not in taken)
            acc.uids[u["name"]] = uid
        return acc

    def write(self, root: Path, users: dict[str, Any], groups: dict[str, Any]) -> None:
        (root / "etc").mkdir(parents=True, exist_ok=True)
        lines = []
        for u in sorted(users.values(), key=lambda u: self.uids[u["name"]]):
            gid = self.gids.get(u["group"], NOGROUP)
            lines.append(f"{u['name']}:x:{self.uids[u['name']]}:{gid}::{u['home']}:/bin/sh\n")
        (root / "etc/passwd").write_text("".join(lines))
        members: dict[str, list[str]] = {g["name"]: list(g["members"]) for g in groups.values()}
        for u in users.values():
            for g in u["extraGroups"]:
                members.setdefault(g, []).append(u["name"])
        lines = [
            f"{name}:x:{gid}:{','.join(sorted(members.get(name, [])))}\n"
            for name, gid in sorted(self.gids.items(), key=lambda kv: kv[1])
        ]
        (root / "etc/group").write_text("".join(lines))

    def user(self, uid: int) -> str:
        return next(name for name, u in self.uids.items() if u == uid)

    def group(self, gid: int) -> str:
        return next(name for name, g in self.gids.items() if g == gid)
