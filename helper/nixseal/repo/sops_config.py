"""A sops `.sops.yaml` read as `nixseal import-sops` needs it.

sops picks, for a file, the first creation rule whose ``path_regex`` (none:
every file) is found in the file's path relative to the ``.sops.yaml``
directory. A rule's readers are its ``age`` and ``pgp`` keys, at its top
(comma-separated strings, or lists) and in its ``key_groups``. The YAML
anchors sops-nix users name their keys with (``- &web1 age1...``) are kept:
they name the hosts the import adds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nixseal.errors import RulesError, UsageError
from nixseal.util.paths import display_path
from nixseal.util.readfile import TEXT_LIMIT, read_regular

CONFIG_NAME = ".sops.yaml"
# Key kinds nixseal cannot decrypt with; reported, never dropped silently.
_OTHER_KINDS = ("kms", "gcp_kms", "azure_keyvault", "hc_vault_transit_uri", "hc_vault")


@dataclass(frozen=True)
class CreationRule:
    number: int  # 1-based, as a reader counts the rules
    path_regex: re.Pattern[str] | None  # None: every file
    pattern: str
    age: tuple[str, ...]
    pgp: tuple[str, ...]
    other: tuple[tuple[str, str], ...]  # (kind, key) of KMS, Vault...

    @property
    def label(self) -> str:
        shown = f" ({self.pattern})" if self.pattern else ""
        return f"creation rule {self.number}{shown}"


@dataclass(frozen=True)
class SopsConfig:
    path: Path  # absolute
    rules: tuple[CreationRule, ...]
    anchors: dict[str, str]  # key -> the anchor naming it

    @property
    def dir(self) -> Path:
        return self.path.parent

    def rule_for(self, relative: str) -> CreationRule | None:
        for rule in self.rules:
            if rule.path_regex is None or rule.path_regex.search(relative):
                return rule
        return None


def find_config(start: Path) -> Path:
    """The nearest .sops.yaml at or above start, as sops looks for it."""
    here = start.resolve()
    for d in (here, *here.parents):
        if (d / CONFIG_NAME).is_file():
            return d / CONFIG_NAME
    raise UsageError(
        f"no {CONFIG_NAME} in {display_path(here)} or any parent; pass --sops-config PATH"
    )


def load_config(path: Path) -> SopsConfig:
    path = path.absolute()
    where = display_path(path)
    try:
        import yaml
    except ImportError as err:  # a hand-made install without the dependency
        raise UsageError(
            f"{where}: reading it needs the Python package 'PyYAML' (pip install PyYAML)"
        ) from err
    try:
        text = read_regular(path, TEXT_LIMIT).decode("utf-8")
    except OSError as err:
        raise UsageError(f"{where}: cannot read: {err.strerror}") from err
    except UnicodeDecodeError as err:
        raise RulesError(f"{where}: not UTF-8 text (byte {err.start})") from err
    try:
        data = yaml.safe_load(text)
        anchors = {
            str(e.value).strip(): str(e.anchor)
            for e in yaml.parse(text, Loader=yaml.SafeLoader)
            if isinstance(e, yaml.ScalarEvent) and e.anchor
        }
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(err, "problem", None) or "not valid YAML"
        raise RulesError(f"{where}: malformed YAML{at}: {problem}") from err
    if not isinstance(data, dict) or not isinstance(data.get("creation_rules"), list):
        raise RulesError(f"{where}: no creation_rules list (what sops encrypts files with)")
    rules = tuple(_rule(i + 1, r, where) for i, r in enumerate(data["creation_rules"]))
    return SopsConfig(path, rules, anchors)


def _rule(number: int, raw: Any, where: str) -> CreationRule:
    at = f"{where}: creation rule {number}"
    if not isinstance(raw, dict):
        raise RulesError(f"{at}: must be a mapping")
    pattern = raw.get("path_regex", "")
    if not isinstance(pattern, str):
        raise RulesError(f"{at}: path_regex must be a string")
    try:
        compiled = re.compile(pattern) if pattern else None
    except re.error as err:
        raise RulesError(
            f"{at}: path_regex {pattern!r} is not a regular expression: {err}"
        ) from err
    age, pgp = _keys(raw.get("age"), f"{at}: age"), _keys(raw.get("pgp"), f"{at}: pgp")
    other = [(k, v) for k in _OTHER_KINDS for v in _keys(raw.get(k), f"{at}: {k}")]
    groups = raw.get("key_groups") or []
    if not isinstance(groups, list):
        raise RulesError(f"{at}: key_groups must be a list")
    for n, group in enumerate(groups, 1):
        if not isinstance(group, dict):
            raise RulesError(f"{at}: key group {n} must be a mapping")
        age += _keys(group.get("age"), f"{at}: key group {n}: age")
        pgp += _keys(group.get("pgp"), f"{at}: key group {n}: pgp")
        other += [(k, _kms(v)) for k in _OTHER_KINDS for v in _list(group.get(k))]
    return CreationRule(
        number,
        compiled,
        pattern,
        tuple(dict.fromkeys(age)),
        tuple(dict.fromkeys(pgp)),
        tuple(dict.fromkeys(other)),
    )


def _keys(value: Any, where: str) -> tuple[str, ...]:
    """Keys given as sops takes them: "k1,k2" (newlines too), or a list of strings."""
    if value is None:
        return ()
    items = value if isinstance(value, list) else [value]
    out: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise RulesError(f"{where}: keys must be strings")
        out += [k.strip() for k in item.replace("\n", ",").split(",") if k.strip()]
    return tuple(out)


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [] if value is None else [value]


def _kms(value: Any) -> str:
    """A key group's KMS entry (a mapping with arn, resourceId...) as one word."""
    if isinstance(value, dict):
        for field in ("arn", "resource_id", "vaultUrl", "vault_address"):
            if field in value:
                return str(value[field])
    return str(value)
