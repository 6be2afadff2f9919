"""What one activation run did: each entry's state and the units to signal."""

from __future__ import annotations

from typing import NamedTuple

from nixseal.engine.previous import Kept
from nixseal.engine.restart import Units
from nixseal.models import EntryState


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
        if state is EntryState.FAILED:
            for keys in self.states.values():
                if key in keys:
                    keys.remove(key)
        self.states.setdefault(state, []).append(key)

    @property
    def failed(self) -> list[str]:
        return self.states.get(EntryState.FAILED, [])


def os_reason(err: OSError) -> str:
    """An OSError as the reason an entry failed: the file it names, then why."""
    where = f"{err.filename}: " if err.filename else ""
    return f"{where}{err.strerror or err}"
