"""What is wrong with a file, in words, and the command that fixes it
(check, audit). Needs no key: see nixseal.repo.drift.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from nixseal.models.repo import CheckEntryJson, CheckReportJson, ReaderKind
from nixseal.repo import drift
from nixseal.repo.context import create_command
from nixseal.repo.rules import Rules, recipient_id
from nixseal.util.paths import display_path


def fix_for(rules: Rules, d: drift.Drift) -> str:
    if d.status == drift.MISSING:
        return create_command(rules, d.name)
    if d.status == drift.CORRUPT:
        return f"restore {display_path(d.path)} from git, or re-create it: nixseal edit {d.name}"
    if d.needs_rekey:
        return f"nixseal rekey {d.name}"
    return ""


def findings(d: drift.Drift) -> list[str]:
    """One line per problem of a file, without the fix."""
    where = display_path(d.path)
    if d.status == drift.MISSING:
        return [f"{where} is missing"]
    if d.status == drift.CORRUPT:
        return [f"{where}: {d.detail}"]
    out = [f"not encrypted to {ref.label}" for ref in d.missing]
    out += [f"encrypted to {who}, which the rules do not list for it" for who in d.extra]
    if d.status == drift.UNVERIFIED:
        out.append(f"cannot verify its age recipients: {d.detail}")
    elif d.detail:
        out.append(d.detail)
    return out


def to_json(rules: Rules, d: drift.Drift) -> CheckEntryJson:
    return {
        "name": d.name,
        "file": display_path(d.path),
        "status": d.status,
        "missing": [{"kind": r.kind, "name": r.name} for r in d.missing],
        "extra": list(d.extra),
        "problems": findings(d) if d.status != drift.OK else [],
        "fix": fix_for(rules, d) or None,
    }


def shared_keys(rules: Rules) -> list[str]:
    """One line per key the rules give to several readers: a host key copied
    to another host, or an admin's key that is also a host's."""
    owners: dict[str, list[str]] = {}
    for kind in ReaderKind:
        for name, key in rules.keys_of(kind).items():
            owners.setdefault(recipient_id(key), []).append(f"{kind} {name}")
    where = display_path(rules.path)
    lines = []
    for who in owners.values():
        if len(who) < 2:
            continue
        why = "each reader needs a key of its own"
        if any(w.startswith("host ") for w in who) and any(not w.startswith("host ") for w in who):
            why = "whoever is root on the host can read that key"
        lines.append(f"{' and '.join(who)} have the same key in {where}; {why}")
    return lines


def report(
    rules: Rules, results: Sequence[drift.Drift], orphans: Sequence[Path]
) -> CheckReportJson:
    """`check --json`: every secret inspected, and files no secret names."""
    shared = shared_keys(rules)
    return {
        "ok": all(d.status == drift.OK for d in results) and not shared,
        "rules": display_path(rules.path),
        "secrets": [to_json(rules, d) for d in results],
        "orphans": [display_path(p) for p in orphans],
        "shared_keys": shared,
    }
