"""The activation engine behind `nixseal install`.

One run builds generation N+1 from the manifest, switches symlinkPath to
it, prunes old generations and works out which units saw a change.
Every entry (secret or template) ends in one of these states:

- installed: new since the previous generation (or first boot)
- changed / unchanged: compared by content with the previous generation
- failed: could not be produced (unreadable, corrupt, wrong key, unknown
  owner, no space left...); it keeps its previous value when the previous
  generation had one, and the run exits 1
- removed: in the previous generation, gone from the manifest

An age file whose bytes have not changed since the previous generation is
not decrypted again: its previous plaintext is reused (hard-linked when
owner and mode are unchanged), once verified against the record's keyed
digest (nixseal.engine.previous). Nothing here ever logs a value.
"""

from __future__ import annotations

import errno
import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NamedTuple

from nixseal.engine import generation as gen
from nixseal.engine import record as rec
from nixseal.engine.links import Links
from nixseal.engine.manifest import Entry, Manifest, Secret, Template
from nixseal.engine.ownership import Accounts
from nixseal.engine.previous import Kept, Previous, Value
from nixseal.engine.render import referenced, render
from nixseal.engine.restart import Units, collect
from nixseal.errors import GenerationError, NixsealError
from nixseal.models import EntryState
from nixseal.util import safepath
from nixseal.util.readfile import AGE_FILE_LIMIT, read_regular

if TYPE_CHECKING:
    from nixseal.util.log import Logger

# A forked worker must decrypt at least this many files to repay its fork
# (about 1-2 ms here, against ~0.25 ms per ssh-ed25519 file): see
# docs/performance.md.
FILES_PER_WORKER = 32


class _Input(NamedTuple):
    """A secret's age file as read in the first pass."""

    data: bytes
    digest: str  # SHA-256 of the age file, kept in the record
    previous: Value | None  # unchanged since the previous generation: its verified value


# What the first pass knows of each secret: its input, or why it failed.
Inputs = dict[str, "_Input | NixsealError"]
Plaintexts = Iterator[tuple[Secret, "bytes | NixsealError"]]


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
        if (
            state is EntryState.FAILED
        ):  # a later step (its custom link) failed an entry counted done
            for keys in self.states.values():
                if key in keys:
                    keys.remove(key)
        self.states.setdefault(state, []).append(key)

    @property
    def failed(self) -> list[str]:
        return self.states.get(EntryState.FAILED, [])


class Activation:
    def __init__(
        self, manifest: Manifest, root: str | None, dry_run: bool, mount: bool, log: Logger
    ) -> None:
        self.m = manifest
        self.root = root
        self.dry_run = dry_run
        self.mount = mount and not manifest.user_mode and os.geteuid() == 0
        self.log = log
        self.chown = not manifest.user_mode and os.geteuid() == 0
        self.accounts = None if manifest.user_mode else Accounts(root)
        self.keys_gid: int | None = None
        self._identities: list[Any] | None = None
        self._identity_error = ""
        self.values: dict[str, bytes] = {}  # secret name -> value, for templates
        needed = (referenced(t.content, manifest.placeholders) for t in manifest.templates)
        self.template_inputs = {name for names in needed for name in names}
        # Per run: where it works, and what the previous generation gives.
        self.top = safepath.open_root(root)
        self.store: gen.Store | None = None
        self.new: gen.NewGeneration | None = None
        self.previous = Previous(None, None, log)
        self.key = rec.new_key()
        self._reserved = -1
        self._handed = False

    def close(self) -> None:
        if self.store is not None:
            self.store.close()
        self.top.close()

    def rooted(self, path: str) -> str:
        return self.root + path if self.root else path

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the install lock: around run() and the hand-over of its units.

        The hand-over marks the new generation's units handed over, which a
        run that started meanwhile would be reading or pruning. A dry run
        changes nothing and takes no lock.
        """
        if self.dry_run:
            yield
            return
        fd = gen.lock(self.top, self.m.mount_point, self.rooted(self.m.mount_point))
        try:
            yield
        finally:
            os.close(fd)

    def run(self) -> Outcome:
        """Build, switch and prune (call it inside locked())."""
        if self.dry_run:
            # Before _prepare: its warnings must say they come from a dry run.
            self.log = self.log.bind(dry_run=True)
            self.previous.log = self.log
        try:
            out = self._prepare()
            log = self.log.bind(generation=out.generation)  # dry_run is bound above
            self.previous.log = log
            entries = self._build(out, log)
            if not self.dry_run:
                self._commit(out, entries, log)
            return out
        finally:
            self.previous.close()
            if self.new is not None:
                self.new.close()

    def _prepare(self) -> Outcome:
        """Mount, find the previous generation, clear what killed runs left."""
        if self.chown and self.accounts is not None:
            self.keys_gid = self.accounts.keys_gid()
        elif not self.m.user_mode:
            self.log.warning("not running as root: owners and groups are not applied")
        shown = self.rooted(self.m.mount_point)
        if self.dry_run:
            self.store = gen.Store.existing(self.top, self.m.mount_point, shown)
        else:
            self.store = gen.Store.open(self.top, self.m.mount_point, shown, self.keys_gid)
            if self.mount:
                self.store.mount(self.m.use_tmpfs, self.keys_gid or 0)
            self.store.ensure_mode(self.keys_gid)
        store = self.store
        previous = None if store is None else gen.current(self.top, self.m.symlink_path, store)
        handed = False
        if store is not None and previous is not None:
            data = store.read_record(previous)
            record = None if data is None else rec.Record.from_json(data, self.m.symlink_path)
            self.previous = Previous(store.old(previous), record, self.log)
            handed = store.handed(previous)
            if record is not None:
                self.key = record.key
        self._handed = handed
        numbers = [] if store is None else store.numbers()
        if store is not None and not self.dry_run:
            store.remove_temporary()
            for number in numbers:
                if previous is None or number > previous:
                    store.remove(number)  # left half-built by a killed run
            numbers = store.numbers()
        number = max([previous or 0, *numbers]) + 1
        if store is not None and not self.dry_run:
            self.new = store.new(number, self.keys_gid)
            try:
                self._reserved = store.reserve_record(number, self._record_bound())
            except GenerationError:
                self.new.close()
                self.new = None
                store.remove(number)  # nothing half-built is left
                raise
        return Outcome(number, previous)

    def _record_bound(self) -> int:
        """An upper bound of the size of the record this run writes: reserved first.

        Counted, not serialized (that would cost as much as the record): each
        string as JSON could at most spell it, every digest, size and unit at
        its longest, every unit also pending, every old link still to remove.
        """
        old = self.previous.entries.values()
        units = [u for e in self.m.entries for u in (*e.restart_units, *e.reload_units)]
        units += [u for e in old for u in (*e.restart_units, *e.reload_units)]
        pending = self.previous.pending(False)
        units += [*pending[0], *pending[1]]
        size = _HEADER + 2 * sum(len(u) + 3 for u in units)
        for e in self.m.entries:
            size += _ENTRY + _json_len(e.key) + _json_len(e.rel) + _json_len(e.path)
            size += sum(len(u) + 3 for u in (*e.restart_units, *e.reload_units))
        links = [(e.path, e.rel) for e in old]
        if self.previous.record is not None:
            links += self.previous.record.unlink
        size += sum(_json_len(path) + _json_len(rel) + 4 for path, rel in links)
        return size

    def _build(self, out: Outcome, log: Logger) -> dict[str, rec.Entry]:
        """Produce every entry in the new generation; returns its record entries."""
        entries: dict[str, rec.Entry] = {}
        restart: list[str] = []
        reload: list[str] = []
        # Every age file is read first, so the ones to decrypt are known and
        # workers can decrypt them while this process writes files in order.
        inputs: Inputs = {s.key: self._read_input(s) for s in self.m.secrets}
        todo = [s for s in self.m.secrets if _needs_decrypting(inputs[s.key])]
        with self._decryptions(todo, inputs, log) as plaintexts:
            for entry in self.m.entries:
                state, kept, reason = self._install(entry, inputs, plaintexts)
                out.add(state, entry.key)
                fields = {"kind": entry.kind, "name": entry.name, "path": entry.path}
                if state is EntryState.FAILED:
                    log.error("failed", **fields, reason=reason, kept_previous=kept is not None)
                elif state is EntryState.UNCHANGED:
                    log.debug(state.value, **fields)
                else:
                    log.info(state.value, **fields)
                if state in (EntryState.INSTALLED, EntryState.CHANGED):
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
                    )
        new_keys = {e.key for e in self.m.entries}
        for key, old in self.previous.entries.items():
            if key not in new_keys:
                out.add(EntryState.REMOVED, key)
                kind, name = key.split(":", 1)
                log.info("removed", kind=kind, name=name, path=old.path)
                restart += old.restart_units
                reload += old.reload_units
        if out.previous is not None:  # first boot: nothing running could hold a value
            pending = self.previous.pending(self._handed)
            out.units = collect([*restart, *pending[0]], [*reload, *pending[1]])
        return entries

    def _commit(self, out: Outcome, entries: dict[str, rec.Entry], log: Logger) -> None:
        """Record, switch, link custom paths, prune: the new generation goes live."""
        assert self.store is not None
        links = Links(self.top, self.store, self.m.symlink_path, self.root or "")
        unlink = self._stale_links(entries, links)
        record = rec.Record(self.key, entries, out.units.restart, out.units.reload, unlink)
        self.store.write_record(out.generation, self._reserved, record.to_json())
        gen.switch(
            self.top,
            self.m.symlink_path,
            self.rooted(self.m.symlink_path),
            self.store,
            out.generation,
        )
        self._links(entries, unlink, links, out, log)
        older = [n for n in self.store.numbers() if n < out.generation]
        keep = set(sorted(older, reverse=True)[: self.m.keep_generations])
        for n in older:
            if n not in keep:
                try:
                    self.store.remove(n)
                except (OSError, NixsealError) as err:
                    reason = str(err) if isinstance(err, NixsealError) else err.strerror
                    log.warning("old generation not removed", number=n, reason=reason)

    def clear_pending(self, number: int) -> None:
        """Generation number's units were handed over: a later run need not signal them again."""
        if self.store is None:
            return
        try:
            self.store.mark_handed(number)
        except OSError as err:
            self.log.warning(
                "units not marked handed over; the next run signals them again",
                generation=number,
                reason=err.strerror,
            )

    def live_pending(self) -> tuple[int, Units] | None:
        """The live generation and the units its run left pending (call it inside locked()).

        None when nothing is pending: no live generation of ours, a record
        that cannot be trusted, or units already handed over.
        """
        shown = self.rooted(self.m.mount_point)
        self.store = gen.Store.existing(self.top, self.m.mount_point, shown)
        if self.store is None:
            return None
        number = gen.current(self.top, self.m.symlink_path, self.store)
        if number is None or self.store.handed(number):
            return None
        data = self.store.read_record(number)
        record = None if data is None else rec.Record.from_json(data, self.m.symlink_path)
        if record is None:
            return None
        units = Units(record.pending_restart, record.pending_reload)
        return (number, units) if units else None

    # -- one entry ----------------------------------------------------------

    def _read_input(self, entry: Secret) -> _Input | NixsealError:
        """First pass over a secret: owner check, read, digest; no decryption."""
        try:
            self._ids(entry)  # an unknown owner fails the entry: do not decrypt it
            data = _read(entry.file)
        except NixsealError as err:
            return err
        digest = hashlib.sha256(data).hexdigest()
        return _Input(data, digest, self.previous.reusable(entry, digest))

    @contextmanager
    def _decryptions(self, todo: list[Secret], inputs: Inputs, log: Logger) -> Iterator[Plaintexts]:
        """(secret, plaintext or error) for each secret in todo, in order.

        Many files are decrypted by forked workers (pyrage holds the GIL);
        this process still does every file-system change and log event.
        """
        identities = self._load_identities() if todo else None
        if identities is None:  # nothing to decrypt, or no usable identity
            error = NixsealError(self._identity_error)
            yield ((s, error) for s in todo)
            return

        def decrypt(secret: Secret) -> bytes:
            ciphertext = inputs[secret.key]
            assert isinstance(ciphertext, _Input)
            return _decrypt(ciphertext.data, identities, secret.file)

        from nixseal.util import pool  # only when something is decrypted

        workers = pool.workers_for(len(todo), FILES_PER_WORKER, identities)
        with pool.OrderedMap(
            decrypt,
            todo,
            workers,
            lambda why: log.warning("decryption workers failed; continuing alone", reason=why),
        ) as results:
            yield zip(todo, results, strict=True)

    def _install(self, entry: Entry, inputs: Inputs, plaintexts: Plaintexts) -> Installed:
        """(state, what the record says of the value now there, failure reason)."""
        try:
            uid, gid = self._ids(entry)
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
                    shared = self._share(entry, got.previous, uid, gid)
                    if shared is not None:
                        return Installed(EntryState.UNCHANGED, shared._replace(source=source))
                else:
                    secret, result = next(plaintexts)
                    assert secret is entry  # both follow the manifest's order
                    if isinstance(result, NixsealError):
                        raise result
                    value = result
                if entry.name in self.template_inputs:
                    self.values[entry.name] = value
            else:
                assert isinstance(entry, Template)
                value = self._render(entry)
            digest = rec.mac(self.key, value)
            state = self.previous.state(entry, digest, value)
            if self.new is not None:
                self._write(entry, value, uid, gid)
            return Installed(state, Kept(source, digest, len(value), entry.rel))
        except (NixsealError, OSError) as err:
            reason = str(err) if isinstance(err, NixsealError) else _os_reason(err)
            return Installed(
                EntryState.FAILED, self.previous.keep(entry, self.new, self.key), reason
            )

    def _write(self, entry: Entry, value: bytes, uid: int | None, gid: int | None) -> None:
        assert self.new is not None
        try:
            self.new.write(entry.rel, value, uid, gid, entry.mode)
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
        if self.new is None or self.previous.old is None:
            return kept  # a dry run
        return kept if self.new.link(self.previous.old, old.rel, entry.rel) else None

    def _ids(self, entry: Entry) -> tuple[int | None, int | None]:
        if self.accounts is None:
            return None, None
        uid, gid = self.accounts.resolve(entry.owner, entry.group)  # unknown: fails the entry
        return (uid, gid) if self.chown else (None, None)

    def _load_identities(self) -> list[Any] | None:
        """The usable identities, loaded on first need; None (and why) if there are none."""
        from nixseal.age import crypto

        if self._identities is None and not self._identity_error:
            try:
                self._identities = crypto.load_identities(
                    self.m.identity_paths,
                    lambda path, why: self.log.warning(
                        "identity skipped", identity=path, reason=why
                    ),
                )
            except NixsealError as err:
                self._identity_error = str(err)
        return self._identities

    def _render(self, entry: Template) -> bytes:
        names = referenced(entry.content, self.m.placeholders)
        missing = [n for n in names if n not in self.values]
        if missing:
            raise NixsealError(f"secret {missing[0]!r} it uses is not available")
        return render(entry.content, self.values, self.m.placeholders)

    # -- custom paths -------------------------------------------------------

    def _custom(self, path: str) -> bool:
        """A path outside symlinkPath, which gets a symlink into it."""
        return not path.startswith(self.m.symlink_path + "/")

    def _stale_links(
        self, installed: dict[str, rec.Entry], links: Links
    ) -> tuple[tuple[str, str], ...]:
        """(path, rel) of our links at custom paths the new generation no longer has.

        Kept in the new record until removed, so a run killed between the
        switch and their removal still removes them next time (the previous
        entries it would find them from are then the new ones).
        """
        wanted = {e.path for e in self.m.entries if self._custom(e.path) and e.key in installed}
        candidates = [(o.path, o.rel) for o in self.previous.entries.values()]
        if self.previous.record is not None:
            candidates += self.previous.record.unlink
        stale: dict[str, str] = {}
        for path, rel in candidates:
            ours = self._custom(path) and path not in wanted
            if ours and links.is_ours(path, rel):
                stale[path] = rel
        return tuple(sorted(stale.items()))

    def _links(
        self,
        installed: dict[str, rec.Entry],
        unlink: tuple[tuple[str, str], ...],
        links: Links,
        out: Outcome,
        log: Logger,
    ) -> None:
        """Symlinks at custom paths, each failing its entry alone."""
        for entry in self.m.entries:
            if not self._custom(entry.path) or entry.key not in installed:
                continue
            try:
                uid, _ = self._ids(entry)
                links.place(entry.path, entry.rel, os.geteuid() if uid is None else uid)
            except (NixsealError, OSError) as err:
                reason = str(err) if isinstance(err, NixsealError) else _os_reason(err)
                out.add(EntryState.FAILED, entry.key)
                log.error(
                    "failed", kind=entry.kind, name=entry.name, path=entry.path, reason=reason
                )
        for path, rel in unlink:
            try:
                links.remove(path, rel)
            except (NixsealError, OSError) as err:
                reason = str(err) if isinstance(err, NixsealError) else _os_reason(err)
                log.warning("old link not removed", path=path, reason=reason)


# The fixed part of a record, and of one entry at its longest (64-digit
# digests, a 20-digit size), beyond the strings counted one by one.
_HEADER = len(rec.Record(bytes(rec.KEY_BYTES), {}).to_json())
_ENTRY = (
    len(
        rec.Record(
            bytes(rec.KEY_BYTES), {"": rec.Entry("", "", "0" * 64, bytes(32), 10**19, (), ())}
        ).to_json()
    )
    - _HEADER
    + 1
)


def _json_len(text: str) -> int:
    """The most bytes JSON may spell text with: quoted; six per escaped character
    (twelve for a pair of surrogates, which is two characters of Python's)."""
    if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        return len(text) + 2
    return 6 * len(text) * 2 + 2


def stat_mode_differs(value: Value, uid: int | None, gid: int | None, mode: int) -> bool:
    if value.mode != mode:
        return True
    return uid is not None and (value.uid, value.gid) != (uid, gid)


def _needs_decrypting(got: _Input | NixsealError) -> bool:
    return isinstance(got, _Input) and got.previous is None


def _decrypt(data: bytes, identities: list[Any], source: str) -> bytes:
    from nixseal.age import crypto  # pyrage: only when something is decrypted

    return crypto.decrypt(data, identities, source)


def _read(path: str) -> bytes:
    try:
        return read_regular(path, AGE_FILE_LIMIT)
    except OSError as err:
        raise NixsealError(f"{path}: cannot read: {err.strerror}") from err


def _os_reason(err: OSError) -> str:
    where = f"{err.filename}: " if err.filename else ""
    return f"{where}{err.strerror or err}"
