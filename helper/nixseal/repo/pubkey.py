"""Hosts in the rules: a host's public key from what admins have at hand,
and the rules file edited as text (`nixseal host add`).

KEY is a key string, a ``.pub`` file, or ``ssh-keyscan`` output (a file,
or ``-`` for stdin). The rules file is edited as text, so comments and
layout survive, and the result is parsed before it replaces the file.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import NamedTuple

from nixseal.errors import RulesError, UsageError
from nixseal.repo.rules import check_key, load_rules, parse_rules, toml_key, toml_string
from nixseal.util.atomic import write_atomic
from nixseal.util.keytext import PRIVATE_KEY, looks_private
from nixseal.util.paths import display_path
from nixseal.util.readfile import TEXT_LIMIT, read_regular

# age can encrypt to these ssh key types only (no ECDSA).
_USABLE = ("ssh-ed25519", "ssh-rsa")
# What a key type looks like (ecdsa-sha2-nistp256, sk-ssh-ed25519@openssh.com):
# only such words are quoted back, never a line of a file that may be a secret.
_KEY_TYPE = re.compile(r"(ssh|ecdsa|sk)-[a-z0-9@.-]+")
_HOST_NAME = re.compile(r"[A-Za-z0-9._-]+")


def _key_from_text(text: str, where: str) -> str:
    found: dict[str, str] = {}
    others: list[str] = []
    if looks_private(text):
        raise _private(where)
    for raw in text.splitlines():
        fields = raw.split()
        if not fields or fields[0].startswith("#"):
            continue
        if fields[0] in _USABLE and len(fields) >= 2:
            found.setdefault(fields[0], " ".join(fields))
        elif len(fields) >= 3 and fields[1] in _USABLE:
            # ssh-keyscan: "<host> <type> <base64>"; the host becomes the comment
            found.setdefault(fields[1], f"{fields[1]} {fields[2]} {fields[0]}")
        elif fields[0].startswith("age1") and len(fields) == 1:
            found.setdefault("age", fields[0])
        else:
            others += [f for f in fields[:2] if _KEY_TYPE.fullmatch(f)][:1]
    for kind in ("ssh-ed25519", "age", "ssh-rsa"):
        if kind in found:
            return found[kind]
    hint = f" (found {', '.join(sorted(set(others)))[:60]})" if others else ""
    raise UsageError(f"{where}: no ssh-ed25519, ssh-rsa or age1 key{hint}")


def _private(where: str) -> UsageError:
    return UsageError(f"{where}: {PRIVATE_KEY}; give the public key (the .pub file) instead")


def key_from_argument(value: str) -> str:
    if value == "-":
        try:
            return _key_from_text(sys.stdin.read(), "stdin")
        except UnicodeDecodeError as err:
            raise UsageError("stdin: not a public key (not text)") from err
    if value.startswith(("ssh-", "age1")) or looks_private(value):
        return _key_from_text(value, "KEY")
    path = Path(value)
    try:
        text = read_regular(path, TEXT_LIMIT).decode()
    except OSError as err:
        raise UsageError(
            f"{value}: not a key string, and cannot read it as a file: {err.strerror}"
        ) from err
    except UnicodeDecodeError as err:
        raise UsageError(f"{value}: not a public key file (not text)") from err
    return _key_from_text(text, value)


def _header_re(name: str) -> re.Pattern[str]:
    names = "|".join(re.escape(n) for n in {name, toml_string(name)})
    return re.compile(rf"^[ \t]*\[[ \t]*hosts[ \t]*\.[ \t]*(?:{names})[ \t]*\][ \t]*(#.*)?$", re.M)


def replace_key(text: str, name: str, key: str, where: str) -> str:
    m = _header_re(name).search(text)
    if m is not None:
        nxt = re.compile(r"^[ \t]*\[", re.M).search(text, m.end())
        end = nxt.start() if nxt else len(text)
        body = text[m.end() : end]
        line = re.compile(r"^([ \t]*key[ \t]*=[ \t]*)(\"[^\"\n]*\"|'[^'\n]*')", re.M)
        new_body, n = line.subn(lambda k: k.group(1) + toml_string(key), body, count=1)
        if n == 1:
            return text[: m.end()] + new_body + text[end:]
    raise UsageError(
        f"{where}: cannot find a [hosts.{name}] table with a key line to change; "
        "edit the key by hand"
    )


def add_host(text: str, name: str, key: str) -> str:
    sep = "" if not text or text.endswith("\n\n") else ("\n" if text.endswith("\n") else "\n\n")
    return f"{text}{sep}[hosts.{toml_key(name)}]\nkey = {toml_string(key)}\n"


class HostChange(NamedTuple):
    """What set_host did to the rules file (where, as messages show it)."""

    where: str
    existed: bool  # the host was there: its key was changed (or already equal)
    unchanged: bool  # the key given is the one the rules hold
    affected: list[str]  # the secrets encrypted to the host, now stale


def set_host(path: Path, name: str, key_argument: str, *, replace: bool) -> HostChange:
    """Add a host to the rules file at path, or with replace change its key."""
    rules = load_rules(path)
    where = display_path(rules.path)
    if not _HOST_NAME.fullmatch(name):  # as the parser would say, before any key work
        raise RulesError(f"{where}: [hosts] {name}: bad name: use A-Z a-z 0-9 . _ -")
    key = key_from_argument(key_argument)
    check_key(key, "KEY")
    text = rules.path.read_text(encoding="utf-8")
    exists = name in rules.hosts
    if exists and not replace:
        raise UsageError(f"{where}: host {name!r} already exists; pass --replace to change its key")
    if exists and rules.hosts[name].key.split()[:2] == key.split()[:2]:
        return HostChange(where, existed=True, unchanged=True, affected=[])
    new_text = replace_key(text, name, key, where) if exists else add_host(text, name, key)
    new_rules = parse_rules(new_text, rules.path)
    if name not in new_rules.hosts or new_rules.hosts[name].key != key:
        raise UsageError(f"{where}: could not add host {name!r} safely; edit the file by hand")
    write_atomic(rules.path, new_text.encode("utf-8"), mode=rules.path.stat().st_mode & 0o777)
    affected = sorted(s.name for s in new_rules.secrets.values() if name in s.hosts)
    return HostChange(where, existed=exists, unchanged=False, affected=affected)
