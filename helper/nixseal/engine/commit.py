"""The commit step of a run: the new generation goes live.

Record first, then the switch of symlinkPath, then the symlinks at custom
paths (each failing its entry alone), then the status file (what `nixseal
status` reads over ssh: each entry's state in this run and the SHA-256 of
the age file its value came from), then pruning. Links the new
generation no longer has stay listed in its record until removed, so a run
killed between the switch and their removal removes them next time (the
previous entries it would find them from are then the new ones).
"""

from __future__ import annotations

import os

from nixseal.engine import generation as gen
from nixseal.engine import record as rec
from nixseal.engine import status
from nixseal.engine.manifest import Entry, Manifest
from nixseal.engine.plan import Plan
from nixseal.engine.write import Outcome, os_reason
from nixseal.errors import NixsealError
from nixseal.util.safepath import Dir

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from nixseal.engine.links import Links
    from nixseal.util.log import Logger


class Commit:
    def __init__(
        self,
        top: Dir,
        root: str,
        m: Manifest,
        plan: Plan,
        *,
        owner: Callable[[Entry], int | None],
        log: Logger,
    ) -> None:
        assert plan.store is not None
        self.top = top
        self.root = root
        self.m = m
        self.plan = plan
        self.store = plan.store
        self.owner = owner  # an entry's uid; raises for an unknown owner
        self.log = log

    def run(self, out: Outcome, entries: dict[str, rec.Entry]) -> None:
        links = self._any_links()
        unlink = () if links is None else self._stale_links(entries, links)
        record = rec.Record(self.plan.key, entries, out.units.restart, out.units.reload, unlink)
        self.store.write_record(out.generation, self.plan.reserved, record.to_json())
        shown = self.root + self.m.symlink_path
        gen.switch(self.top, self.m.symlink_path, shown, self.store, out.generation)
        if links is not None:
            self._links(entries, unlink, links, out)
        self._status(out, entries)
        self._prune(out.generation)

    def _status(self, out: Outcome, entries: dict[str, rec.Entry]) -> None:
        """After the links, whose failures are the run's last states. A status
        that cannot be written is removed, never left from an older run."""
        installed = {k: e.source for k, e in entries.items()}
        previous = {k: e.source for k, e in self.plan.previous.entries.items()}
        documents = {
            s.key: (s.document or s.name, s.format, s.key_path)
            for s in self.m.secrets
            if s.key_path or (s.document and s.document != s.name)
        }
        data = status.document(
            out.generation, self.m.mount_point, out.states, installed, previous, documents=documents
        )
        try:
            self.store.write_status(data)
        except OSError as err:
            self.store.remove_status()
            self.log.warning(
                "status file not written; nixseal status reports none for this host",
                reason=err.strerror,
            )

    def _any_links(self) -> Links | None:
        """Links, when there is any custom path to link or unlink; most hosts
        have none, and then the module is not even imported."""
        previous = self.plan.previous
        paths = [e.path for e in self.m.entries] + [o.path for o in previous.entries.values()]
        if not any(map(self._custom, paths)) and not (previous.record and previous.record.unlink):
            return None
        from nixseal.engine.links import Links

        return Links(self.top, self.store, self.m.symlink_path, self.root)

    def _custom(self, path: str) -> bool:
        """A path outside symlinkPath, which gets a symlink into it."""
        return not path.startswith(self.m.symlink_path + "/")

    def _stale_links(
        self, installed: dict[str, rec.Entry], links: Links
    ) -> tuple[tuple[str, str], ...]:
        """(path, rel) of our links at custom paths the new generation no longer has."""
        wanted = {e.path for e in self.m.entries if self._custom(e.path) and e.key in installed}
        previous = self.plan.previous
        candidates = [(o.path, o.rel) for o in previous.entries.values()]
        if previous.record is not None:
            candidates += previous.record.unlink
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
    ) -> None:
        for entry in self.m.entries:
            if not self._custom(entry.path) or entry.key not in installed:
                continue
            try:
                uid = self.owner(entry)
                links.place(entry.path, entry.rel, os.geteuid() if uid is None else uid)
            except (NixsealError, OSError) as err:
                reason = str(err) if isinstance(err, NixsealError) else os_reason(err)
                out.add("failed", entry.key)
                self.log.error(
                    "failed", kind=entry.kind, name=entry.name, path=entry.path, reason=reason
                )
        for path, rel in unlink:
            try:
                links.remove(path, rel)
            except (NixsealError, OSError) as err:
                reason = str(err) if isinstance(err, NixsealError) else os_reason(err)
                self.log.warning("old link not removed", path=path, reason=reason)

    def _prune(self, number: int) -> None:
        older = [n for n in self.store.numbers() if n < number]
        keep = set(sorted(older, reverse=True)[: self.m.keep_generations])
        for n in older:
            if n not in keep:
                try:
                    self.store.remove(n)
                except (OSError, NixsealError) as err:
                    reason = str(err) if isinstance(err, NixsealError) else err.strerror
                    self.log.warning("old generation not removed", number=n, reason=reason)
