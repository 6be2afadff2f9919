"""The status file, <mountPoint>/status.json: what `nixseal status` reads.

Written at the end of every install (after the links, whose failures are
the run's last word), by rename, root's and 0600 like the records, and
never read at boot: the install pays one small write for it. It says, per
entry of the manifest and per entry the run removed, the state the entry
ended the run in (installed, changed, unchanged, failed, removed) and the
SHA-256 of the age file its value now in place came from: a failed entry
keeps an older value (or has none: null), a removed one names the file of
the value it had. Never a value, and never a digest of one: a short value
could be guessed from its hash. An admin compares the sources with the
files of the repository (`nixseal status`, over ssh, with `cat`): the file
is plain JSON so that reading it needs nothing of nixseal on the host.
"""

from __future__ import annotations

from nixseal.engine.record import json_len
from nixseal.util import fastjson

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from nixseal.models.install import EntryState

VERSION = 1
NAME = "status.json"


def document(
    generation: int,
    mount_point: str,
    states: Mapping[EntryState, list[str]],
    installed: Mapping[str, str | None],
    previous: Mapping[str, str | None],
    *,
    documents: Mapping[str, tuple[str, str, tuple[str, ...]]] | None = None,
) -> bytes:
    """The status of a run: states by entry key; installed and previous map
    entry keys to the source of their value in the new and in the previous
    generation; documents, the entries that take a key of a document (or
    another secret's file): (document, format, key), with which the admin
    finds the source from the repository's file (nixseal.engine.decryption
    digests a key of a document with them)."""
    entries: dict[str, dict[str, object]] = {}
    for state, keys in states.items():
        for key in keys:
            source = previous.get(key) if state == "removed" else installed.get(key)
            entries[key] = {"state": state, "source": source or None}
            of = (documents or {}).get(key)
            if of is not None:
                entries[key].update(document=of[0], format=of[1], key=list(of[2]))
    doc = {
        "version": VERSION,
        "generation": generation,
        "mountPoint": mount_point,
        "entries": dict(sorted(entries.items())),
    }
    return fastjson.dumps(doc, separators=(",", ":")).encode()


def size_bound(
    keys: Iterable[str],
    mount_point: str,
    documents: Iterable[tuple[str, str, tuple[str, ...]]] = (),
) -> int:
    """The most bytes the status of entries keys (the manifest's and the
    previous record's) can take, counted as record.size_bound counts, with
    the documents of the entries that take a key of one."""
    size = _HEADER_BYTES + json_len(mount_point) + sum(json_len(k) + _ENTRY_BYTES for k in keys)
    for doc, fmt, key in documents:
        size += _OF_BYTES + json_len(doc) + json_len(fmt) + sum(json_len(k) + 1 for k in key)
    return size


_HEADER_BYTES = len(document(10**19, "", {}, {}, {}))
_ENTRY_BYTES = (
    len(document(0, "", {"unchanged": [""]}, {"": "0" * 64}, {}))
    - len(document(0, "", {}, {}, {}))
    + 1
)
_OF_BYTES = len(',"document":,"format":,"key":[]')
