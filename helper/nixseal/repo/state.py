"""The state file beside the rules: what the CLI must remember.

``secrets/secrets.state.json`` (the rules file's name with ``.state.json``)
is machine-written and committed with the rules. Per secret it records the
recipient set its file was last encrypted to (recipient ids: age recipient
strings, OpenSSH SHA256 fingerprints for ssh keys), the MAC line of that
file's header (so a record is trusted only for the exact file it describes,
whatever git merges did), and when the value was last set or rotated. A
value a generator made from other secrets (its inputs) also records when
each input had been rotated then: an input rotated later makes it due.

X25519 stanzas in an age header are anonymous, so without this record no
tool could tell whether a file is readable by a given age key.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nixseal.age import header
from nixseal.errors import CryptoError, RulesError
from nixseal.repo.rules import Rules, recipient_id
from nixseal.util.atomic import write_atomic
from nixseal.util.paths import display_path
from nixseal.util.readfile import TEXT_LIMIT, read_regular

STATE_VERSION = 1


def state_path(rules_path: Path) -> Path:
    return rules_path.with_name(rules_path.stem + ".state.json")


@dataclass
class _Entry:
    recipients: frozenset[str] | None = None
    mac: str | None = None
    rotated: datetime.datetime | None = None
    # input -> when that input was rotated, at the time this value was made
    derived: dict[str, str | None] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.derived is not None:
            out["derived_from"] = dict(sorted(self.derived.items()))
        if self.recipients is not None:
            out["recipients"] = sorted(self.recipients)
        if self.mac is not None:
            out["mac"] = self.mac
        if self.rotated is not None:
            out["rotated"] = _format_time(self.rotated)
        return out


@dataclass
class State:
    path: Path
    rules: Rules
    entries: dict[str, _Entry] = field(default_factory=dict)
    dirty: bool = False

    @classmethod
    def load(cls, rules: Rules) -> State:
        path = state_path(rules.path)
        state = cls(path, rules)
        where = display_path(path)
        fix = "resolve the merge conflict or delete the file and run `nixseal rekey --force`"
        try:
            text = read_regular(path, TEXT_LIMIT).decode()
        except FileNotFoundError:
            return state
        except OSError as err:
            raise RulesError(f"{where}: cannot read state: {err.strerror}") from err
        except UnicodeDecodeError as err:
            raise RulesError(f"{where}: not UTF-8 text (byte {err.start}); {fix}") from err
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise RulesError(
                f"{where}: malformed JSON at line {err.lineno}, column {err.colno}: {err.msg}; "
                f"{fix}"
            ) from err
        except (RecursionError, ValueError) as err:  # deep nesting, 4300-digit numbers
            raise RulesError(f"{where}: malformed JSON; {fix}") from err
        version = data.get("version") if isinstance(data, dict) else None
        if isinstance(version, bool) or version != STATE_VERSION:
            raise RulesError(f"{where}: not a version {STATE_VERSION} nixseal state file")
        secrets = data.get("secrets", {})
        if not isinstance(secrets, dict):
            raise RulesError(f"{where}: secrets must be an object")
        for name, raw in secrets.items():
            state.entries[name] = _parse_entry(raw, f"{where}: secrets.{name}")
        return state

    def recipients(self, name: str) -> frozenset[str] | None:
        """Recipient ids the file was last encrypted to, if recorded."""
        entry = self.entries.get(name)
        return entry.recipients if entry else None

    def mac(self, name: str) -> str | None:
        entry = self.entries.get(name)
        return entry.mac if entry else None

    def replaced(self, name: str, data: bytes | None) -> bool:
        """Was the file (data) replaced since its rotation time was recorded?

        nixseal records the header MAC with every write, so a file whose MAC
        differs (or whose header no longer parses) was written by something
        else, and the recorded time says nothing about its value.
        """
        if data is None or self.rotated_at(name) is None:
            return False
        try:
            mac: str | None = header.parse_header(data, name).mac
        except CryptoError:
            mac = None
        return mac is None or mac != self.mac(name)

    def rotated_at(self, name: str) -> datetime.datetime | None:
        entry = self.entries.get(name)
        return entry.rotated if entry else None

    def record_encryption(
        self, name: str, recipients: Iterable[str], *, mac: str | None = None
    ) -> None:
        """Remember the recipients (key strings or ids) a file now has."""
        entry = self.entries.setdefault(name, _Entry())
        entry.recipients = frozenset(recipient_id(r) for r in recipients)
        entry.mac = mac
        self.dirty = True

    def record_value(self, name: str, when: datetime.datetime) -> None:
        """Remember when a secret's value was set or rotated."""
        if when.tzinfo is None:
            when = when.astimezone()
        entry = self.entries.setdefault(name, _Entry())
        # Two values of one secret never share a time (times have whole
        # seconds): what is made from it tells them apart by their times.
        if entry.rotated is not None and when <= entry.rotated:
            when = entry.rotated + datetime.timedelta(seconds=1)
        entry.rotated = when
        self.dirty = True

    def record_derived(self, name: str, inputs: Iterable[str]) -> None:
        """Remember that name's new value was made from inputs' current values."""
        self.entries.setdefault(name, _Entry()).derived = {i: self._stamp(i) for i in inputs}
        self.dirty = True

    def inputs_rotated(self, name: str, inputs: Iterable[str]) -> list[str]:
        """The inputs rotated since name's value was made from them (an
        input the record does not name counts too); none without a record."""
        entry = self.entries.get(name)
        if entry is None or entry.derived is None:
            return []
        recorded = entry.derived
        return [i for i in inputs if i not in recorded or recorded[i] != self._stamp(i)]

    def _stamp(self, name: str) -> str | None:
        when = self.rotated_at(name)
        return _format_time(when) if when is not None else None

    def forget(self, name: str) -> None:
        if self.entries.pop(name, None) is not None:
            self.dirty = True

    def to_json(self) -> str:
        secrets = {}
        for name in sorted(self.entries):
            entry = self.entries[name]
            # Secrets gone from the rules and from disk leave no trace.
            if name not in self.rules.secrets and not (self.rules.dir / f"{name}.age").exists():
                continue
            secrets[name] = entry.to_json()
        doc = {"version": STATE_VERSION, "secrets": secrets}
        return json.dumps(doc, indent=2, sort_keys=True) + "\n"

    def save(self) -> None:
        """Write atomically (temp file and rename); a no-op when unchanged."""
        if not self.dirty:
            return
        write_atomic(self.path, self.to_json().encode())
        self.dirty = False


def _format_time(when: datetime.datetime) -> str:
    return when.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_entry(raw: Any, where: str) -> _Entry:
    if not isinstance(raw, dict):
        raise RulesError(f"{where}: must be an object")
    entry = _Entry()
    recips = raw.get("recipients")
    if recips is not None:
        if not isinstance(recips, list) or not all(isinstance(r, str) for r in recips):
            raise RulesError(f"{where}.recipients: must be a list of strings")
        entry.recipients = frozenset(recips)
    mac = raw.get("mac")
    if mac is not None and not isinstance(mac, str):
        raise RulesError(f"{where}.mac: must be a string")
    entry.mac = mac
    derived = raw.get("derived_from")
    if derived is not None:
        if not isinstance(derived, dict) or not all(
            v is None or isinstance(v, str) for v in derived.values()
        ):
            raise RulesError(f"{where}.derived_from: must map secret names to times")
        entry.derived = dict(derived)
    rotated = raw.get("rotated")
    if rotated is not None:
        try:
            when = datetime.datetime.fromisoformat(str(rotated).replace("Z", "+00:00"))
        except ValueError as err:
            raise RulesError(f"{where}.rotated: bad time {rotated!r}") from err
        if when.tzinfo is None:
            when = when.replace(tzinfo=datetime.timezone.utc)
        try:
            # In UTC now, so that saving it again cannot overflow (year 1, +14:00).
            entry.rotated = when.astimezone(datetime.timezone.utc)
        except OverflowError as err:
            raise RulesError(f"{where}.rotated: time {rotated!r} out of range") from err
    return entry
