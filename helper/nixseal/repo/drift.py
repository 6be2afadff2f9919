"""Does each file's recipient set match the rules? Answered without keys.

ssh recipients are read from the age header's key tags. X25519 (and
plugin) stanzas are anonymous, so age recipients are taken from the state
file's record of the last encryption, trusted only when the recorded
header MAC is this file's (a record cannot vouch for a file that git, an
old branch or another tool replaced). Used by check, rekey and audit.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from nixseal.age import header
from nixseal.errors import CryptoError
from nixseal.models.repo import DriftStatus
from nixseal.repo.rules import RecipientRef, Rules, recipient_id
from nixseal.repo.state import State
from nixseal.util.keytext import PRIVATE_KEY, looks_private
from nixseal.util.readfile import AGE_FILE_LIMIT, read_regular

# The statuses by their short names, as the verbs test them.
OK = DriftStatus.OK
STALE = DriftStatus.STALE
UNVERIFIED = DriftStatus.UNVERIFIED
MISSING = DriftStatus.MISSING
CORRUPT = DriftStatus.CORRUPT


@dataclass(frozen=True)
class Reader:
    """A reader of a file: who, and whether the file is encrypted to them."""

    ref: RecipientRef
    present: bool | None  # None: cannot tell without a record


@dataclass(frozen=True)
class Drift:
    name: str
    path: Path
    status: DriftStatus
    readers: tuple[Reader, ...] = ()  # the rules' readers, in rules order
    extra: tuple[str, ...] = ()  # readers the file has but the rules do not
    detail: str = ""  # for CORRUPT / UNVERIFIED: why

    @property
    def missing(self) -> tuple[RecipientRef, ...]:
        return tuple(r.ref for r in self.readers if r.present is False)

    @property
    def needs_rekey(self) -> bool:
        return self.status in (STALE, UNVERIFIED)


def _is_ssh(key: str) -> bool:
    return key.startswith("ssh-")


def _is_x25519(key: str) -> bool:
    # A plugin recipient is age1<plugin>1...: bech32 data never holds a "1".
    return key.startswith("age1") and "1" not in key[4:]


class Inspector:
    """Compares files with rules; caches per-key work across many files."""

    def __init__(self, rules: Rules, state: State) -> None:
        self.rules = rules
        self.state = state
        self._tags: dict[str, str] = {}
        self._who: dict[str, str] = {}  # ssh tag or recipient id -> "host web1"
        for admin, key in rules.admins.items():
            self._remember(f"admin {admin}", key)
        for host in rules.hosts.values():
            self._remember(f"host {host.name}", host.key)
        for user in rules.users.values():
            self._remember(f"user {user.name}", user.key)

    def _remember(self, label: str, key: str) -> None:
        self._who.setdefault(recipient_id(key), label)
        if _is_ssh(key):
            self._who.setdefault(self.tag(key), label)

    def tag(self, key: str) -> str:
        found = self._tags.get(key)
        if found is None:
            found = self._tags[key] = header.ssh_key_tag(key)
        return found

    def describe(self, rid_or_tag: str) -> str:
        who = self._who.get(rid_or_tag)
        if who:
            return f"{who} ({rid_or_tag})"
        return (
            f"unknown key ({PRIVATE_KEY})"
            if looks_private(rid_or_tag)
            else f"unknown key {rid_or_tag}"
        )

    def inspect(self, name: str, data: bytes | None = None) -> Drift:
        path = self.rules.file_for(name)
        if data is None:
            try:
                data = read_regular(path, AGE_FILE_LIMIT)
            except FileNotFoundError:
                return Drift(name, path, MISSING)
            except OSError as err:
                return Drift(name, path, CORRUPT, detail=f"cannot read: {err.strerror}")
        try:
            hdr = header.parse_header(data, str(path))
        except CryptoError as err:
            return Drift(name, path, CORRUPT, detail=str(err).split(": ", 1)[-1])
        return self._compare(name, path, hdr)

    def _valid_record(self, name: str, hdr: header.Header) -> frozenset[str] | None:
        recorded = self.state.recipients(name)
        if recorded is None or self.state.mac(name) != hdr.mac:
            return None  # no record, or it describes another version of the file
        if sum(1 for r in recorded if _is_x25519(r)) != hdr.x25519_count:
            return None  # the header contradicts the record
        return recorded

    def _compare(self, name: str, path: Path, hdr: header.Header) -> Drift:
        refs = self.rules.recipients_for(name)
        recorded = self._valid_record(name, hdr)
        tags = hdr.ssh_tags
        n_x25519 = sum(1 for r in refs if _is_x25519(r.key))
        readers: list[Reader] = []
        for ref in refs:
            if _is_ssh(ref.key):
                readers.append(Reader(ref, self.tag(ref.key) in tags))
            elif recorded is not None:
                readers.append(Reader(ref, ref.id in recorded))
            elif _is_x25519(ref.key) and hdr.x25519_count == 0:
                readers.append(Reader(ref, False))  # no X25519 stanza at all
            else:
                readers.append(Reader(ref, None))
        expected_tags = {self.tag(r.key) for r in refs if _is_ssh(r.key)}
        extra = [self.describe(t) for t in sorted(tags - expected_tags)]
        n_age_expected = sum(1 for r in refs if not _is_ssh(r.key))
        detail = ""
        short = False  # fewer X25519 stanzas than age keys: some are surely missing
        if recorded is not None:
            expected_ids = {r.id for r in refs}
            extra += [
                self.describe(rid)
                for rid in sorted(recorded - expected_ids)
                if not rid.startswith("SHA256:")
            ]
        elif hdr.x25519_count > n_age_expected:
            extra.append(f"{hdr.x25519_count - n_age_expected} unidentified age key(s)")
        elif 0 < hdr.x25519_count < n_x25519:
            short = True
            detail = (
                f"encrypted to {hdr.x25519_count} age key(s), the rules list {n_x25519}: "
                "at least one is missing (which one is not recorded)"
            )
        elif n_age_expected and any(r.present is None for r in readers):
            detail = "age recipients not recorded (file written outside nixseal)"
        if short or extra or any(r.present is False for r in readers):
            status = STALE
        elif any(r.present is None for r in readers):
            status = UNVERIFIED
        else:
            status = OK
        return Drift(name, path, status, tuple(readers), tuple(extra), detail)

    def inspect_all(self, names: Iterable[str]) -> list[Drift]:
        return [self.inspect(n) for n in names]


def orphans(rules: Rules) -> list[Path]:
    """.age files under the rules dir that no secret names."""
    known = {rules.dir / f"{n}.age" for n in rules.secrets}
    return sorted(p for p in rules.dir.rglob("*.age") if p not in known)
