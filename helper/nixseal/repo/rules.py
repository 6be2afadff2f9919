"""The rules file, ``secrets/secrets.toml``: who may read which secret.

Parsed once into frozen dataclasses; every mistake is a RulesError naming
the file, the table and the key, so an admin can fix it without reading
code. Key strings are validated through crypto.parse_recipient here, at
load time, so no verb meets a bad key half way through its work.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import json
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nixseal.errors import CryptoError, PrivateKeyError, RulesError
from nixseal.models.repo import Generator, GeneratorKind, ReaderKind
from nixseal.repo.generator_rules import KEY_PAIR_KINDS, GeneratorParser
from nixseal.util.names import is_segment
from nixseal.util.paths import display_path
from nixseal.util.readfile import TEXT_LIMIT, read_regular

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]

RULES_DIR = "secrets"
RULES_NAME = "secrets.toml"
# Names of admins, hosts, users and groups.
IDENT = re.compile(r"[A-Za-z0-9._-]+")
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_DURATION = re.compile(r"\s*(\d+)\s*([hdwy])\s*")
_DURATION_UNITS = {"h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}
# A file name (segment) may have at most 255 bytes on Linux file systems;
# the last segment also carries ".age".
_NAME_MAX = 255
# What to do about a key string pyrage refuses (a typo, a cut-off paste).
KEY_FIX = (
    "give the whole public key: age1..., or ssh-ed25519 AAAA... / ssh-rsa AAAA... "
    "(the line of the .pub file)"
)


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """ "did you mean 'a' or 'b'?" for the known names nearest to a mistyped
    one, or "" when none is near."""
    import difflib

    close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.6)
    return f"did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def _unknown(kind: str, name: str, known: Iterable[str], otherwise: str) -> str:
    return f"unknown {kind} {name!r}; {did_you_mean(name, known) or otherwise}"


def check_key(key: str, where: str) -> None:
    """Refuse a key string age cannot encrypt to, saying how to give one."""
    from nixseal.age import crypto

    try:
        crypto.parse_recipient(key, where)
    except PrivateKeyError:
        raise  # its own message says what to give instead
    except CryptoError as err:
        raise CryptoError(f"{err}; {KEY_FIX}") from err


_TOP_KEYS = ("version", "admins", "hosts", "users", "groups", "secrets")
_SECRET_KEYS = (
    "hosts",
    "users",
    "generator",
    "source",
    "push",
    "rotate_after",
    "armor",
    "format",
    "keys",
)
# What an age file may hold: its value as it is (binary), or a document of
# many values that hosts take one key of each (docs/daily-work.md).
FORMATS = ("binary", "json", "yaml", "toml", "dotenv", "ini")
# Generators that may fill one key of a document: a single text value.
KEY_KINDS = ("password", "hex", "base64")


def document_problem(fmt: str, value: bytes) -> str | None:
    """Why value is not a document of format fmt (a secret's `format`), or None."""
    if fmt == "binary":
        return None
    from nixseal.util import document

    try:
        document.parse(fmt, value)
    except document.DocumentError as err:
        return str(err)
    return None


@dataclass(frozen=True)
class Host:
    name: str
    key: str


@dataclass(frozen=True)
class User:
    name: str
    key: str


@dataclass(frozen=True)
class SecretRule:
    name: str
    hosts: tuple[str, ...]  # groups resolved, order of first mention
    users: tuple[str, ...]
    generator: Generator | None = None
    source: str | None = None  # op://vault/item/[section/]field
    rotate_after: datetime.timedelta | None = None
    armor: bool = False
    # op:// field that `rotate --push` writes a generated value to
    push: str | None = None
    # A further secret output of another secret's generator: that secret's
    # name (rotating it gives this one its value) and the output's name.
    part_of: str | None = None
    output: str | None = None
    format: str = "binary"  # one of FORMATS: what the age file holds
    # A document's keys that `rotate` fills in, each with its generator:
    # (key as written in the rules, e.g. "db/password"; its generator).
    key_generators: tuple[tuple[str, Generator], ...] = ()


@dataclass(frozen=True)
class RecipientRef:
    """One reader of a secret: an admin, a host or a user, and its key."""

    kind: ReaderKind
    name: str
    key: str

    @property
    def id(self) -> str:
        return recipient_id(self.key)

    @property
    def label(self) -> str:
        return f"{self.kind} {self.name}"


@dataclass(frozen=True)
class Rules:
    path: Path  # the rules file, absolute
    dir: Path  # where <name>.age files live: the rules file's directory
    admins: Mapping[str, str]
    hosts: Mapping[str, Host]
    users: Mapping[str, User]
    groups: Mapping[str, tuple[str, ...]]
    secrets: Mapping[str, SecretRule]
    _parsed: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def secret(self, name: str) -> SecretRule:
        rule = self.secrets.get(name)
        if rule is None:
            try:
                check_secret_name(name, "")
            except RulesError as err:  # a name given on the command line
                raise RulesError(str(err).removeprefix(": ")) from err
            where = display_path(self.path)
            hint = did_you_mean(name, self.secrets)
            if hint:
                raise RulesError(f"{where}: no secret {name!r}; {hint}")
            table = f"[secrets.{toml_string(name)}]"
            raise RulesError(f"{where}: no secret {name!r}; add a {table} table to the rules")
        return rule

    def select(self, names: Sequence[str], *, default_all: bool = True) -> list[str]:
        """Names given on the command line, each checked, without repeats;
        none given: every secret, sorted (or none, without default_all)."""
        chosen = list(dict.fromkeys(names))
        for n in chosen:
            self.secret(n)
        return chosen or (sorted(self.secrets) if default_all else [])

    def keys_of(self, kind: ReaderKind) -> dict[str, str]:
        """name -> key of every admin, host or user (kind)."""
        if kind is ReaderKind.ADMIN:
            return dict(self.admins)
        entries = self.hosts if kind is ReaderKind.HOST else self.users
        return {n: e.key for n, e in entries.items()}

    def recipients_for(self, name: str) -> tuple[RecipientRef, ...]:
        """Admins, then hosts, then users of a secret; one entry per key."""
        rule = self.secret(name)
        refs: list[RecipientRef] = []
        seen: set[str] = set()

        def add(kind: ReaderKind, who: str, key: str) -> None:
            rid = recipient_id(key)
            if rid not in seen:
                seen.add(rid)
                refs.append(RecipientRef(kind, who, key))

        for admin, key in self.admins.items():
            add(ReaderKind.ADMIN, admin, key)
        for host in rule.hosts:
            add(ReaderKind.HOST, host, self.hosts[host].key)
        for user in rule.users:
            add(ReaderKind.USER, user, self.users[user].key)
        return tuple(refs)

    def parsed_recipient(self, key: str) -> Any:
        """The crypto.Recipient for a key string of these rules (parsed once)."""
        found = self._parsed.get(key)
        if found is None:
            from nixseal.age import crypto

            found = crypto.parse_recipient(key, display_path(self.path))
        return found

    def file_for(self, name: str) -> Path:
        self.secret(name)
        return self.dir / f"{name}.age"

    def outputs_of(self, name: str) -> tuple[dict[str, str], dict[str, str]]:
        """Where a generator's outputs go: output -> the secret whose .age
        file holds it, and output -> the name whose .pub file holds it. The
        first secret output is the secret itself, the first public one
        <name>.pub; each further one is <name>.<output>."""
        gen = self.secret(name).generator
        if gen is None:
            return {}, {}
        if gen.kind is GeneratorKind.COMMAND:
            secret = [o for o in gen.outputs if o not in gen.public]
            public = list(gen.public)
        else:
            secret = ["value"]
            public = ["hash"] if gen.public else ["public"] if gen.kind in KEY_PAIR_KINDS else []
        return (
            {o: name if i == 0 else f"{name}.{o}" for i, o in enumerate(secret)},
            {o: name if i == 0 else f"{name}.{o}" for i, o in enumerate(public)},
        )

    def public_names(self) -> list[str]:
        """Every name with a committed <name>.pub, sorted."""
        return sorted(p for n in self.secrets for p in self.outputs_of(n)[1].values())

    def maker(self, name: str) -> str:
        """The secret whose generator makes name's value (itself, or the
        secret it is an output of)."""
        return self.secret(name).part_of or name

    def derived_from(self, name: str) -> tuple[str, ...]:
        """The secrets name's value is made from (its generator's inputs)."""
        gen = self.secret(self.maker(name)).generator
        return gen.inputs if gen is not None else ()

    def dependents(self, name: str) -> list[str]:
        """Every generator secret made, directly or not, from name's value,
        in an order that rotates inputs before what is made from them."""
        base = self.maker(name)
        users: dict[str, list[str]] = {}
        for n in sorted(self.secrets):
            for i in self.derived_from(n) if self.secrets[n].part_of is None else ():
                users.setdefault(self.maker(i), []).append(n)
        reached: set[str] = set()
        stack = [base]
        while stack:
            for d in users.get(stack.pop(), []):
                if d not in reached:
                    reached.add(d)
                    stack.append(d)
        return [n for n in self.in_order(sorted(reached)) if n != base]

    def in_order(self, names: Iterable[str]) -> list[str]:
        """names, each after every one of them it is made from."""
        wanted = list(dict.fromkeys(names))
        chosen = set(wanted)
        out: list[str] = []
        done: set[str] = set()

        def visit(n: str) -> None:
            if n in done:
                return
            done.add(n)
            for i in self.derived_from(n):
                if self.maker(i) in chosen:
                    visit(self.maker(i))
            out.append(n)

        for n in wanted:
            visit(n)
        return out

    def name_for(self, file: Path) -> str | None:
        """The secret a path inside the rules dir stands for, if any."""
        try:
            rel = file.resolve().relative_to(self.dir)
        except ValueError:
            return None
        text = rel.as_posix()
        if not text.endswith(".age"):
            return None
        name = text[: -len(".age")]
        return name if name in self.secrets else None


def recipient_id(key: str) -> str:
    """A stable identifier of a recipient key, as recorded in the state file.

    age recipients are short and already canonical: the string itself. ssh
    keys are long and carry a free comment: their OpenSSH SHA256
    fingerprint, the one ``ssh-keygen -lf`` prints.
    """
    fields = key.split()
    if len(fields) >= 2 and fields[0].startswith("ssh-"):
        try:
            blob = base64.b64decode(fields[1], validate=True)
        except binascii.Error:
            return " ".join(fields[:2])
        digest = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
        return f"SHA256:{digest}"
    return key.strip()


def toml_string(value: str) -> str:
    # A JSON string is a valid TOML basic string (same escapes).
    return json.dumps(value)


def toml_key(name: str) -> str:
    """name as a TOML key: bare when it may be, quoted otherwise."""
    return name if _BARE_KEY.fullmatch(name) else toml_string(name)


def check_secret_name(name: str, where: str) -> str:
    """Reject names that would escape the secrets directory or confuse git."""
    if not name or name.startswith("/") or name.endswith("/"):
        raise RulesError(f"{where}: bad secret name {name!r}: must be a relative path")
    for seg in name.split("/"):
        if not is_segment(seg):
            raise RulesError(
                f"{where}: bad secret name {name!r}: use segments of A-Z a-z 0-9 . _ - "
                "joined by '/', never '..' or '.'"
            )
        if len(seg.encode()) > _NAME_MAX - len(".age"):
            raise RulesError(
                f"{where}: bad secret name {name[:40]!r}...: a segment is longer than "
                f"{_NAME_MAX - len('.age')} characters"
            )
    return name


def parse_duration(text: str, where: str) -> datetime.timedelta:
    m = _DURATION.fullmatch(text)
    digits = m.group(1).lstrip("0") if m else ""
    if not m or not digits:
        raise RulesError(
            f"{where}: bad duration {text[:40]!r}: use a positive number with h, d, w or y, "
            "e.g. '90d'"
        )
    try:
        if len(digits) > 12:  # no one rotates every million years
            raise OverflowError
        return datetime.timedelta(seconds=int(digits) * _DURATION_UNITS[m.group(2)])
    except OverflowError as err:
        raise RulesError(f"{where}: duration {text[:40]!r} is too long") from err


def format_duration(delta: datetime.timedelta) -> str:
    secs = int(delta.total_seconds())
    for unit in ("y", "w", "d", "h"):
        size = _DURATION_UNITS[unit]
        if secs % size == 0 and secs >= size:
            return f"{secs // size}{unit}"
    return f"{secs}s"


def find_rules(start: Path) -> Path:
    """The nearest secrets/secrets.toml at or above start."""
    here = start.resolve()
    for d in (here, *here.parents):
        if d.name == RULES_DIR and (d / RULES_NAME).is_file():
            return d / RULES_NAME
        candidate = d / RULES_DIR / RULES_NAME
        if candidate.is_file():
            return candidate
    raise RulesError(
        f"no {RULES_DIR}/{RULES_NAME} in {display_path(here)} or any parent; "
        "run `nixseal init` at the repository root, or pass --rules PATH"
    )


def load_rules(path: Path) -> Rules:
    path = path.resolve() if path.exists() else path.absolute()
    where = display_path(path)
    try:
        raw = read_regular(path, TEXT_LIMIT)
    except OSError as err:
        raise RulesError(f"{where}: cannot read rules: {err.strerror}") from err
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise RulesError(f"{where}: not UTF-8 text (byte {err.start})") from err
    return parse_rules(text, path)


def parse_rules(text: str, path: Path) -> Rules:
    """Rules from TOML text; path is where they live (or will)."""
    where = display_path(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise RulesError(f"{where}: malformed TOML: {err}") from err
    except RecursionError as err:
        raise RulesError(f"{where}: malformed TOML: arrays or tables nested too deeply") from err
    except ValueError as err:  # e.g. an integer of more than 4300 digits
        raise RulesError(f"{where}: malformed TOML: {str(err).split(';')[0]}") from err
    return _Parser(path, where).parse(data)


class _Parser(GeneratorParser):
    def __init__(self, path: Path, where: str) -> None:
        self.path = path
        self.where = where
        self.parsed: dict[str, Any] = {}

    def fail(self, table: str, key: str | None, msg: str) -> RulesError:
        loc = f"[{table}]" if key is None else f"[{table}] {key}"
        return RulesError(f"{self.where}: {loc}: {msg}")

    def table(self, data: dict[str, Any], key: str) -> dict[str, Any]:
        value = data.get(key, {})
        if not isinstance(value, dict):
            raise RulesError(f"{self.where}: {key} must be a table, e.g. [{key}]")
        return value

    def key(self, table: str, name: str, value: Any) -> str:
        if not isinstance(value, str):
            raise self.fail(table, name, "key must be a string (age1..., ssh-ed25519 ...)")
        from nixseal.age import crypto

        try:
            self.parsed[value] = crypto.parse_recipient(value, "x")
        except CryptoError as err:
            cause = str(err).split(": ", 1)[1]
            if "expected" not in cause:
                cause += f"; {KEY_FIX}"
            raise self.fail(table, name, cause) from err
        return value

    def ident(self, table: str, name: str) -> str:
        if not IDENT.fullmatch(name):
            raise self.fail(table, name, "bad name: use A-Z a-z 0-9 . _ -")
        return name

    def parse(self, data: dict[str, Any]) -> Rules:
        for k in data:
            if k not in _TOP_KEYS:
                raise RulesError(
                    f"{self.where}: unknown top-level key {k!r} (expected one of "
                    f"{', '.join(_TOP_KEYS)})"
                )
        version = data.get("version", 1)
        if version != 1 or isinstance(version, bool):
            raise RulesError(f"{self.where}: version = {version!r}: only version 1 is known")
        admins = {
            self.ident("admins", n): self.key("admins", n, v)
            for n, v in self.table(data, "admins").items()
        }
        hosts = {
            n: Host(n, self.key(f"hosts.{n}", "key", self.entry("hosts", n, v)))
            for n, v in self.table(data, "hosts").items()
        }
        users = {
            n: User(n, self.key(f"users.{n}", "key", self.entry("users", n, v)))
            for n, v in self.table(data, "users").items()
        }
        raw_groups = self.table(data, "groups")
        groups = {
            self.ident("groups", g): self.resolve_group(g, raw_groups, hosts, ())
            for g in raw_groups
        }
        secrets = {
            n: self.secret(n, v, hosts, users, groups)
            for n, v in self.table(data, "secrets").items()
        }
        rules = Rules(
            self.path, self.path.parent, admins, hosts, users, groups, secrets, self.parsed
        )
        self.add_outputs(rules, secrets)
        self.check_inputs(rules)
        return rules

    def add_outputs(self, rules: Rules, secrets: dict[str, SecretRule]) -> None:
        """A secret for each further secret output of a generator, with the
        readers of the secret whose generator makes it."""
        for name, rule in list(secrets.items()):
            table = f'secrets."{name}"'
            secret_out, public_out = rules.outputs_of(name)
            for output, implied in [*secret_out.items(), *public_out.items()]:
                if implied == name:
                    continue
                check_secret_name(implied, f"{self.where}: [{table}] generator.outputs")
                if implied in secrets:
                    raise self.fail(
                        table,
                        "generator.outputs",
                        f"output {output!r} would be secret {implied!r}, which the rules "
                        "already have; rename one",
                    )
                if output in secret_out:
                    secrets[implied] = SecretRule(
                        implied, rule.hosts, rule.users, armor=rule.armor, part_of=name,
                        output=output,
                    )  # fmt: skip

    def check_inputs(self, rules: Rules) -> None:
        """Inputs name secrets of the rules, a cert's CA a ca, and no value
        is made, even through others, from itself."""
        for name, rule in rules.secrets.items():
            gen = rule.generator
            if gen is None:
                continue
            table = f'secrets."{name}"'
            key = {"cert": "generator.ca", "htpasswd": "generator.password"}.get(
                gen.kind.value, "generator.inputs"
            )
            for i in gen.inputs:
                found = rules.secrets.get(i)
                if found is None:
                    hint = did_you_mean(i, rules.secrets) or f"add [secrets.{toml_string(i)}]"
                    raise self.fail(table, key, f"unknown secret {i!r}; {hint}")
                if gen.kind is GeneratorKind.CERT and (
                    found.generator is None or found.generator.kind is not GeneratorKind.CA
                ):
                    raise self.fail(table, key, f'{i!r} has no generator = {{ kind = "ca" }}')
        acyclic: set[str] = set()
        for name in sorted(rules.secrets):
            self.find_cycle(rules, name, (), acyclic)

    def find_cycle(self, rules: Rules, name: str, path: tuple[str, ...], acyclic: set[str]) -> None:
        if name in acyclic:
            return
        if name in path:
            cycle = " -> ".join((*path[path.index(name) :], name))
            raise self.fail(
                f'secrets."{path[path.index(name)]}"',
                "generator",
                f"made from itself: {cycle}",
            )
        for i in rules.derived_from(name):
            self.find_cycle(rules, rules.maker(i), (*path, name), acyclic)
        acyclic.add(name)

    def entry(self, kind: str, name: str, value: Any) -> Any:
        self.ident(kind, name)
        table = f"{kind}.{name}"
        if not isinstance(value, dict):
            raise self.fail(table, None, f'must be a table with a key, e.g. [{table}] key = "..."')
        for k in value:
            if k != "key":
                raise self.fail(table, k, "unknown key (only 'key' is allowed)")
        if "key" not in value:
            raise self.fail(table, "key", "missing")
        return value["key"]

    def resolve_group(
        self,
        group: str,
        raw: dict[str, Any],
        hosts: Mapping[str, Host],
        seen: tuple[str, ...],
    ) -> tuple[str, ...]:
        if group in seen:
            raise self.fail("groups", group, f"group cycle: {' -> '.join((*seen, group))}")
        members = raw[group]
        if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
            raise self.fail("groups", group, 'must be a list of host names, e.g. ["web1"]')
        out: list[str] = []
        for m in members:
            if m.startswith("@"):
                if m[1:] not in raw:
                    raise self.fail("groups", group, f"unknown group {m!r}")
                out.extend(self.resolve_group(m[1:], raw, hosts, (*seen, group)))
            elif m in hosts:
                out.append(m)
            else:
                raise self.fail("groups", group, _unknown("host", m, hosts, f"add [hosts.{m}]"))
        return tuple(dict.fromkeys(out))

    def names(self, table: str, key: str, value: Any) -> list[str]:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(table, key, "must be a list of names")
        return value

    def secret(
        self,
        name: str,
        value: Any,
        hosts: Mapping[str, Host],
        users: Mapping[str, User],
        groups: Mapping[str, tuple[str, ...]],
    ) -> SecretRule:
        table = f'secrets."{name}"'
        check_secret_name(name, f"{self.where}: [secrets]")
        if not isinstance(value, dict):
            raise self.fail(table, None, "must be a table")
        for k in value:
            if k not in _SECRET_KEYS:
                expected = ", ".join(_SECRET_KEYS)
                raise self.fail(table, k, f"unknown key (expected one of {expected})")
        host_list = self.secret_hosts(table, value.get("hosts", []), hosts, groups)
        user_list = self.names(table, "users", value.get("users", []))
        for u in user_list:
            if u not in users:
                raise self.fail(table, "users", f"unknown user {u!r}; add [users.{u}]")
        generator = self.generator(table, value.get("generator"))
        source = value.get("source")
        if source is not None:
            if generator is not None:
                raise self.fail(table, "source", "a secret has a generator or a source, not both")
            source = self.source(table, source)
        push = value.get("push")
        if push is not None:
            if generator is None:
                raise self.fail(table, "push", "only a secret with a generator has a value to push")
            push = self.source(table, push, "push")
        rotate_after = value.get("rotate_after")
        if rotate_after is not None:
            if not isinstance(rotate_after, str):
                raise self.fail(table, "rotate_after", "must be a string such as '90d'")
            rotate_after = parse_duration(rotate_after, f"{self.where}: [{table}] rotate_after")
        armor = value.get("armor", False)
        if not isinstance(armor, bool):
            raise self.fail(table, "armor", "must be true or false")
        fmt = self.format(table, value.get("format", "binary"))
        keys = self.keys(table, value.get("keys"), fmt, generator, source)
        return SecretRule(
            name,
            tuple(dict.fromkeys(host_list)),
            tuple(dict.fromkeys(user_list)),
            generator,
            source,
            rotate_after,
            armor,
            push,
            format=fmt,
            key_generators=keys,
        )

    def keys(
        self, table: str, value: Any, fmt: str, generator: Generator | None, source: str | None
    ) -> tuple[tuple[str, Generator], ...]:
        """[secrets.X.keys."a/b"] generator = ...: keys of a document rotate fills."""
        if value is None:
            return ()
        if not isinstance(value, dict):
            raise self.fail(table, "keys", 'must be a table of keys, e.g. keys."db/password"')
        if fmt == "binary":
            raise self.fail(table, "keys", 'needs a document: set format (e.g. "yaml")')
        if generator is not None or source is not None:
            raise self.fail(
                table, "keys", "a secret with a generator or a source has no keys to fill"
            )
        from nixseal.util.document import KEY_LENGTH, split_key

        out = []
        for key, spec in value.items():
            where = f'{table}.keys."{key}"'
            segments = split_key(key)
            if segments is None or len(segments) != KEY_LENGTH.get(fmt, len(segments)):
                raise self.fail(where, None, f"not a key of a {fmt} document")
            if not isinstance(spec, dict) or set(spec) != {"generator"}:
                raise self.fail(where, None, 'must hold generator alone, e.g. generator = "hex"')
            gen = self.generator(where, spec["generator"])
            if gen is None or gen.kind.value not in KEY_KINDS:
                raise self.fail(where, "generator", f"must be one of {', '.join(KEY_KINDS)}")
            out.append((key, gen))
        return tuple(out)

    def format(self, table: str, value: Any) -> str:
        if value not in FORMATS:
            raise self.fail(table, "format", f"must be one of {', '.join(FORMATS)}")
        return str(value)

    def secret_hosts(
        self,
        table: str,
        value: Any,
        hosts: Mapping[str, Host],
        groups: Mapping[str, tuple[str, ...]],
    ) -> list[str]:
        out: list[str] = []
        for h in self.names(table, "hosts", value):
            if h.startswith("@"):
                if h[1:] not in groups:
                    hint = _unknown("group", h, [f"@{g}" for g in groups], "add it to [groups]")
                    raise self.fail(table, "hosts", hint)
                out.extend(groups[h[1:]])
            elif h in hosts:
                out.append(h)
            else:
                raise self.fail(table, "hosts", _unknown("host", h, hosts, f"add [hosts.{h}]"))
        return out

    def source(self, table: str, value: Any, key: str = "source") -> str:
        if not isinstance(value, str) or not value.startswith("op://"):
            raise self.fail(table, key, "must be a 1Password reference op://vault/item/field")
        # The same check `op` calls get, so a bad reference fails at load time.
        from nixseal.errors import OpError
        from nixseal.util import op

        try:
            ref = op.parse_reference(value)
        except OpError as err:
            raise self.fail(table, key, str(err)) from err
        if key == "push" and ref.query:
            raise self.fail(
                table, key, f"cannot write through a reference with ?{ref.query}; remove it"
            )
        return value
