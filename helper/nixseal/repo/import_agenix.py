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


def evaluate(path: Path) -> dict[str, Any]:
    where = display_path(path)
    if shutil.which("nix-instantiate") is None:
        raise UsageError(f"{where}: importing needs nix-instantiate (Nix) on PATH")
    proc = subprocess.run(
        ["nix-instantiate", "--eval", "--strict", "--json", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        lines = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip()]
        msg = next((ln for ln in lines if ln.startswith("error:")), lines[-1] if lines else "")
        raise RulesError(f"{where}: nix-instantiate failed: {msg}")
    data = json.loads(proc.stdout)
    if not isinstance(data, dict):
        raise RulesError(f"{where}: does not evaluate to an attribute set of secrets")
    return data


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
    for rid, key in seen.items():
        comment = key.split()[2] if len(key.split()) > 2 else ""
        is_ssh = key.startswith("ssh-")
        login, at, _ = comment.partition("@")
        if rid in machines or (is_ssh and comment.startswith("root@")):
            role = "host"
        elif rid in every:
            role = "admin"
        elif rid in people or not is_ssh or (at and login != "root"):
            role = "user"  # a person's key: in a users list, an age key, or alice@laptop
        else:
            role = "host"
        table = {"admin": roles.admins, "host": roles.hosts, "user": roles.users}[role]
        name = _name_from(key, hints.names, taken, role)
        table[name] = key
        roles.role_of[rid] = (role, name)
    return roles


def render(roles: Roles, secrets: Mapping[str, list[str]], armor: Mapping[str, bool]) -> str:
    out = [
        "# Imported from agenix. Review the roles: root@<host> keys and keys in lists",
        "# named like systems/hosts became hosts; other keys listed for every secret",
        "# admins; people's keys (users/admins lists, age keys, name@machine) users;",
        "# other ssh keys hosts.",
        "version = 1",
        "",
        "[admins]",
    ]
    out += [f"{toml_key(n)} = {toml_string(k)}" for n, k in roles.admins.items()]
    for table, entries in (("hosts", roles.hosts), ("users", roles.users)):
        for n, k in entries.items():
            out += ["", f"[{table}.{toml_key(n)}]", f"key = {toml_string(k)}"]
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


def _parse(data: dict[str, Any], where: str) -> tuple[dict[str, list[str]], dict[str, bool]]:
    secrets: dict[str, list[str]] = {}
    armor: dict[str, bool] = {}
    for attr, value in data.items():
        if not attr.endswith(".age"):
            print(f"warning: {where}: {attr!r} does not end in .age; skipped", file=sys.stderr)
            continue
        name = check_secret_name(attr[: -len(".age")], where)
        keys = value.get("publicKeys") if isinstance(value, dict) else None
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys) or not keys:
            raise RulesError(f"{where}: {attr}: publicKeys must be a non-empty list of strings")
        secrets[name] = [" ".join(k.split()) for k in keys]
        for key in secrets[name]:
            crypto.parse_recipient(key, f"{where}: {attr}: publicKeys")
        armor[name] = bool(value.get("armor", False))
    if not secrets:
        raise RulesError(f"{where}: no secrets found")
    return secrets, armor


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


def import_rules(source: Path, output: Path) -> Imported:
    """Write the rules guessed from the agenix file source to output (never
    replacing a file), and record the files that agree with them."""
    where = display_path(source)
    if output.exists():
        raise UsageError(f"{display_path(output)}: already exists; not overwritten")
    secrets, armor = _parse(evaluate(source), where)
    try:
        hints = read_hints(read_regular(source, TEXT_LIMIT).decode())
    except (OSError, UnicodeDecodeError):
        hints = Hints()
    roles = guess_roles(secrets, hints)
    text = render(roles, secrets, armor)
    rules = parse_rules(text, output.absolute())
    write_atomic(output, text.encode("utf-8"))
    state = State.load(rules)
    recorded, unverified = record_existing(state, secrets)
    state.save()
    return Imported(rules, recorded, unverified)
