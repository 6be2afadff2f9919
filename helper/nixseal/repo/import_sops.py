"""sops files turned into nixseal secrets (`nixseal import-sops`).

The files are those under the `.sops.yaml` directory that one of its
creation rules covers and that hold sops metadata. Each is decrypted by the
admin's own ``sops --decrypt`` (its keys, its environment); the plaintext
stays in memory, read from a pipe. By default a file becomes one secret
holding the whole document, named after its path relative to the rules
directory without its extension, in its format (``secrets/app.yaml`` is
``app``, ``format = "yaml"``); with per_value each value becomes a binary
secret of its own, ``app/db/password``, as ``sops --extract`` prints it.

Readers come from the file's creation rule. An age (or ssh) recipient is
the admin, host or user of the rules with that key, or whose ssh-ed25519
key it was derived from (ssh-to-age, as sops-nix hosts' keys are made);
an unknown one named by a YAML anchor becomes a host of that name, any
other is an error. PGP and cloud keys cannot be carried over: they are
reported. Every file written is decrypted with the admin's identity and
compared with sops's output before the rules name it; any failure
removes what was written, and the rules file is replaced last, at once.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nixseal.age import crypto, header
from nixseal.errors import NixsealError, RulesError, UsageError
from nixseal.models.repo import ReaderKind
from nixseal.repo import readers
from nixseal.repo.context import Context, ciphertext_for, now
from nixseal.repo.rules import (
    IDENT,
    RULES_NAME,
    Rules,
    check_key,
    check_secret_name,
    recipient_id,
)
from nixseal.repo.sops_config import CONFIG_NAME, CreationRule, SopsConfig
from nixseal.repo.ssh_to_age import age_of_ssh_key
from nixseal.repo.state import State
from nixseal.util.atomic import write_atomic
from nixseal.util.keytext import looks_private, refuse
from nixseal.util.paths import display_path
from nixseal.util.readfile import AGE_FILE_LIMIT, read_regular

# sops chooses a file's format by its extension; anything else is binary.
FORMATS = {".yaml": "yaml", ".yml": "yaml", ".json": "json", ".env": "dotenv", ".ini": "ini"}
_SKIP_SUFFIXES = (".age", ".pub", ".toml", ".nix", ".md")


@dataclass(frozen=True)
class Value:
    """One secret to write: its name, the sops file and key it comes from."""

    name: str
    file: Path
    format: str  # of the secret: the document's, or binary for one value
    key: str  # the sops-nix `key` (a/b) it was; "" for the whole file
    plaintext: bytes = field(repr=False)
    hosts: tuple[str, ...]
    users: tuple[str, ...]


@dataclass(frozen=True)
class NewHost:
    name: str
    key: str
    anchor: str


@dataclass(frozen=True)
class NotImported:
    """A reader of a creation rule nixseal cannot encrypt to."""

    rule: str  # "creation rule 2 (secrets/db\\.yaml)"
    kind: str  # pgp, kms, ...
    key: str


@dataclass
class Imported:
    rules: Rules
    config: Path
    values: list[Value]
    new_hosts: list[NewHost]
    not_imported: list[NotImported]
    dry_run: bool


# --- recipients ---------------------------------------------------------------------------


class _Readers:
    """The rules' readers by key, and the hosts the import adds."""

    def __init__(self, rules: Rules, config: SopsConfig) -> None:
        self.where = display_path(config.path)
        self.anchors = config.anchors
        self.names = {n for kind in ReaderKind for n in rules.keys_of(kind)}
        self.by_id: dict[str, tuple[ReaderKind, str]] = {}
        for kind in ReaderKind:
            for name, key in rules.keys_of(kind).items():
                self.by_id[recipient_id(key)] = (kind, name)
                derived = age_of_ssh_key(key)
                if derived is not None:
                    self.by_id.setdefault(derived, (kind, name))
        self.new_hosts: dict[str, NewHost] = {}

    def of(self, rule: CreationRule) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The hosts and users a creation rule's age keys stand for."""
        hosts: list[str] = []
        users: list[str] = []
        for key in rule.age:
            found = self.by_id.get(recipient_id(key)) or self._add(key, rule)
            kind, name = found
            if kind is ReaderKind.HOST:
                hosts.append(name)
            elif kind is ReaderKind.USER:
                users.append(name)
        return tuple(dict.fromkeys(hosts)), tuple(dict.fromkeys(users))

    def _add(self, key: str, rule: CreationRule) -> tuple[ReaderKind, str]:
        at = f"{self.where}: {rule.label}"
        if looks_private(key):  # never echoed, not even in part
            raise refuse(f"{at}: age")
        anchor = self.anchors.get(key)
        if anchor is None:
            raise UsageError(
                f"{at}: recipient {key[:24]}... is no admin, host or user of the rules "
                "and has no YAML anchor to name it; add it first (nixseal host add NAME KEY) "
                "or name it with an anchor (- &NAME KEY)"
            )
        if not IDENT.fullmatch(anchor):
            raise UsageError(f"{at}: anchor &{anchor} cannot name a host: use A-Z a-z 0-9 . _ -")
        if anchor in self.names:
            raise UsageError(
                f"{at}: anchor &{anchor} names a key that {anchor} of the rules does not have; "
                "rename the anchor or fix the key"
            )
        check_key(key, f"{at}: &{anchor}")
        self.names.add(anchor)
        self.new_hosts[anchor] = NewHost(anchor, key, anchor)
        self.by_id[recipient_id(key)] = (ReaderKind.HOST, anchor)
        return ReaderKind.HOST, anchor


# --- sops -----------------------------------------------------------------------------------


def has_metadata(path: Path, fmt: str) -> bool:
    """Whether a file holds sops's metadata (a `sops` entry with its mac)."""
    try:
        text = read_regular(path, AGE_FILE_LIMIT).decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    if fmt == "dotenv":
        return any(line.startswith("sops_mac=") for line in text.splitlines())
    if fmt == "ini":
        lines = [ln.strip() for ln in text.splitlines()]
        return "[sops]" in lines and any(ln.replace(" ", "").startswith("mac=") for ln in lines)
    if fmt == "yaml":
        lines = text.splitlines()
        return "sops:" in lines and any(ln.strip().startswith("mac: ENC[") for ln in lines)
    import json  # json and binary files: sops writes both as JSON

    try:
        data = json.loads(text)
    except ValueError:
        return False
    return isinstance(data, dict) and isinstance(data.get("sops"), dict) and "mac" in data["sops"]


def sops(args: list[str], file: Path) -> bytes:
    """sops's output for file, from a pipe; its first error line on failure."""
    where = display_path(file)
    if shutil.which("sops") is None:
        raise UsageError(f"{where}: decrypting it needs the sops command on PATH")
    proc = subprocess.run(["sops", *args, str(file)], capture_output=True, check=False)
    if proc.returncode != 0:
        lines = [ln.strip() for ln in proc.stderr.decode(errors="replace").splitlines()]
        why = next((ln for ln in lines if ln), f"exit status {proc.returncode}")
        raise UsageError(f"{where}: sops cannot decrypt it: {why}")
    return proc.stdout


def _leaves(document: bytes, fmt: str, where: str) -> list[tuple[str, ...]]:
    """The key paths of a decrypted document's values (mappings walked, lists are values)."""
    text = document.decode("utf-8", errors="replace")
    tree: Any
    if fmt == "yaml":
        import yaml

        tree = yaml.safe_load(text)
    elif fmt == "json":
        import json

        tree = json.loads(text)
    elif fmt == "dotenv":
        tree = {
            ln.split("=", 1)[0]: ""
            for ln in text.splitlines()
            if "=" in ln and not ln.lstrip().startswith("#")
        }
    else:
        import configparser

        parser = configparser.ConfigParser(interpolation=None)
        parser.optionxform = str  # type: ignore[assignment,method-assign]
        parser.read_string(text)
        tree = {s: dict(parser[s]) for s in parser.sections()}
    if not isinstance(tree, dict):
        raise UsageError(f"{where}: not a mapping of values; import it whole, without --per-value")
    out: list[tuple[str, ...]] = []

    def walk(node: Any, path: tuple[str, ...]) -> None:
        if isinstance(node, dict) and node:
            for k, v in node.items():
                walk(v, (*path, str(k)))
        elif path:
            out.append(path)

    walk(tree, ())
    return out


def _extract(path: tuple[str, ...]) -> str:
    import json

    return "".join(f"[{json.dumps(step)}]" for step in path)


# --- the import -----------------------------------------------------------------------------


def sops_files(config: SopsConfig, rules: Rules) -> list[tuple[Path, CreationRule]]:
    """The files under the config's directory that a rule covers and sops wrote."""
    found: list[tuple[Path, CreationRule]] = []
    for top, dirs, files in os.walk(config.dir):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in ("build", "result"))
        for name in sorted(files):
            path = Path(top) / name
            if name == CONFIG_NAME or path.is_symlink() or name.endswith(_SKIP_SUFFIXES):
                continue
            if path == rules.path or name == RULES_NAME:
                continue
            rule = config.rule_for(path.relative_to(config.dir).as_posix())
            if rule is not None and has_metadata(path, FORMATS.get(path.suffix, "binary")):
                found.append((path, rule))
    return found


def _document_name(path: Path, rules: Rules) -> str:
    where = display_path(path)
    rel = os.path.relpath(path.with_suffix(""), rules.dir)
    try:
        return check_secret_name(Path(rel).as_posix(), where)
    except RulesError as err:
        if rel.startswith(".."):
            raise UsageError(
                f"{where}: outside {display_path(rules.dir)}, so it names no secret; "
                "move it there first"
            ) from err
        raise


def collect(
    config: SopsConfig, rules: Rules, *, per_value: bool
) -> tuple[list[Value], list[NewHost], list[NotImported]]:
    """Every value to write, decrypted by sops, and who reads it."""
    who = _Readers(rules, config)
    values: list[Value] = []
    skipped: list[NotImported] = []
    files = sops_files(config, rules)
    if not files:
        raise UsageError(
            f"{display_path(config.path)}: no sops file under {display_path(config.dir)} "
            "matches its creation rules"
        )
    for path, rule in files:
        hosts, users = who.of(rule)
        skipped += [NotImported(rule.label, "pgp", k) for k in rule.pgp]
        skipped += [NotImported(rule.label, kind, k) for kind, k in rule.other]
        fmt = FORMATS.get(path.suffix, "binary")
        base = _document_name(path, rules)
        document = sops(["--decrypt"], path)
        if not per_value or fmt == "binary":
            values.append(Value(base, path, fmt, "", document, hosts, users))
            continue
        where = display_path(path)
        for steps in _leaves(document, fmt, where):
            # as nixseal.secrets.<n>.key writes it: a `/` inside a key is `\/`
            key = "/".join(step.replace("/", "\\/") for step in steps)
            label = f"{where}: key {'/'.join(steps)!r}"
            name = check_secret_name("/".join((base, *steps)), label)
            plain = sops(["--decrypt", "--extract", _extract(steps)], path)
            values.append(Value(name, path, "binary", key, plain, hosts, users))
    taken: dict[str, Value] = {}
    for v in values:
        if v.name in rules.secrets:
            raise UsageError(
                f"{display_path(rules.path)}: a secret {v.name!r} exists already; "
                f"{display_path(v.file)} is not imported over it (rename or remove it first)"
            )
        if v.name in taken:
            raise UsageError(
                f"{display_path(taken[v.name].file)} and {display_path(v.file)} would both be "
                f"the secret {v.name!r}; rename one"
            )
        if rules.dir.joinpath(f"{v.name}.age").exists():
            raise UsageError(
                f"{display_path(rules.dir)}/{v.name}.age: exists already; not overwritten"
            )
        taken[v.name] = v
    return values, list(who.new_hosts.values()), list(dict.fromkeys(skipped))


def _change(values: list[Value], new_hosts: list[NewHost], top: Path) -> readers.Change:
    adds = [readers.add_reader(ReaderKind.HOST, h.name, h.key, replace=False) for h in new_hosts]

    def change(doc: Any, rules: Rules) -> str:
        import tomlkit

        for add in adds:
            add(doc, rules)
        secrets = doc.get("secrets")
        if secrets is None:
            secrets = tomlkit.table(is_super_table=True)
            doc["secrets"] = secrets
        for v in values:
            table = tomlkit.table()
            source = v.file.relative_to(top).as_posix() + (f", key {v.key}" if v.key else "")
            table.add(tomlkit.comment(f"imported from sops: {source}"))
            hosts = tomlkit.array()
            hosts.extend(v.hosts)
            table["hosts"] = hosts
            if v.users:
                users = tomlkit.array()
                users.extend(v.users)
                table["users"] = users
            if v.format != "binary":
                table["format"] = v.format
            table.add(tomlkit.nl())
            secrets[v.name] = table
        return f"imported {len(values)} secrets"

    return change


def import_sops(ctx: Context, config: SopsConfig, *, per_value: bool, dry_run: bool) -> Imported:
    """Write the secrets of config's sops files, each checked, or nothing."""
    values, new_hosts, skipped = collect(config, ctx.rules, per_value=per_value)
    planned = readers.preview(ctx.rules.path, _change(values, new_hosts, config.dir))
    # each new table ends in a blank line, as init writes them; the file does not
    planned = planned._replace(new_text=planned.new_text.rstrip("\n") + "\n")
    rules = planned.new
    out = Context(rules, State.load(rules), ctx.identity_specs, ctx.prompt)
    identities = ctx.identities()
    written: list[Path] = []
    try:
        for v in values:
            data = ciphertext_for(rules, v.name, v.plaintext)
            path = rules.file_for(v.name)
            if not dry_run:
                write_atomic(path, data)
                written.append(path)
                data = read_regular(path, AGE_FILE_LIMIT)  # what is on disk now
            _compare(v, data, identities, display_path(path))
            if not dry_run:
                mac = header.parse_header(data, display_path(path)).mac
                keys = [r.key for r in rules.recipients_for(v.name)]
                out.state.record_encryption(v.name, keys, mac=mac)
                out.state.record_value(v.name, now())
        if not dry_run:
            readers.write(planned)
    except BaseException:
        _remove(written, rules.dir)
        raise
    if not dry_run:
        out.state.save()
    return Imported(rules, config.path, values, new_hosts, skipped, dry_run)


def _remove(written: list[Path], top: Path) -> None:
    """Undo: the files written, and the directories made for them."""
    for path in written:
        path.unlink(missing_ok=True)
        for d in path.parents:
            if d == top or not d.is_relative_to(top):
                break
            try:
                d.rmdir()
            except OSError:  # not empty: something else lives there
                break


def _compare(v: Value, data: bytes, identities: list[crypto.Identity], where: str) -> None:
    try:
        back = crypto.decrypt(data, identities, where)
    except NixsealError as err:
        raise NixsealError(
            f"{where}: your identity cannot read what the import wrote ({err}); nothing imported"
        ) from None
    if back != v.plaintext:
        raise NixsealError(
            f"{where}: differs from sops's value of {display_path(v.file)}; nothing imported"
        )
