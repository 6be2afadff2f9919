"""A generation's record (<mountPoint>/<N>.json): what the next run trusts.

The record says, per entry, where its file is in the generation (rel),
where users find it (path), the SHA-256 of the age file it came from
(source), an HMAC-SHA256 of its value under the record's random key (mac)
and the value's size, and the entry's units (and, for a sealed credential, whose file holds no
plaintext, an HMAC of the file's bytes: `sealed`); then the units not yet
signalled and the links still to remove. The record is root's, 0600, and
the key never leaves it, so the owner of a secret, who may rewrite their
own copy of it, cannot make a copy that matches: a value is reused only
when it still has the recorded digest.

A record is parsed field by field into NamedTuples; anything this
version would not have written (another version, a damaged or edited
file, a rel that leaves the generation, a path the manifest's rules would
not put at that rel) makes the whole record None: untrusted, as after
another tool.
"""

from __future__ import annotations

import os

from nixseal.engine.manifest import RENDERED_DIR, is_name, is_normal_path, is_unit
from nixseal.util import fastjson
from nixseal.util.digest import hmac_sha256
from nixseal.util.lean import NamedTuple
from nixseal.util.names import is_launchd_label, only

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from typing import Any

VERSION = 2
KEY_BYTES = 32
_HEX = "0123456789abcdef"
_TOP = frozenset({"version", "key", "entries", "pending", "unlink"})
_ENTRY = frozenset({"rel", "path", "source", "mac", "size", "restartUnits", "reloadUnits"})
# Written only for sealed entries: records of earlier versions stay trusted.
_SEALED_ENTRY = _ENTRY | {"sealed"}
_NAME_MAX = 255


class Entry(NamedTuple):
    """One entry of a record. A NamedTuple, as immutable as a frozen dataclass
    and five times quicker to make: a record has one per secret, read at
    every boot."""

    rel: str
    path: str
    source: str | None  # SHA-256 of the age file ("" or None: not known)
    mac: bytes | None  # HMAC of the value in the generation; None: none there
    size: int | None
    restart_units: tuple[str, ...]
    reload_units: tuple[str, ...]
    # HMAC of the file's bytes when they are a sealed credential (mac is the
    # plaintext's, which the file does not hold); None: the file is the value.
    sealed: bytes | None = None


class Record(NamedTuple):
    key: bytes
    entries: Mapping[str, Entry]  # "secret:NAME" / "template:NAME" -> entry
    pending_restart: tuple[str, ...] = ()
    pending_reload: tuple[str, ...] = ()
    unlink: tuple[tuple[str, str], ...] = ()  # (path, rel) of links still to remove

    @classmethod
    def from_json(cls, data: bytes, symlink_path: str) -> Record | None:
        """The record in data, or None for a foreign or damaged one: when any
        part of it is not exactly as this version writes it."""
        try:
            return _record(fastjson.loads(data), symlink_path)
        except (_Foreign, ValueError, RecursionError):
            return None

    def to_json(self) -> bytes:
        entries = {key: _entry_json(e) for key, e in self.entries.items()}
        doc = {
            "version": VERSION,
            "key": self.key.hex(),
            "entries": entries,
            "pending": {"restart": list(self.pending_restart), "reload": list(self.pending_reload)},
            "unlink": [list(u) for u in self.unlink],
        }
        return fastjson.dumps(doc, separators=(",", ":")).encode()


def _entry_json(e: Entry) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "rel": e.rel,
        "path": e.path,
        "source": e.source,
        "mac": None if e.mac is None else e.mac.hex(),
        "size": e.size,
        "restartUnits": list(e.restart_units),
        "reloadUnits": list(e.reload_units),
    }
    if e.sealed is not None:
        doc["sealed"] = e.sealed.hex()
    return doc


def new_key() -> bytes:
    return os.urandom(KEY_BYTES)


def mac(key: bytes, value: bytes) -> bytes:
    return hmac_sha256(key, value)


class _Foreign(Exception):
    """Something this version would not have written."""


def _require(ok: bool) -> None:
    if not ok:
        raise _Foreign


def _record(doc: Any, symlink: str) -> Record:
    _require(isinstance(doc, dict) and set(doc) == _TOP)
    _require(type(doc["version"]) is int and doc["version"] == VERSION and _hex64(doc["key"]))
    raw = doc["entries"]
    _require(isinstance(raw, dict))
    entries = {key: _entry(key, value, symlink) for key, value in raw.items()}
    _require(len({e.rel for e in entries.values()}) == len(entries))  # one file, one entry
    pending = doc["pending"]
    _require(isinstance(pending, dict) and set(pending) == {"restart", "reload"})
    restart, reload = _units(pending["restart"]), _units(pending["reload"])
    unlink = _unlink(doc["unlink"], symlink)
    return Record(bytes.fromhex(doc["key"]), entries, restart, reload, unlink)


def _entry(key: Any, value: Any, symlink: str) -> Entry:
    _require(isinstance(key, str) and isinstance(value, dict))
    _require(set(value) == _ENTRY or set(value) == _SEALED_ENTRY)
    kind, _, name = key.partition(":")
    _require(kind in ("secret", "template") and bool(name) and is_name(name))
    rel, path = value["rel"], value["path"]
    _require(isinstance(path, str) and is_normal_path(path))
    default = name if kind == "secret" else f"{RENDERED_DIR}/{name}"
    # Where the manifest's rules put it: the valid name, or the part of the
    # normal path under symlinkPath; so rel never leaves the generation.
    _require(rel == _rel_for(path, default, symlink))
    source, digest, size = value["source"], value["mac"], value["size"]
    _require(source in (None, "") or _hex64(source))
    _require(digest is None or _hex64(digest))
    _require(size is None or (type(size) is int and size >= 0))
    mac_bytes = None if digest is None else bytes.fromhex(digest)
    restart, reload = _units(value["restartUnits"]), _units(value["reloadUnits"])
    sealed = value.get("sealed")
    _require("sealed" not in value or _hex64(sealed))
    sealed_bytes = None if sealed is None else bytes.fromhex(sealed)
    return Entry(rel, path, source, mac_bytes, size, restart, reload, sealed_bytes)


def _rel_for(path: str, default: str, symlink: str) -> str:
    prefix = symlink.rstrip("/") + "/"
    return path[len(prefix) :] if path.startswith(prefix) else default


def _is_rel(rel: Any) -> bool:
    """A relative path inside a generation: no empty, "." or ".." part."""
    if not isinstance(rel, str) or not rel or not rel.isprintable():
        return False
    parts = rel.split("/")
    return all(
        p not in ("", ".", "..") and len(p.encode("utf-8", "surrogatepass")) <= _NAME_MAX
        for p in parts
    )


def _hex64(value: Any) -> bool:
    return isinstance(value, str) and len(value) == 64 and only(value, _HEX)


def _units(value: Any) -> tuple[str, ...]:
    # systemd units, or launchd labels on macOS (the manifest checked which).
    _require(
        isinstance(value, list)
        and all(isinstance(u, str) and (is_unit(u) or is_launchd_label(u)) for u in value)
    )
    return tuple(value)


def _unlink(value: Any, symlink: str) -> tuple[tuple[str, str], ...]:
    _require(isinstance(value, list))
    found = []
    for item in value:
        _require(isinstance(item, list) and len(item) == 2)
        path, rel = item
        _require(isinstance(path, str) and is_normal_path(path) and _is_rel(rel))
        # only custom paths get links of their own
        _require(path != symlink and not path.startswith(symlink.rstrip("/") + "/"))
        found.append((path, rel))
    return tuple(found)


def size_bound(
    entries: Iterable[tuple[str, str, str, tuple[str, ...]]],
    units: Iterable[str],
    links: Iterable[tuple[str, str]],
) -> int:
    """An upper bound of a record's size, counted rather than serialized
    (that would cost as much as writing it): each (key, rel, path, units)
    entry, every unit pending, every (path, rel) link still to remove, each
    string at the most bytes JSON could spell it and every digest and size
    at its longest."""
    size = _HEADER_BYTES + 2 * sum(len(u) + 3 for u in units)
    for key, rel, path, entry_units in entries:
        size += _ENTRY_BYTES + json_len(key) + json_len(rel) + json_len(path)
        size += sum(len(u) + 3 for u in entry_units)
    return size + sum(json_len(path) + json_len(rel) + 4 for path, rel in links)


def json_len(text: str) -> int:
    """The most bytes JSON may spell text with: quoted; six per escaped character
    (twelve for a pair of surrogates, which is two characters of Python's)."""
    if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        return len(text) + 2
    return 6 * len(text) * 2 + 2


# The fixed part of a record, and of one entry at its longest (64-digit
# digests, a 20-digit size), beyond the strings counted one by one.
_HEADER_BYTES = len(Record(bytes(KEY_BYTES), {}).to_json())
_LONGEST = Entry("", "", "0" * 64, bytes(32), 10**19, (), (), bytes(32))
_ENTRY_BYTES = len(Record(bytes(KEY_BYTES), {"": _LONGEST}).to_json()) - _HEADER_BYTES + 1
