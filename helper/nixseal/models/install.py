"""What `nixseal install` reports of each secret and template.

States are Literal strings rather than an Enum: the install runs at every
boot and switch, and importing enum (with functools and collections)
costs it about 5 ms. Type checkers hold every use to these words, which
are also what the logs, the journal fields (NIXSEAL_STATE) and the docs say.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Literal, TypeAlias

    # installed: new since the previous generation (or first boot);
    # failed: kept its previous value when there was one;
    # removed: in the previous generation, gone from the manifest.
    EntryState: TypeAlias = Literal["installed", "changed", "unchanged", "failed", "removed"]

ENTRY_STATES: tuple[EntryState, ...] = ("installed", "changed", "unchanged", "failed", "removed")
