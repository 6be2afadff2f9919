"""Owners and groups by name or id, from the host's or a --root's account files.

With ``--root DIR`` the names mean what DIR/etc/passwd and DIR/etc/group
say (the system being activated), not what the running host says; when
those files are missing the host's databases are used.
"""

from __future__ import annotations

from nixseal.errors import NixsealError, OwnershipError
from nixseal.util.readfile import TEXT_LIMIT, read_regular

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

ROOT_UID = 0
ROOT_GID = 0
# The group that may list generation directories, as on NixOS (gid 96).
KEYS_GROUP = "keys"


def _read_db(path: str) -> dict[str, tuple[int, int]] | None:
    """name -> (id, primary gid) from a passwd- or group-format file."""
    try:
        lines = read_regular(path, TEXT_LIMIT).decode(errors="replace").splitlines()
    except FileNotFoundError:
        return None
    except OSError as err:
        raise NixsealError(f"{path}: cannot read: {err.strerror}") from err
    db: dict[str, tuple[int, int]] = {}
    for line in lines:
        fields = line.split(":")
        if len(fields) < 3 or not fields[0] or line.startswith("#"):
            continue
        try:
            ident = int(fields[2])
            primary = int(fields[3]) if len(fields) > 3 and fields[3].isdigit() else ident
        except ValueError:
            continue
        db.setdefault(fields[0], (ident, primary))
    return db


class Accounts:
    """Resolves owner/group strings to ids; cached, since 1,000 secrets share a few."""

    def __init__(self, root: str | None = None) -> None:
        self._users: Callable[[str], tuple[int, int] | None]
        self._groups: Callable[[str], int | None]
        passwd = _read_db(f"{root}/etc/passwd") if root else None
        group = _read_db(f"{root}/etc/group") if root else None
        if passwd is not None:
            by_uid = {str(uid): (uid, gid) for uid, gid in reversed(list(passwd.values()))}
            self._users = lambda name: by_uid.get(name) if name.isdigit() else passwd.get(name)
        else:
            self._users = _host_user
        if group is not None:
            groups = group
            self._groups = lambda name: groups[name][0] if name in groups else None
        else:
            self._groups = _host_group
        self._cache: dict[tuple[str | None, str | None], tuple[int, int]] = {}

    def resolve(self, owner: str | None, group: str | None) -> tuple[int, int]:
        """(uid, gid); group None means the owner's primary group."""
        key = (owner, group)
        if key not in self._cache:
            self._cache[key] = self._resolve(owner, group)
        return self._cache[key]

    def _resolve(self, owner: str | None, group: str | None) -> tuple[int, int]:
        if owner is None:
            uid, primary = ROOT_UID, ROOT_GID
        elif owner.isdigit():
            uid = int(owner)
            entry = self._users(owner)
            primary = entry[1] if entry else ROOT_GID
        else:
            entry = self._users(owner)
            if entry is None:
                raise OwnershipError(f"unknown owner {owner!r}")
            uid, primary = entry
        if group is None:
            return uid, primary
        if group.isdigit():
            return uid, int(group)
        gid = self._groups(group)
        if gid is None:
            raise OwnershipError(f"unknown group {group!r}")
        return uid, gid

    def keys_gid(self) -> int:
        """gid of the keys group, or root's when the system has none."""
        gid = self._groups(KEYS_GROUP)
        return ROOT_GID if gid is None else gid


def _host_user(name: str) -> tuple[int, int] | None:
    import pwd

    try:
        entry = pwd.getpwuid(int(name)) if name.isdigit() else pwd.getpwnam(name)
    except (KeyError, OverflowError):
        return None
    return entry.pw_uid, entry.pw_gid


def _host_group(name: str) -> int | None:
    import grp

    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        return None
