"""What the previous generation may give the new one, and only when verified.

A secret's file in a generation belongs to the secret's owner, who can
rewrite it. So a previous value is taken back (reused when its age file is
unchanged, kept when the new one fails, compared to find changes) only
when it still has the keyed digest its record holds (nixseal.engine.record); a
copy that does not is logged as altered and never used. Without a trusted
record (a generation of another tool, or of another nixseal version) the
previous files are used as they are, as before, but no value is ever
reused without decrypting it again.
"""

from __future__ import annotations

import os
import stat

from nixseal.engine import record
from nixseal.engine.generation import NewGeneration, OldGeneration
from nixseal.engine.manifest import Entry
from nixseal.util.digest import compare_digest
from nixseal.util.lean import NamedTuple
from nixseal.util.readfile import AGE_FILE_LIMIT

TYPE_CHECKING = False
if TYPE_CHECKING:
    from nixseal.models.install import EntryState
    from nixseal.util.log import Logger

# A generation of another tool has no sizes: the largest file compared or
# kept from it (a template may be larger than any age file).
FOREIGN_LIMIT = 4 * AGE_FILE_LIMIT


class Value(NamedTuple):
    """A previous value, verified, with its file's owner and mode."""

    data: bytes
    uid: int
    gid: int
    mode: int


class Kept(NamedTuple):
    """What the new record says of a value carried over."""

    source: str | None
    mac: bytes | None
    size: int | None
    rel: str
    sealed: bytes | None = None  # the file's own HMAC, when it is a sealed credential


class Previous:
    """The previous generation (if any) and its record (if trusted)."""

    def __init__(self, old: OldGeneration | None, rec: record.Record | None, log: Logger) -> None:
        self.old = old
        self.record = rec
        self.log = log
        self.entries = rec.entries if rec is not None else {}

    def close(self) -> None:
        if self.old is not None:
            self.old.close()

    def _rel(self, entry: Entry) -> str | None:
        if self.old is None:
            return None
        if self.record is None:
            return entry.rel  # another tool's generation: where the manifest puts it
        old = self.entries.get(entry.key)
        return old.rel if old is not None else None

    def verified(self, entry: Entry, altered: str) -> Value | None:
        """The previous value, if its file still has the recorded digest.

        None when there is none, or it is gone (removed by hand); an altered
        copy is also None, and logged as the event altered.
        """
        old = self.entries.get(entry.key)
        if self.old is None or self.record is None or old is None or old.mac is None:
            return None
        # A sealed credential's file is systemd-creds output, not the value:
        # its own digest says whether it is still what this run wrote.
        want = old.mac if old.sealed is None else old.sealed
        limit = old.size if old.size is not None and old.sealed is None else FOREIGN_LIMIT
        got = self.old.read(old.rel, limit)
        if got is None:
            return None
        data, st = got
        if data is None or not compare_digest(record.mac(self.record.key, data), want):
            fields = {"kind": entry.kind, "name": entry.name, "path": entry.path}
            self.log.warning(altered, **fields)
            return None
        return Value(data, st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode))

    def reusable(self, entry: Entry, digest: str) -> Value | None:
        """The previous value of a secret whose age file is unchanged."""
        old = self.entries.get(entry.key)
        if old is None or old.source != digest or old.sealed is not None:
            return None  # changed, or sealed: no plaintext there to reuse
        return self.verified(entry, "previous copy altered; decrypted again")

    def state(self, entry: Entry, mac: bytes, value: bytes) -> EntryState:
        """installed, changed or unchanged: the new value against the previous one."""
        rel = self._rel(entry)
        if rel is None or self.old is None:
            return "installed"
        if self.record is not None:
            old = self.entries[entry.key]
            if old.mac is None or not compare_digest(old.mac, mac):
                return "changed"
            # the same value: still there, or removed by hand (then installed again)
            opened = self.old.open(rel)
            if opened is None:
                return "installed"
            os.close(opened[0])
            return "unchanged"
        got = self.old.read(rel, FOREIGN_LIMIT)
        if got is None:
            return "installed"
        return "unchanged" if got[0] == value else "changed"

    def keep(self, entry: Entry, new: NewGeneration | None, key: bytes) -> Kept | None:
        """Carry a failed entry's previous file over (new None: a dry run)."""
        rel = self._rel(entry)
        if rel is None or self.old is None:
            return None
        if self.record is not None:
            old = self.entries[entry.key]
            if self.verified(entry, "previous copy altered; not kept") is None:
                return None
            kept = Kept(old.source or "", old.mac, old.size, rel, old.sealed)
        else:
            got = self.old.read(rel, FOREIGN_LIMIT)
            if got is None or got[0] is None:
                return None
            kept = Kept("", record.mac(key, got[0]), len(got[0]), rel)
        if new is not None and not new.link(self.old, rel, entry.rel):
            return None
        return kept

    def pending(self, handed: bool) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """Units the previous run did not hand over (it was killed first)."""
        if self.record is None or handed:
            return (), ()
        return self.record.pending_restart, self.record.pending_reload
