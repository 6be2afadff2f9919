"""The plan step of a run: what the previous generation gives, and room for the next.

Planning finds the live generation and its record, clears what a killed
run left (temporary files, generations newer than the live one), numbers
the new generation, creates it and reserves its record's room first, so a
full ramfs fails entries, never the record that makes them trusted.
"""

from __future__ import annotations

from nixseal.engine import generation as gen
from nixseal.engine import record as rec
from nixseal.engine import status
from nixseal.engine.manifest import Manifest
from nixseal.engine.previous import Previous
from nixseal.errors import GenerationError
from nixseal.util.safepath import Dir

TYPE_CHECKING = False
if TYPE_CHECKING:
    from nixseal.util.log import Logger


class Plan:
    """What the write and commit steps start from; the caller closes it.

    A plain class, not a dataclass: defining one costs ~0.6 ms at every boot.
    """

    def __init__(
        self,
        store: gen.Store | None,
        number: int,
        live: int | None,
        previous: Previous,
        *,
        key: bytes,
        handed: bool,
    ) -> None:
        self.store = store  # None: a dry run before the first install
        self.number = number  # of the new generation
        self.live = live  # the generation live before this run
        self.previous = previous
        self.key = key  # the record's HMAC key: the previous record's, or new
        self.handed = handed  # the live generation's units were handed over
        self.new: gen.NewGeneration | None = None  # None in a dry run
        self.reserved = -1  # the record room's descriptor

    def close(self) -> None:
        self.previous.close()
        if self.new is not None:
            self.new.close()


def plan(
    top: Dir,
    m: Manifest,
    store: gen.Store | None,
    *,
    dry_run: bool,
    keys_gid: int | None,
    log: Logger,
) -> Plan:
    live = None if store is None else gen.current(top, m.symlink_path, store)
    previous = Previous(None, None, log)
    key = rec.new_key()
    handed = False
    if store is not None and live is not None:
        data = store.read_record(live)
        record = None if data is None else rec.Record.from_json(data, m.symlink_path)
        previous = Previous(store.old(live), record, log)
        handed = store.handed(live)
        if record is not None:
            key = record.key
    try:
        numbers = [] if store is None else store.numbers()
        if store is not None and not dry_run:
            store.remove_temporary()
            for number in numbers:
                if live is None or number > live:
                    store.remove(number)  # left half-built by a killed run
            numbers = store.numbers()
        number = max([live or 0, *numbers]) + 1
        result = Plan(store, number, live, previous, key=key, handed=handed)
        if store is not None and not dry_run:
            result.new = store.new(result.number, keys_gid)
            try:
                result.reserved = store.reserve_record(result.number, _record_bound(m, previous))
            except GenerationError:
                result.new.close()
                result.new = None
                store.remove(result.number)  # nothing half-built is left
                raise
    except BaseException:
        previous.close()
        raise
    return result


def _record_bound(m: Manifest, previous: Previous) -> int:
    """The most the new record can take: every entry, every unit old and new
    (each also pending), every old link still to remove; and the status
    file's room (engine.status), which the record leaves when it shrinks."""
    old = previous.entries.values()
    units = [u for e in m.entries for u in (*e.restart_units, *e.reload_units)]
    units += [u for e in old for u in (*e.restart_units, *e.reload_units)]
    pending = previous.pending(False)
    units += [*pending[0], *pending[1]]
    entries = ((e.key, e.rel, e.path, (*e.restart_units, *e.reload_units)) for e in m.entries)
    links = [(e.path, e.rel) for e in old]
    if previous.record is not None:
        links += previous.record.unlink
    keys = [*(e.key for e in m.entries), *previous.entries]
    documents = [(s.document or s.name, s.format, s.key_path) for s in m.secrets]
    return rec.size_bound(entries, units, links) + status.size_bound(keys, m.mount_point, documents)
