"""The activation engine behind `nixseal install`.

One run builds generation N+1 from the manifest, switches symlinkPath to
it, prunes old generations and works out which units saw a change.
Every entry (secret or template) ends in one of these states:

- installed: new since the previous generation (or first boot)
- changed / unchanged: compared by content with the previous generation
- failed: could not be produced (unreadable, corrupt, wrong key, unknown
  owner...); it keeps its previous value when the previous generation had
  one, and the run exits 1
- removed: in the previous generation, gone from the manifest

An age file whose bytes have not changed since the previous generation is
not decrypted again: its previous plaintext is reused (hard-linked when
owner and mode are unchanged). Nothing here ever logs a value.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

from nixseal import generation as gen
from nixseal.errors import NixsealError
from nixseal.manifest import Entry, Manifest, Secret, Template
from nixseal.ownership import Accounts
from nixseal.readfile import AGE_FILE_LIMIT, read_regular
from nixseal.render import referenced, render
from nixseal.restart import Units, collect

RECORD_VERSION = 1
NO_PENDING: dict[str, list[str]] = {"restart": [], "reload": []}
# A forked worker must decrypt at least this many files to repay its fork
# (about 1-2 ms here, against ~0.25 ms per ssh-ed25519 file): see
# docs/performance.md.
FILES_PER_WORKER = 32


class _Input(NamedTuple):
    """A secret's age file as read in the first pass."""

    data: bytes
    digest: str  # SHA-256 of the age file, kept in the record
    decrypt: bool  # False: unchanged since the previous generation, reuse its value


# What the first pass knows of each secret: its input, or why it failed.
Inputs = dict[str, "_Input | NixsealError"]
Plaintexts = Iterator[tuple[Secret, "bytes | NixsealError"]]


class Outcome:
    """What one run did (or, with dry_run, would do)."""

    def __init__(self, generation: int, previous: int | None) -> None:
        self.generation = generation
        self.previous = previous
        self.states: dict[str, list[str]] = {}  # state -> entry keys
        self.units = Units()

    def add(self, state: str, key: str) -> None:
        if state == "failed":  # a later step (its custom link) failed an entry counted done
            for keys in self.states.values():
                if key in keys:
                    keys.remove(key)
        self.states.setdefault(state, []).append(key)

    @property
    def failed(self) -> list[str]:
        return self.states.get("failed", [])


class Activation:
    def __init__(
        self, manifest: Manifest, root: str | None, dry_run: bool, mount: bool, log: Any
    ) -> None:
        self.m = manifest
        self.root = root
        self.dry_run = dry_run
        self.mount = mount and not manifest.user_mode and os.geteuid() == 0
        self.log = log
        self.mount_point = self.rooted(manifest.mount_point)
        self.symlink = self.rooted(manifest.symlink_path)
        self.chown = not manifest.user_mode and os.geteuid() == 0
        self.accounts = None if manifest.user_mode else Accounts(root)
        self.keys_gid: int | None = None
        self._identities: list[Any] | None = None
        self._identity_error = ""
        self._dirs: set[Path] = set()  # directories known to exist in the new generation
        self.values: dict[str, bytes] = {}  # secret name -> value, for templates
        needed = (referenced(t.content, manifest.placeholders) for t in manifest.templates)
        self.template_inputs = {name for names in needed for name in names}
        # Per run: the previous generation and its record.
        self.old_dir: Path | None = None
        self.record: dict[str, Any] | None = None
        self.old_entries: dict[str, Any] = {}

    def rooted(self, path: str) -> Path:
        return Path(self.root + path) if self.root else Path(path)

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the install lock: around run() and the hand-over of its units.

        The hand-over rewrites the new generation's record (clear_pending),
        which a run that started meanwhile would be reading or pruning. A
        dry run changes nothing and takes no lock.
        """
        if self.dry_run:
            yield
            return
        fd = gen.lock(self.mount_point)
        try:
            yield
        finally:
            os.close(fd)

    def run(self) -> Outcome:
        """Build, switch and prune (call it inside locked())."""
        if self.dry_run:
            # Before _prepare: its warnings must say they come from a dry run.
            self.log = self.log.bind(dry_run=True)
        out = self._prepare()
        log = self.log.bind(generation=out.generation)  # dry_run is bound above
        entries = self._build(out, log)
        if not self.dry_run:
            self._commit(out, entries, log)
        return out

    def _prepare(self) -> Outcome:
        """Mount, find the previous generation, clear what killed runs left."""
        if self.chown and self.accounts is not None:
            self.keys_gid = self.accounts.keys_gid()
        elif not self.m.user_mode:
            self.log.warning("not running as root: owners and groups are not applied")
        if self.mount and not self.dry_run:
            gen.ensure_mounted(self.mount_point, self.m.use_tmpfs, self.keys_gid or 0)
        elif not self.dry_run:
            gen.make_dirs(self.mount_point, gen.DIR_MODE, self.keys_gid)
        if not self.dry_run:
            # Also when it exists: a run killed between mkdir (or mount) and
            # chown left it root's, and nothing else would ever fix that.
            gen.ensure_dir_mode(self.mount_point, gen.DIR_MODE, self.keys_gid)
        previous = gen.current(self.symlink, self.mount_point)
        if previous is not None:
            self.old_dir = self.mount_point / str(previous)
            self.record = _valid_record(gen.read_record(self.mount_point, previous))
            self.old_entries = (self.record or {}).get("entries", {})
        if not self.dry_run:
            gen.remove_temporary(self.mount_point)
            for number in gen.numbers(self.mount_point):
                if previous is None or number > previous:
                    gen.remove(self.mount_point, number)  # left half-built by a killed run
        number = max([previous or 0, *gen.numbers(self.mount_point)]) + 1
        if not self.dry_run:
            gen.make_dirs(self.mount_point / str(number), gen.DIR_MODE, self.keys_gid)
        return Outcome(number, previous)

    def _build(self, out: Outcome, log: Any) -> dict[str, Any]:
        """Produce every entry in the new generation; returns its record entries."""
        gen_dir = self.mount_point / str(out.generation)
        entries: dict[str, Any] = {}
        restart: list[str] = []
        reload: list[str] = []
        # Every age file is read first, so the ones to decrypt are known and
        # workers can decrypt them while this process writes files in order.
        inputs: Inputs = {s.key: self._read_input(s) for s in self.m.secrets}
        todo = [s for s in self.m.secrets if _needs_decrypting(inputs[s.key])]
        with self._decryptions(todo, inputs, log) as plaintexts:
            for entry in self.m.entries:
                state, source, reason = self._install(entry, gen_dir, inputs, plaintexts)
                out.add(state, entry.key)
                fields = {"kind": entry.kind, "name": entry.name, "path": entry.path}
                if state == "failed":
                    log.error("failed", **fields, reason=reason, kept_previous=source is not None)
                else:
                    (log.debug if state == "unchanged" else log.info)(state, **fields)
                if state in {"installed", "changed"}:
                    restart += entry.restart_units
                    reload += entry.reload_units
                if state != "failed" or source is not None:
                    entries[entry.key] = {
                        "rel": entry.rel,
                        "path": entry.path,
                        "source": source,
                        "restartUnits": list(entry.restart_units),
                        "reloadUnits": list(entry.reload_units),
                    }
        new_keys = {e.key for e in self.m.entries}
        for key, old in self.old_entries.items():
            if key not in new_keys:
                out.add("removed", key)
                kind, name = key.split(":", 1)
                log.info("removed", kind=kind, name=name, path=old.get("path"))
                restart += old.get("restartUnits", [])
                reload += old.get("reloadUnits", [])
        if out.previous is not None:  # first boot: nothing running could hold a value
            pending = (self.record or {}).get("pending", NO_PENDING)
            out.units = collect([*restart, *pending["restart"]], [*reload, *pending["reload"]])
        return entries

    def _commit(self, out: Outcome, entries: dict[str, Any], log: Any) -> None:
        """Record, switch, link custom paths, prune: the new generation goes live."""
        pending = {"restart": list(out.units.restart), "reload": list(out.units.reload)}
        unlink = self._stale_links(entries)
        record = {
            "version": RECORD_VERSION,
            "entries": entries,
            "pending": pending,
            "unlink": unlink,
        }
        gen.write_record(self.mount_point, out.generation, record)
        gen.make_dirs(self.symlink.parent, 0o755)
        gen.place_symlink(self.symlink, self.mount_point, str(out.generation))
        self._links(entries, unlink, out, log)
        older = [n for n in gen.numbers(self.mount_point) if n < out.generation]
        keep = set(sorted(older, reverse=True)[: self.m.keep_generations])
        for n in older:
            if n not in keep:
                gen.remove(self.mount_point, n)

    def clear_pending(self, out: Outcome) -> None:
        """The units were handed over: a later run need not signal them again."""
        record = gen.read_record(self.mount_point, out.generation)
        if record is not None and record.get("pending") != NO_PENDING:
            record["pending"] = NO_PENDING
            gen.write_record(self.mount_point, out.generation, record)

    # -- one entry ----------------------------------------------------------

    def _old_file(self, entry: Entry) -> Path | None:
        if self.old_dir is None:
            return None
        if self.record is None:
            return self.old_dir / entry.rel  # a generation without a record (another tool)
        old = self.old_entries.get(entry.key)
        return self.old_dir / old["rel"] if old else None

    def _read_input(self, entry: Secret) -> _Input | NixsealError:
        """First pass over a secret: owner check, read, digest; no decryption."""
        try:
            self._ids(entry)  # an unknown owner fails the entry: do not decrypt it
            data = _read(entry.file)
        except NixsealError as err:
            return err
        digest = hashlib.sha256(data).hexdigest()
        old = self.old_entries.get(entry.key)
        # A recorded source implies a previous file (_old_file), without a Path.
        unchanged = old is not None and old.get("source") == digest and self.old_dir is not None
        return _Input(data, digest, not unchanged)

    @contextmanager
    def _decryptions(self, todo: list[Secret], inputs: Inputs, log: Any) -> Iterator[Plaintexts]:
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

        from nixseal import pool  # only when something is decrypted

        workers = pool.workers_for(len(todo), FILES_PER_WORKER, identities)
        with pool.OrderedMap(
            decrypt,
            todo,
            workers,
            lambda why: log.warning("decryption workers failed; continuing alone", reason=why),
        ) as results:
            yield zip(todo, results, strict=True)

    def _install(
        self, entry: Entry, gen_dir: Path, inputs: Inputs, plaintexts: Plaintexts
    ) -> tuple[str, str | None, str]:
        """(state, source digest for the record, failure reason)."""
        old_file = self._old_file(entry)
        old_source = self.old_entries.get(entry.key, {}).get("source")
        target = gen_dir / entry.rel
        try:
            uid, gid = self._ids(entry)
            source = None
            if isinstance(entry, Secret):
                got = inputs[entry.key]
                if isinstance(got, NixsealError):
                    raise got
                source = got.digest
                if not got.decrypt:
                    assert old_file is not None
                    if self._reuse(entry, old_file, target, (uid, gid)):
                        return "unchanged", source, ""
                    try:
                        value = old_file.read_bytes()
                    except OSError:  # removed by hand: decrypt it again
                        value = self._decrypt_alone(entry, got.data)
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
            state = _compare(value, old_file)
            if not self.dry_run:
                self._make_dirs(target.parent)
                gen.write_file(target, value, uid, gid, entry.mode)
            return state, source, ""
        except (NixsealError, OSError) as err:
            reason = str(err) if isinstance(err, NixsealError) else _os_reason(err)
            return "failed", self._keep_previous(old_file, target, old_source), reason

    def _make_dirs(self, path: Path) -> None:
        # The new generation is ours alone (lock held, not live): a directory
        # made once stays, so each is made or checked once, not per file.
        if path not in self._dirs:
            gen.make_dirs(path, gen.DIR_MODE, self.keys_gid)
            self._dirs.add(path)

    def _keep_previous(self, old_file: Path | None, target: Path, source: str | None) -> str | None:
        """Carry a failed entry's previous file over; its source, or None if there is none."""
        if old_file is None or not old_file.is_file():
            return None
        if not self.dry_run:
            self._make_dirs(target.parent)
            if not gen.link(old_file, target):
                return None
        return source or ""

    def _ids(self, entry: Entry) -> tuple[int | None, int | None]:
        if self.accounts is None:
            return None, None
        uid, gid = self.accounts.resolve(entry.owner, entry.group)  # unknown: fails the entry
        return (uid, gid) if self.chown else (None, None)

    def _reuse(
        self, entry: Entry, old_file: Path, target: Path, ids: tuple[int | None, int | None]
    ) -> bool:
        """Hard-link an unchanged secret from the previous generation."""
        if entry.name in self.template_inputs:
            return False  # its value is needed in memory anyway
        if not gen.same_owner_mode(old_file, *ids, entry.mode):
            return False
        if self.dry_run:
            return True
        self._make_dirs(target.parent)
        return gen.link(old_file, target)

    def _load_identities(self) -> list[Any] | None:
        """The usable identities, loaded on first need; None (and why) if there are none."""
        from nixseal import crypto

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

    def _decrypt_alone(self, entry: Secret, data: bytes) -> bytes:
        """Decrypt one file in this process (outside the planned decryptions)."""
        identities = self._load_identities()
        if identities is None:
            raise NixsealError(self._identity_error)
        return _decrypt(data, identities, entry.file)

    def _render(self, entry: Template) -> bytes:
        names = referenced(entry.content, self.m.placeholders)
        missing = [n for n in names if n not in self.values]
        if missing:
            raise NixsealError(f"secret {missing[0]!r} it uses is not available")
        return render(entry.content, self.values, self.m.placeholders)

    def _custom(self, path: str) -> bool:
        """A path outside symlinkPath, which gets a symlink into it."""
        return not path.startswith(self.m.symlink_path + "/")

    def _stale_links(self, installed: dict[str, Any]) -> list[list[str]]:
        """[path, rel] of our links at custom paths the new generation no longer has.

        Kept in the new record until removed, so a run killed between the
        switch and their removal still removes them next time (the previous
        entries it would find them from are then the new ones).
        """
        wanted = {e.path for e in self.m.entries if self._custom(e.path) and e.key in installed}
        candidates = [(o.get("path", ""), o.get("rel", "")) for o in self.old_entries.values()]
        candidates += [(p, rel) for p, rel in (self.record or {}).get("unlink", [])]
        stale: dict[str, str] = {}
        for path, rel in candidates:
            ours = path and rel and self._custom(path) and path not in wanted
            if ours and gen.is_link_to(self.rooted(path), self.symlink, rel):
                stale[path] = rel
        return [[path, rel] for path, rel in sorted(stale.items())]

    def _links(
        self, installed: dict[str, Any], unlink: list[list[str]], out: Outcome, log: Any
    ) -> None:
        """Symlinks at custom paths (outside symlinkPath), pointing into symlinkPath."""
        for entry in self.m.entries:
            if not self._custom(entry.path) or entry.key not in installed:
                continue
            link = self.rooted(entry.path)
            try:
                gen.make_dirs(link.parent, 0o755)
                gen.place_symlink(link, self.symlink, entry.rel)
            except NixsealError as err:
                out.add("failed", entry.key)
                log.error(
                    "failed", kind=entry.kind, name=entry.name, path=entry.path, reason=str(err)
                )
        for path, rel in unlink:
            gen.remove_symlink(self.rooted(path), self.symlink, rel)


def _valid_record(record: dict[str, Any] | None) -> dict[str, Any] | None:
    """The record if this version wrote it; else None, as for another tool's generation.

    A record of another version (a rollback to an older nixseal) or a
    damaged one must not break the install: it only costs change detection
    by record (files are still compared with the previous generation's).
    """
    if record is None or record.get("version") != RECORD_VERSION:
        return None
    entries, pending = record.get("entries"), record.get("pending", NO_PENDING)
    unlink = record.get("unlink", [])
    ok = (
        isinstance(entries, dict)
        and all(
            isinstance(e, dict)
            and ":" in k
            and isinstance(e.get("rel"), str)
            and isinstance(e.get("path"), str)
            and _strings(e.get("restartUnits"))
            and _strings(e.get("reloadUnits"))
            for k, e in entries.items()
        )
        and isinstance(pending, dict)
        and _strings(pending.get("restart"))
        and _strings(pending.get("reload"))
        and isinstance(unlink, list)
        and all(isinstance(u, list) and len(u) == 2 and _strings(u) for u in unlink)
    )
    return record if ok else None


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _needs_decrypting(got: _Input | NixsealError) -> bool:
    return isinstance(got, _Input) and got.decrypt


def _decrypt(data: bytes, identities: list[Any], source: str) -> bytes:
    from nixseal import crypto  # pyrage: only when something is decrypted

    return crypto.decrypt(data, identities, source)


def _read(path: str) -> bytes:
    try:
        return read_regular(path, AGE_FILE_LIMIT)
    except OSError as err:
        raise NixsealError(f"{path}: cannot read: {err.strerror}") from err


def _compare(value: bytes, old_file: Path | None) -> str:
    if old_file is None:
        return "installed"
    try:
        old = old_file.read_bytes()
    except OSError:
        return "installed"
    return "unchanged" if old == value else "changed"


def _os_reason(err: OSError) -> str:
    where = f"{err.filename}: " if err.filename else ""
    return f"{where}{err.strerror or err}"
