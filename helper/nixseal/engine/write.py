"""The write step of a run: every entry produced into the new generation.

Each entry ends installed, changed, unchanged or failed on its own: a
failure (unreadable, corrupt, wrong key, unknown owner, no space left...)
keeps the entry's previous value when the previous generation had one and
costs no other entry. An unchanged age file is not decrypted again: its
verified previous value is reused, hard-linked when owner and mode are the
same. A secret sealed as a systemd credential (nixseal.engine.seal) is
decrypted and sealed again at each run, as its file holds no plaintext to
reuse; whether it changed is still decided on the plaintext's digest, so
an unchanged value restarts nothing. A secret taking one key of a
document (nixseal.util.document) is the value of that key: the document
is parsed once per run, a key it lacks fails the secrets taking it alone,
and whether a secret changed is decided on its own value, so a change to
another key of the document restarts nothing of it. Nothing here ever
logs a value.
"""

from __future__ import annotations

import errno

from nixseal.engine import record as rec
from nixseal.engine.decryption import Identities, decryptions, read_inputs, to_decrypt
from nixseal.engine.manifest import Entry, Manifest, Secret, Template
from nixseal.engine.plan import Plan
from nixseal.engine.previous import Kept, Value
from nixseal.engine.restart import Units, collect
from nixseal.errors import NixsealError
from nixseal.util.lean import NamedTuple

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from nixseal.engine.decryption import Inputs, Plaintexts
    from nixseal.models.install import EntryState
    from nixseal.util.log import Logger


class Installed(NamedTuple):
    """How one entry was produced into the new generation."""

    state: EntryState
    kept: Kept | None  # what the record says of the value now there
    reason: str = ""  # why it failed


class Outcome:
    """What one run did (or, with dry_run, would do)."""

    def __init__(self, generation: int, previous: int | None) -> None:
        self.generation = generation
        self.previous = previous
        self.states: dict[EntryState, list[str]] = {}  # state -> entry keys
        self.units = Units()

    def add(self, state: EntryState, key: str) -> None:
        # A later step (its custom link) can fail an entry counted done.
        if state == "failed":
            for keys in self.states.values():
                if key in keys:
                    keys.remove(key)
        self.states.setdefault(state, []).append(key)

    @property
    def failed(self) -> list[str]:
        return self.states.get("failed", [])


def os_reason(err: OSError) -> str:
    """An OSError as the reason an entry failed: the file it names, then why."""
    where = f"{err.filename}: " if err.filename else ""
    return f"{where}{err.strerror or err}"


if TYPE_CHECKING:
    # (uid, gid) to give an entry's file; raises for an unknown owner.
    Owners = Callable[[Entry], tuple[int | None, int | None]]


class Writer:
    def __init__(self, m: Manifest, plan: Plan, ids: Owners, log: Logger) -> None:
        self.m = m
        self.plan = plan
        self.previous = plan.previous
        self.ids = ids
        self.log = log
        self.values: dict[str, bytes] = {}  # secret name -> value, for templates
        self.template_inputs: set[str] = set()
        # (age file, format) -> its parsed document, or why it gives none
        self.documents: dict[tuple[str, str], Any] = {}
        if m.templates:  # most hosts have none: the renderer is imported for those that do
            from nixseal.engine.render import referenced

            needed = (referenced(t.content, m.placeholders) for t in m.templates)
            self.template_inputs = {name for names in needed for name in names}

    def build(self, out: Outcome, identities: Identities) -> dict[str, rec.Entry]:
        """Produce every entry; returns the new record's entries and sets out's units."""
        entries: dict[str, rec.Entry] = {}
        restart: list[str] = []
        reload: list[str] = []
        inputs = read_inputs(self.m.secrets, self.previous, self.ids)
        todo = to_decrypt(self.m.secrets, inputs)
        with decryptions(todo, inputs, identities, self.log) as plaintexts:
            for entry in self.m.entries:
                state, kept, reason = self._install(entry, inputs, plaintexts)
                out.add(state, entry.key)
                self._log(entry, state, kept, reason)
                if state in ("installed", "changed"):
                    restart += entry.restart_units
                    reload += entry.reload_units
                if kept is not None:
                    entries[entry.key] = rec.Entry(
                        entry.rel,
                        entry.path,
                        kept.source,
                        kept.mac,
                        kept.size,
                        entry.restart_units,
                        entry.reload_units,
                        kept.sealed,
                    )
        new_keys = {e.key for e in self.m.entries}
        for key, old in self.previous.entries.items():
            if key not in new_keys:
                out.add("removed", key)
                kind, name = key.split(":", 1)
                self.log.info("removed", kind=kind, name=name, path=old.path)
                restart += old.restart_units
                reload += old.reload_units
        if out.previous is not None:  # first boot: nothing running could hold a value
            pending = self.previous.pending(self.plan.handed)
            out.units = collect([*restart, *pending[0]], [*reload, *pending[1]])
        return entries

    def _log(self, entry: Entry, state: EntryState, kept: Kept | None, reason: str) -> None:
        fields = {"kind": entry.kind, "name": entry.name, "path": entry.path}
        if state == "failed":
            self.log.error("failed", **fields, reason=reason, kept_previous=kept is not None)
        elif state == "unchanged":
            self.log.debug(state, **fields)
        else:
            self.log.info(state, **fields)

    def _install(self, entry: Entry, inputs: Inputs, plaintexts: Plaintexts) -> Installed:
        try:
            uid, gid = self.ids(entry)
            source = None
            if isinstance(entry, Secret):
                got = inputs[entry.key]
                if isinstance(got, NixsealError):
                    raise got
                source = got.digest
                if got.previous is not None:
                    value = got.previous.data
                    if entry.name in self.template_inputs:
                        self.values[entry.name] = value
                    # A sealed one needs a file of its own: the previous is plaintext.
                    shared = None if entry.seal else self._share(entry, got.previous, uid, gid)
                    if shared is not None:
                        return Installed("unchanged", shared._replace(source=source))
                else:
                    secret, result = next(plaintexts)
                    assert secret is entry  # both follow the manifest's order
                    if isinstance(result, NixsealError):
                        raise result
                    value = self._take(entry, result) if entry.key_path else result
                if entry.name in self.template_inputs:
                    self.values[entry.name] = value
            else:
                assert isinstance(entry, Template)
                value = self._render(entry)
            digest = rec.mac(self.plan.key, value)
            state = self.previous.state(entry, digest, value)
            sealed = None
            if self.plan.new is not None:
                data = value
                if isinstance(entry, Secret) and entry.seal is not None:
                    data = self._seal(entry.seal, value)
                    sealed = rec.mac(self.plan.key, data)
                self._write(entry, data, uid, gid)
            return Installed(state, Kept(source, digest, len(value), entry.rel, sealed))
        except (NixsealError, OSError) as err:
            reason = str(err) if isinstance(err, NixsealError) else os_reason(err)
            kept = self.previous.keep(entry, self.plan.new, self.plan.key)
            return Installed("failed", kept, reason)

    def _take(self, entry: Secret, plaintext: bytes) -> bytes:
        """The value of entry's key in its document (parsed once per run)."""
        from nixseal.util import document

        where = (entry.file, entry.format)
        doc = self.documents.get(where, _UNPARSED)
        if doc is _UNPARSED:
            try:
                doc = document.parse(entry.format, plaintext)
            except document.DocumentError as err:
                doc = err
            self.documents[where] = doc
        try:
            if isinstance(doc, document.DocumentError):
                raise doc
            return document.take(doc, entry.key_path)
        except document.DocumentError as err:
            key = document.key_text(entry.key_path)
            raise NixsealError(f'{entry.file}: key "{key}": {err}') from None

    def _seal(self, name: str, value: bytes) -> bytes:
        from nixseal.engine.seal import seal

        assert self.m.systemd_creds is not None  # the manifest's parser makes sure
        return seal(self.m.systemd_creds, name, value)

    def _write(self, entry: Entry, value: bytes, uid: int | None, gid: int | None) -> None:
        assert self.plan.new is not None
        try:
            self.plan.new.write(entry.rel, value, uid, gid, entry.mode)
        except OSError as err:
            if err.errno in (errno.ENOSPC, errno.EDQUOT):
                raise NixsealError(
                    f"{entry.path}: no space left on {self.m.mount_point} for its "
                    f"{len(value)} bytes"
                ) from err
            raise

    def _share(self, entry: Entry, value: Value, uid: int | None, gid: int | None) -> Kept | None:
        """Hard-link an unchanged, verified secret from the previous generation,
        when owner and mode are the same; None when it needs a file of its own."""
        if stat_mode_differs(value, uid, gid, entry.mode):
            return None
        old = self.previous.entries[entry.key]
        kept = Kept(None, old.mac, old.size, entry.rel)
        if self.plan.new is None or self.previous.old is None:
            return kept  # a dry run
        return kept if self.plan.new.link(self.previous.old, old.rel, entry.rel) else None

    def _render(self, entry: Template) -> bytes:
        from nixseal.engine.render import referenced, render

        names = referenced(entry.content, self.m.placeholders)
        missing = [n for n in names if n not in self.values]
        if missing:
            raise NixsealError(f"secret {missing[0]!r} it uses is not available")
        return render(entry.content, self.values, self.m.placeholders, entry.name)


_UNPARSED = object()


def stat_mode_differs(value: Value, uid: int | None, gid: int | None, mode: int) -> bool:
    if value.mode != mode:
        return True
    return uid is not None and (value.uid, value.gid) != (uid, gid)
