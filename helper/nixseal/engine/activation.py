"""The activation engine behind `nixseal install`.

One run builds generation N+1 from the manifest, switches symlinkPath to
it, prunes old generations and works out which units saw a change, in
three steps over one Plan:

- plan (nixseal.engine.plan): mount, the previous generation and its
  record, leftovers of killed runs cleared, the new generation's room;
- write (nixseal.engine.write, nixseal.engine.decryption): every entry
  installed, changed, unchanged, failed (keeping its previous value) or
  removed, each on its own;
- commit (nixseal.engine.commit): record, switch, custom links, pruning.

This module holds the run together: the lock, the store, ownership, and
the hand-over of units after it. Nothing here ever logs a value.
"""

from __future__ import annotations

import os

from nixseal.engine import generation as gen
from nixseal.engine import record as rec
from nixseal.engine.commit import Commit
from nixseal.engine.decryption import Identities
from nixseal.engine.manifest import DARWIN, Entry, Manifest
from nixseal.engine.ownership import Accounts
from nixseal.engine.plan import plan
from nixseal.engine.restart import Units
from nixseal.engine.write import Outcome, Writer
from nixseal.util import safepath
from nixseal.util.lean import contextmanager

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator

    from nixseal.util.log import Logger


class Activation:
    def __init__(
        self, manifest: Manifest, root: str | None, dry_run: bool, mount: bool, log: Logger
    ) -> None:
        self.m = manifest
        self.root = root
        self.dry_run = dry_run
        self.mount = mount and not manifest.user_mode and os.geteuid() == 0
        self.make_disk = mount  # a user's RAM disk on macOS needs no root
        self.log = log
        self.chown = not manifest.user_mode and os.geteuid() == 0
        self.accounts = None if manifest.user_mode else Accounts(root)
        self.keys_gid: int | None = None
        self.identities = Identities(manifest.identity_paths, log)
        self.top = safepath.open_root(root)
        self.store: gen.Store | None = None

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
        """Plan, write and commit (call it inside locked())."""
        if self.dry_run:
            # Before planning: its warnings must say they come from a dry run.
            self.log = self.log.bind(dry_run=True)
        self._open_store()
        planned = plan(
            self.top, self.m, self.store, dry_run=self.dry_run, keys_gid=self.keys_gid, log=self.log
        )
        try:
            out = Outcome(planned.number, planned.live)
            log = self.log.bind(generation=out.generation)  # dry_run is bound above
            planned.previous.log = log
            self.identities.log = log
            entries = Writer(self.m, planned, self._ids, log).build(out, self.identities)
            if not self.dry_run:
                Commit(self.top, self.root or "", self.m, planned, owner=self._uid, log=log).run(
                    out, entries
                )
            return out
        finally:
            planned.close()

    def _open_store(self) -> None:
        """The mount point, mounted and with its mode set unless this is a dry run."""
        if self.chown and self.accounts is not None:
            self.keys_gid = self.accounts.keys_gid()
        elif not self.m.user_mode:
            self.log.warning("not running as root: owners and groups are not applied")
        shown = self.rooted(self.m.mount_point)
        if self.dry_run:
            self.store = gen.Store.existing(self.top, self.m.mount_point, shown)
            return
        self.store = gen.Store.open(self.top, self.m.mount_point, shown, self.keys_gid)
        if self.m.user_mode and self.m.platform == DARWIN:
            # No runtime directory in memory to use: the user's own RAM disk.
            self.store.user_ram_disk(make=self.make_disk)
            return
        if self.mount:
            self.store.mount(self.m.use_tmpfs, self.keys_gid or 0, self.m.platform == DARWIN)
        self.store.ensure_mode(self.keys_gid)

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

    def _ids(self, entry: Entry) -> tuple[int | None, int | None]:
        if self.accounts is None:
            return None, None
        uid, gid = self.accounts.resolve(entry.owner, entry.group)  # unknown: fails the entry
        return (uid, gid) if self.chown else (None, None)

    def _uid(self, entry: Entry) -> int | None:
        return self._ids(entry)[0]
