"""Who reads what, changed in the rules file: the host, admin, user and group verbs.

The file is edited as a document (tomlkit), so the comments, order, quoting
and blank lines of everything not changed stay as the admins wrote them.
Each edit is parsed by the rules parser before it replaces the file, and
its effect is read off the rules before and after: which secrets' files now
hold the wrong recipients (rekey), and which secrets a removed reader could
read (rotate).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

try:
    import tomlkit
    import tomlkit.exceptions
    from tomlkit.items import AoT, Array, InlineTable, Table

    MISSING = False
except ImportError:  # a hand-made install without the dependency
    MISSING = True

from nixseal.errors import RulesError, UsageError
from nixseal.models.repo import ReaderKind
from nixseal.repo import drift
from nixseal.repo.pubkey import key_from_argument
from nixseal.repo.rules import (
    IDENT,
    Rules,
    check_key,
    did_you_mean,
    load_rules,
    parse_rules,
    recipient_id,
)
from nixseal.repo.state import State
from nixseal.util.atomic import write_atomic
from nixseal.util.paths import display_path
from nixseal.util.readfile import AGE_FILE_LIMIT, read_regular

# The tables that hold each kind of reader.
_TABLE = {ReaderKind.ADMIN: "admins", ReaderKind.HOST: "hosts", ReaderKind.USER: "users"}


class ReadersChange(NamedTuple):
    """What an edit did, for the verb to tell."""

    where: str  # the rules file, as messages show it
    done: str  # e.g. "removed host db1"
    unchanged: bool  # nothing to write: the rules already said so
    rules: Rules  # the rules as they are now
    rekey: list[str]  # secrets whose recipients changed: their files are stale
    rotate: list[str]  # secrets a removed reader could read
    unread: list[str]  # secrets no host or user reads any more (admins only)
    lost: list[str]  # the readers removed, e.g. "host db1"


Change = Callable[[Any, Rules], str]  # edits the document, returns `done`


class Preview(NamedTuple):
    """An edit checked but not written: the rules before, the new text and rules."""

    old: Rules
    text: str  # the file as it is
    done: str
    new_text: str
    new: Rules


def preview(path: Path, change: Change) -> Preview:
    """Apply change to the rules file at path in memory; check the result."""
    old = load_rules(path)
    where = display_path(old.path)
    if MISSING:
        raise UsageError(
            f"{where}: editing the rules needs the Python package 'tomlkit', which is not "
            "installed (pip install tomlkit); or edit the file by hand"
        )
    text = old.path.read_text(encoding="utf-8")
    try:
        doc = tomlkit.parse(text)
    except tomlkit.exceptions.ParseError as err:  # tomllib read it, tomlkit cannot
        raise RulesError(f"{where}: cannot edit this file ({err}); edit it by hand") from err
    done = change(doc, old)
    new_text = doc.as_string()
    if new_text == text:
        return Preview(old, text, done, text, old)
    try:
        new = parse_rules(new_text, old.path)
    except RulesError as err:
        msg = f"{where}: {done} would leave invalid rules ({err}); nothing changed"
        raise RulesError(msg) from None
    return Preview(old, text, done, new_text, new)


def write(planned: Preview) -> None:
    """Replace the rules file with a previewed edit, keeping its mode."""
    path = planned.old.path
    write_atomic(path, planned.new_text.encode("utf-8"), mode=path.stat().st_mode & 0o777)


def edit(path: Path, change: Change) -> ReadersChange:
    """Apply change to the rules file at path; check and write the result."""
    planned = preview(path, change)
    old, where, done = planned.old, display_path(planned.old.path), planned.done
    if planned.new_text == planned.text:
        return ReadersChange(where, done, True, old, [], [], [], [])
    write(planned)
    return _compare(old, planned.new, where, done)


def _compare(old: Rules, new: Rules, where: str, done: str) -> ReadersChange:
    """What the files say, not only the rules: a file already encrypted to the
    new readers needs no rekey, and only a file a removed reader was (or may
    have been) encrypted to needs new values."""
    state = State.load(new)
    before, after = drift.Inspector(old, state), drift.Inspector(new, state)
    rekey, rotate, unread = [], [], []
    lost: set[str] = set()
    for name in sorted(new.secrets):
        now = {r.label for r in new.recipients_for(name)}
        try:  # read once, inspected against both rules
            data: bytes | None = read_regular(new.file_for(name), AGE_FILE_LIMIT)
        except OSError:
            data = None  # missing or unreadable: nothing to rekey, nothing it gave away
        if data is not None and after.inspect(name, data).needs_rekey:
            rekey.append(name)
        if name in old.secrets:
            if data is not None:
                then = before.inspect(name, data)
                gone = {r.ref.label for r in then.readers if r.present is not False} - now
                if gone:
                    rotate.append(name)
                    lost |= gone
            had = {r.label for r in old.recipients_for(name)}
            if _read_by_more_than_admins(had) and not _read_by_more_than_admins(now):
                unread.append(name)
    return ReadersChange(where, done, False, new, rekey, rotate, unread, sorted(lost))


def _read_by_more_than_admins(labels: set[str]) -> bool:
    return any(not label.startswith(f"{ReaderKind.ADMIN} ") for label in labels)


# --- the edits --------------------------------------------------------------------------


def add_reader(kind: ReaderKind, name: str, key_argument: str, *, replace: bool) -> Change:
    """Add an admin, host or user, or with replace change its key."""

    def change(doc: Any, rules: Rules) -> str:
        where = display_path(rules.path)
        _check_name(kind, name, where)
        key = key_from_argument(key_argument)
        check_key(key, "KEY")
        current = rules.keys_of(kind)
        if name in current and not replace:
            raise UsageError(
                f"{where}: {kind} {name!r} already exists; pass --replace to change its key"
            )
        if name not in current and replace:
            raise UsageError(f"{where}: no {kind} {name!r} to replace; {_known(name, current)}")
        _refuse_shared(rules, kind, name, key, where)
        if name in current and recipient_id(current[name]) == recipient_id(key):
            return f"{kind} {name}: key unchanged"
        table = _table(doc, kind)
        if kind is ReaderKind.ADMIN:
            table[name] = key
        elif name in table:
            table[name]["key"] = key
        else:
            table[name] = _entry(table, key)
        return f"{'changed the key of' if name in current else 'added'} {kind} {name}"

    return change


def remove_reader(kind: ReaderKind, name: str) -> Change:
    """Remove an admin, host or user, and every mention of it."""

    def change(doc: Any, rules: Rules) -> str:
        where = display_path(rules.path)
        names = rules.keys_of(kind)
        if name not in names:
            raise UsageError(f"{where}: no {kind} {name!r}; {_known(name, names)}")
        if kind is ReaderKind.ADMIN and len(rules.admins) == 1:
            raise UsageError(
                f"{where}: {name} is the last admin, and only admins can rekey; "
                "add another first (nixseal admin add NAME KEY)"
            )
        del doc[_TABLE[kind]][name]
        mentions = []
        if kind is ReaderKind.HOST:
            for group, members in _tables(doc, "groups", arrays=True):
                if _drop(members, name):
                    mentions.append(f"group {group}")
        field = {ReaderKind.HOST: "hosts", ReaderKind.USER: "users"}.get(kind)
        count = 0
        if field is not None:
            for _, secret in _tables(doc, "secrets"):
                count += 1 if _drop(secret.get(field), name) else 0
        if count:
            mentions.append(f"{count} secret{'s' if count != 1 else ''}")
        also = f" (and from {' and '.join(mentions)})" if mentions else ""
        return f"removed {kind} {name}{also}"

    return change


def set_group(name: str, members: Sequence[str]) -> Change:
    """Make the group hold exactly members (host names or @groups)."""

    def change(doc: Any, rules: Rules) -> str:
        where = display_path(rules.path)
        if not IDENT.fullmatch(name):
            raise UsageError(f"{where}: [groups] {name}: bad name: use A-Z a-z 0-9 . _ -")
        for m in members:
            bare = m.removeprefix("@")
            known = rules.groups if m.startswith("@") else rules.hosts
            if bare not in known:
                kind = "group" if m.startswith("@") else "host"
                raise UsageError(
                    f"{where}: no {kind} {bare!r} for group {name}; {_known(bare, known)}"
                )
        wanted = list(dict.fromkeys(members))
        if name in rules.groups and list(doc["groups"][name]) == wanted:
            return f"group {name}: members unchanged"
        groups = doc.get("groups")
        if groups is None:
            groups = tomlkit.table()
            doc["groups"] = groups
        array = tomlkit.array()
        array.extend(wanted)
        groups[name] = array
        return f"{'set' if name in rules.groups else 'added'} group {name}"

    return change


def remove_group(name: str) -> Change:
    """Remove a group no secret and no other group names."""

    def change(doc: Any, rules: Rules) -> str:
        where = display_path(rules.path)
        if name not in rules.groups:
            raise UsageError(f"{where}: no group {name!r}; {_known(name, rules.groups)}")
        ref = f"@{name}"
        users = [f"group {g}" for g, m in _tables(doc, "groups", arrays=True) if ref in m]
        users += [f"secret {s}" for s, t in _tables(doc, "secrets") if ref in t.get("hosts", [])]
        if users:
            more = f" and {len(users) - 5} more" if len(users) > 5 else ""
            raise UsageError(
                f"{where}: group {name} is used by {', '.join(users[:5])}{more}; "
                "list their hosts instead first"
            )
        del doc["groups"][name]
        return f"removed group {name}"

    return change


# --- the document -----------------------------------------------------------------------


def _known(name: str, names: Iterable[str]) -> str:
    """The nearest names to a mistyped one, else all of them."""
    names = sorted(names)
    return did_you_mean(name, names) or f"known: {', '.join(names) or 'none'}"


def _check_name(kind: ReaderKind, name: str, where: str) -> None:
    if not IDENT.fullmatch(name):
        raise RulesError(f"{where}: [{_TABLE[kind]}] {name}: bad name: use A-Z a-z 0-9 . _ -")


def _refuse_shared(rules: Rules, kind: ReaderKind, name: str, key: str, where: str) -> None:
    """One key, one reader: `check` fails on a shared key, so never write one."""
    rid = recipient_id(key)
    for other_kind in ReaderKind:
        for other, other_key in rules.keys_of(other_kind).items():
            if (other_kind, other) != (kind, name) and recipient_id(other_key) == rid:
                raise UsageError(
                    f"{where}: that key is already {other_kind} {other}'s; "
                    "give each admin, host and user a key of its own"
                )


def _table(doc: Any, kind: ReaderKind) -> Any:
    table = doc.get(_TABLE[kind])
    if table is None:
        # [hosts.web1] headers, not an empty [hosts] one
        table = tomlkit.table(is_super_table=kind is not ReaderKind.ADMIN)
        doc[_TABLE[kind]] = table
    return table


def _entry(table: Any, key: str) -> Table | InlineTable:
    """A { key = ... } entry written as its neighbours are: inline or a table."""
    if any(isinstance(v, InlineTable) for v in table.values()):
        inline = tomlkit.inline_table()
        inline["key"] = key
        return inline
    entry = tomlkit.table()
    entry["key"] = key
    entry.add(tomlkit.nl())  # the blank line every [hosts.x] table of init has
    return entry


def _tables(doc: Any, top: str, *, arrays: bool = False) -> list[tuple[str, Any]]:
    """(name, value) of each entry of a top-level table: tables, or arrays."""
    container = doc.get(top)
    if container is None or isinstance(container, AoT):
        return []
    wanted = Array if arrays else (Table, InlineTable)
    return [(str(k), v) for k, v in container.items() if isinstance(v, wanted)]


def _drop(names: Any, name: str) -> int:
    """Remove every plain mention of name from an array; how many there were."""
    if not isinstance(names, Array):
        return 0
    count = 0
    while name in names:
        names.remove(name)
        count += 1
    return count
