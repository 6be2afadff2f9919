"""An agenix secrets.nix turned into the rules (`nixseal import-agenix`).

The file is evaluated with ``nix-instantiate --eval --strict --json``; the
existing ``.age`` files stay as they are. agenix knows only key lists, so
the roles are guessed (docs/cli.md explains the guess; review the result):
a key with the comment ``root@<host>``, or in a ``let`` list named like
``systems`` or ``hosts``, is a host; else a key listed for every secret is
an admin; else a person's key (in a list named like ``users`` or
``admins``, an age key, or an ssh key with a ``name@machine`` comment) is
a user, and any other ssh key a host. Names come from the ``let`` bindings
of secrets.nix when a key is written there literally, else from the key's
comment. Each file whose header agrees with
its key list is recorded in the state file, so ``nixseal check`` can vouch
for its age recipients too.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from nixseal.age import crypto, header
from nixseal.errors import CryptoError, RulesError, UsageError
from nixseal.repo.rules import (
    RULES_DIR,
    RULES_NAME,
    Rules,
    check_secret_name,
    parse_rules,
    recipient_id,
    toml_key,
    toml_string,
)
from nixseal.repo.state import State
from nixseal.util.atomic import write_atomic
from nixseal.util.paths import display_path
from nixseal.util.readfile import AGE_FILE_LIMIT, TEXT_LIMIT, read_regular

_BINDING = re.compile(r"([A-Za-z_][A-Za-z0-9_'-]*)\s*=\s*\"((?:ssh-ed25519|ssh-rsa|age1)[^\"]*)\"")
# `users = [ alice bob ];`: a list of bound names, as agenix's README writes them
_LIST = re.compile(r"([A-Za-z_][A-Za-z0-9_'-]*)\s*=\s*\[([A-Za-z0-9_'\s-]*)\]")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_'-]*")
# What a list's name says about its members.
_PEOPLE_LISTS = re.compile(r"(?i).*(user|admin|people|person|human|dev|member|team).*")
_HOST_LISTS = re.compile(r"(?i).*(system|host|machine|server|node|computer).*")
_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Hints:
    """What secrets.nix's text says about keys, beyond the evaluated lists."""

    names: Mapping[str, str] = field(default_factory=dict)  # key -> let-bound name
    people: frozenset[str] = frozenset()  # keys in a list named like users/admins
    machines: frozenset[str] = frozenset()  # keys in a list named like systems/hosts


def read_hints(text: str) -> Hints:
    names: dict[str, str] = {}
    key_of: dict[str, str] = {}
    for m in _BINDING.finditer(text):
        key = " ".join(m.group(2).split())  # as _parse normalises the evaluated keys
        names.setdefault(key, m.group(1))
        key_of[m.group(1)] = key
    people: set[str] = set()
    machines: set[str] = set()
    for m in _LIST.finditer(text):
        members = {key_of[w] for w in _WORD.findall(m.group(2)) if w in key_of}
        if _HOST_LISTS.fullmatch(m.group(1)):
            machines |= members
        elif _PEOPLE_LISTS.fullmatch(m.group(1)):
            people |= members
    return Hints(names, frozenset(people), frozenset(machines - people))


@dataclass
class Roles:
    admins: dict[str, str] = field(default_factory=dict)  # name -> key
    hosts: dict[str, str] = field(default_factory=dict)
    users: dict[str, str] = field(default_factory=dict)
    role_of: dict[str, tuple[str, str]] = field(default_factory=dict)  # key id -> (role, name)
    # (role, name, why, sure): each guess, and whether it needs no review
    guesses: list[tuple[str, str, str, bool]] = field(default_factory=list)


def evaluate(path: Path) -> dict[str, Any]:
    where = display_path(path)
    if shutil.which("nix-instantiate") is None:
        raise UsageError(f"{where}: importing needs nix-instantiate (Nix) on PATH")
    # No store: evaluating a list of keys needs none, and a normal user on a
    # machine whose Nix has no daemon (Debian's nix-bin) cannot open one.
    proc = subprocess.run(
        ["nix-instantiate", "--eval", "--strict", "--json", "--store", "dummy://", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        detail = _nix_error(proc.stderr) or f"exit status {proc.returncode}"
        raise RulesError(f"{where}: nix-instantiate failed: {detail}")
    data = json.loads(proc.stdout)
    if not isinstance(data, dict):
        raise RulesError(f"{where}: does not evaluate to an attribute set of secrets")
    return data


def _nix_error(stderr: str) -> str:
    """Nix's error line, with the place it names (at FILE:LINE:COL)."""
    plain = re.sub(r"\x1b\[[0-9;]*m", "", stderr)  # Nix colours its errors
    lines = [ln.strip() for ln in plain.splitlines() if ln.strip()]
    first = next((i for i, ln in enumerate(lines) if ln.startswith("error:")), None)
    if first is None:
        return lines[-1] if lines else ""
    at = next((ln for ln in lines[first + 1 :] if ln.startswith("at ")), "")
    return f"{lines[first]} ({at.rstrip(':')})" if at else lines[first]


def _name_from(key: str, bindings: Mapping[str, str], taken: set[str], role: str) -> str:
    fields = key.split()
    comment = fields[2] if len(fields) > 2 else ""
    base = bindings.get(key)
    if base is None and comment:
        user, _, host = comment.partition("@")
        base = host if user == "root" and host else user
    name = _NAME_CHARS.sub("-", base or "").strip("-")
    if not name:  # nothing to go by: the first free user1, user2, ...
        n = 1
        while f"{role}{n}" in taken:
            n += 1
        name = f"{role}{n}"
    candidate, i = name, 2
    while candidate in taken:
        candidate, i = f"{name}-{i}", i + 1
    taken.add(candidate)
    return candidate


def guess_roles(secrets: Mapping[str, list[str]], hints: Hints) -> Roles:
    """Decide who is an admin, a host or a user (see the module doc)."""
    roles = Roles()
    taken: set[str] = set()
    every = set.intersection(*(set(map(recipient_id, k)) for k in secrets.values()))
    seen: dict[str, str] = {}
    for keys in secrets.values():
        for key in keys:
            seen.setdefault(recipient_id(key), key)
    machines = {recipient_id(k) for k in hints.machines}
    people = {recipient_id(k) for k in hints.people}
    # When every secret has the same readers, "listed for every secret" tells
    # admins from nobody: such guesses are the weakest.
    alike = len({frozenset(map(recipient_id, k)) for k in secrets.values()}) == 1
    for rid, key in seen.items():
        role, why, sure = _role(key, rid, _Clues(every, machines, people, alike))
        table = {"admin": roles.admins, "host": roles.hosts, "user": roles.users}[role]
        name = _name_from(key, hints.names, taken, role)
        table[name] = key
        roles.role_of[rid] = (role, name)
        roles.guesses.append((role, name, why, sure))
    return roles


class _Clues(NamedTuple):
    every: set[str]  # key ids listed for every secret
    machines: set[str]  # in a list named like hosts
    people: set[str]  # in a list named like users or admins
    alike: bool  # every secret has the same readers


def _role(key: str, rid: str, clues: _Clues) -> tuple[str, str, bool]:
    """(role, why, sure) of one key: the first clue that applies (see the module doc)."""
    comment = key.split()[2] if len(key.split()) > 2 else ""
    is_ssh = key.startswith("ssh-")
    login, at, _ = comment.partition("@")
    every = rid in clues.every
    found = [
        (rid in clues.machines, "host", "in a list named like hosts", True),
        (is_ssh and comment.startswith("root@"), "host", f"its comment is {comment}", True),
        (every and clues.alike, "admin", "every secret has the same readers", False),
        (every, "admin", "listed for every secret, maybe through a shared list", False),
        (rid in clues.people, "user", "in a list named like users", True),
        (not is_ssh, "user", "an age key, which hosts rarely have", False),
        (bool(at) and login != "root", "user", f"its comment is {comment}", True),
    ]
    fallback = ("host", "an ssh key with nothing else to go by", False)
    return next(((role, why, sure) for ok, role, why, sure in found if ok), fallback)


def render(roles: Roles, secrets: Mapping[str, list[str]], armor: Mapping[str, bool]) -> str:
    out = [
        "# Imported from agenix. Review the roles: root@<host> keys and keys in lists",
        "# named like systems/hosts became hosts; other keys listed for every secret",
        "# admins; people's keys (users/admins lists, age keys, name@machine) users;",
        "# other ssh keys hosts. Each entry says why; REVIEW marks the guesses to check.",
        "version = 1",
        "",
        "[admins]",
    ]
    note = {(role, name): _note(why, sure) for role, name, why, sure in roles.guesses}
    out += [
        f"{toml_key(n)} = {toml_string(k)}  {note['admin', n]}" for n, k in roles.admins.items()
    ]
    for table, role, entries in (("hosts", "host", roles.hosts), ("users", "user", roles.users)):
        for n, k in entries.items():
            out += ["", f"[{table}.{toml_key(n)}]  {note[role, n]}", f"key = {toml_string(k)}"]
    for name, keys in secrets.items():
        hosts, users = [], []
        for key in keys:
            role, who = roles.role_of[recipient_id(key)]
            if role == "host":
                hosts.append(who)
            elif role == "user":
                users.append(who)
        out += ["", f"[secrets.{toml_string(name)}]"]
        out.append(f"hosts = [{', '.join(toml_string(h) for h in dict.fromkeys(hosts))}]")
        if users:
            out.append(f"users = [{', '.join(toml_string(u) for u in dict.fromkeys(users))}]")
        if armor.get(name):
            out.append("armor = true")
    return "\n".join(out) + "\n"


class Entry(NamedTuple):
    """One secret of secrets.nix, and where its file is and must go."""

    attr: str  # as secrets.nix names it: "secrets/x.age"
    name: str
    keys: list[str]
    armor: bool
    found: Path  # where agenix keeps the file: its name, beside secrets.nix
    wanted: Path  # where the rules expect it: <name>.age beside the rules


def rules_dir_for(source: Path, output: Path | None) -> Path:
    """Where the rules go: beside -o, else secrets.nix's own directory when it
    is named secrets/ (agenix's usual layout), else secrets/ beside it (a
    secrets.nix at the repository root), where nixseal looks for them."""
    if output is not None:
        return output.absolute().parent
    here = source.absolute().parent
    return here if here.name == RULES_DIR else here / RULES_DIR


def _note(why: str, sure: bool) -> str:
    return f"# guessed: {why}" + ("" if sure else "; REVIEW")


def _parse(data: dict[str, Any], where: str, here: Path, rules_dir: Path) -> list[Entry]:
    entries: list[Entry] = []
    prefix = os.path.relpath(rules_dir, here)
    for attr, value in data.items():
        if not attr.endswith(".age"):
            print(f"warning: {where}: {attr!r} does not end in .age; skipped", file=sys.stderr)
            continue
        # agenix names files relative to secrets.nix: with the rules in
        # secrets/ beside it, "secrets/x.age" is the secret x, in place.
        found = Path(os.path.normpath(here / attr))
        rel = os.path.normpath(attr)
        if prefix != "." and rel.startswith(prefix + "/"):
            rel = rel[len(prefix) + 1 :]
        name = check_secret_name(rel[: -len(".age")], where)
        keys = value.get("publicKeys") if isinstance(value, dict) else None
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys) or not keys:
            raise RulesError(f"{where}: {attr}: publicKeys must be a non-empty list of strings")
        normal = [" ".join(k.split()) for k in keys]
        for key in normal:
            crypto.parse_recipient(key, f"{where}: {attr}: publicKeys")
        armor = bool(value.get("armor", False))
        entries.append(Entry(attr, name, normal, armor, found, rules_dir / f"{name}.age"))
    if not entries:
        raise RulesError(f"{where}: no secrets found")
    taken: dict[str, str] = {}
    for e, attr in zip(entries, [a for a in data if a.endswith(".age")], strict=True):
        if e.name in taken:
            raise RulesError(
                f"{where}: {taken[e.name]} and {attr} would both be the secret {e.name!r}"
            )
        taken[e.name] = attr
    return entries


def record_existing(state: State, secrets: Mapping[str, list[str]]) -> tuple[int, list[str]]:
    """Record files whose header matches their key list; the others' names."""
    recorded, unverified = 0, []
    for name, keys in secrets.items():
        path = state.rules.dir / f"{name}.age"
        try:
            hdr = header.parse_header(read_regular(path, AGE_FILE_LIMIT), str(path))
        except (OSError, CryptoError):
            unverified.append(name)
            continue
        ssh_tags = {header.ssh_key_tag(k) for k in keys if k.startswith("ssh-")}
        n_age = sum(1 for k in keys if k.startswith("age1") and "1" not in k[4:])
        if hdr.ssh_tags == ssh_tags and hdr.x25519_count == n_age:
            state.record_encryption(name, keys, mac=hdr.mac)
            recorded += 1
        else:
            unverified.append(name)
    return recorded, unverified


class Imported(NamedTuple):
    rules: Rules  # as written to the output file
    recorded: int  # files whose header agrees with their key list, now in the state file
    unverified: list[str]  # secrets whose file is missing or has other recipients
    moves: list[tuple[Path, Path]]  # (from, to): files still to move where the rules expect them
    moved: list[tuple[Path, Path]]  # files moved (with move=True)
    review: list[str]  # guesses to check: "alice (admin: listed for every secret)"


def import_rules(source: Path, output: Path | None, *, move: bool = False) -> Imported:
    """Write the rules guessed from the agenix file source (never replacing a
    file), move the files where they expect them if asked, and record the
    files that agree with them."""
    where = display_path(source)
    rules_dir = rules_dir_for(source, output)
    output = output or rules_dir / RULES_NAME
    if output.exists():
        raise UsageError(f"{display_path(output)}: already exists; not overwritten")
    entries = _parse(evaluate(source), where, source.absolute().parent, rules_dir)
    moves = [(e.found, e.wanted) for e in entries if e.found != e.wanted and e.found.exists()]
    for _, to in moves:
        if to.exists():
            raise UsageError(f"{display_path(to)}: already exists; cannot move a file there")
    secrets = {e.name: e.keys for e in entries}
    try:
        hints = read_hints(read_regular(source, TEXT_LIMIT).decode())
    except (OSError, UnicodeDecodeError):
        hints = Hints()
    roles = guess_roles(secrets, hints)
    text = render(roles, secrets, {e.name: e.armor for e in entries})
    rules = parse_rules(text, output.absolute())
    write_atomic(output, text.encode("utf-8"))
    moved = [_move(a, b) for a, b in moves] if move else []
    state = State.load(rules)
    recorded, unverified = record_existing(state, secrets)
    state.save()
    review = [f"{name} ({role}: {why})" for role, name, why, sure in roles.guesses if not sure]
    return Imported(rules, recorded, unverified, [] if move else moves, moved, review)


def _move(source: Path, to: Path) -> tuple[Path, Path]:
    """Move a file as `git mv` would (staged, when git tracks it), else rename it."""
    to.parent.mkdir(parents=True, exist_ok=True)
    tracked = shutil.which("git") is not None and (
        subprocess.run(
            ["git", "-C", str(source.parent), "ls-files", "--error-unmatch", source.name],
            capture_output=True,
            check=False,
        ).returncode
        == 0
    )
    if tracked:
        proc = subprocess.run(
            ["git", "-C", str(source.parent), "mv", source.name, str(to)],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            why = proc.stderr.strip().splitlines()[-1:] or [f"exit {proc.returncode}"]
            raise UsageError(f"git mv {display_path(source)} {display_path(to)}: {why[0]}")
    else:
        try:
            source.rename(to)
        except OSError as err:
            raise UsageError(
                f"{display_path(source)}: cannot move to {display_path(to)}: {err.strerror}"
            ) from err
    return source, to
