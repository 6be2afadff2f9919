"""Who can read each secret, and how old its value is (`nixseal audit`).

Readers come from the rules and are verified against the file: ssh keys
through the header's key tags, age keys through the state file's record
(see drift.py). The value's age is from the state file (set by edit,
encrypt, rotate, pull) or else the file's last commit, found with one git
call for all files. A recorded time is vouched for only while the file is
the one it was recorded for (same header MAC): once another tool replaced
the file, the value in it may be older or newer, so its age is unknown.
"""

from __future__ import annotations

import datetime
import subprocess
from pathlib import Path

from nixseal.models.repo import AuditEntryJson, AuditReportJson
from nixseal.repo import drift
from nixseal.repo.context import now
from nixseal.repo.findings import findings as findings_of
from nixseal.repo.rules import Rules, SecretRule, format_duration
from nixseal.repo.state import State
from nixseal.util.paths import display_path
from nixseal.util.readfile import AGE_FILE_LIMIT, read_regular

REPLACED = "replaced outside nixseal since its rotation was recorded"


def git_last_changes(directory: Path, wanted: set[str]) -> dict[str, datetime.datetime]:
    """Last commit time of each wanted path (relative to directory).

    One `git log` over the directory's history, newest first, stopped as
    soon as every wanted file has been seen. Empty outside a git checkout.
    """
    cmd = [
        "git", "-C", str(directory), "-c", "core.quotepath=off", "log", "--no-renames",
        "--format=%x01%cI", "--name-only", "--relative", "--", ".",
    ]  # fmt: skip
    found: dict[str, datetime.datetime] = {}
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    except OSError:
        return found
    assert proc.stdout is not None
    when: datetime.datetime | None = None
    with proc:
        for raw in proc.stdout:
            line = raw.rstrip("\n")
            if line.startswith("\x01"):
                when = datetime.datetime.fromisoformat(line[1:])
            elif line and when is not None and line in wanted and line not in found:
                found[line] = when
                if len(found) == len(wanted):
                    proc.kill()
                    break
    return found


def _age_of(
    rotated: datetime.datetime | None, changed: datetime.datetime | None, replaced: bool
) -> tuple[datetime.datetime | None, str]:
    if replaced:
        return None, "replaced"
    if rotated is not None:
        return rotated, "recorded"
    if changed is not None:
        return changed, "git"
    return None, "unknown"


def audit_one(
    rule: SecretRule,
    d: drift.Drift,
    state: State,
    changed: datetime.datetime | None,
    today: datetime.datetime,
    *,
    replaced: bool = False,
    derived_from: tuple[str, ...] = (),
    inputs_rotated: tuple[str, ...] = (),
) -> AuditEntryJson:
    """replaced: the file is not the one the recorded rotation time is for;
    derived_from: the secrets its value is made from, inputs_rotated those
    of them rotated since."""
    rotated = None if replaced else state.rotated_at(rule.name)
    since, basis = _age_of(rotated, changed, replaced)
    age = today - since if since is not None else None
    findings = [] if d.status == drift.OK else findings_of(d)
    overdue = bool(rule.rotate_after and age is not None and age > rule.rotate_after)
    if overdue and rule.rotate_after is not None and age is not None:
        findings.append(
            f"value is {age.days} days old ({basis}), rotate_after is "
            f"{format_duration(rule.rotate_after)}"
        )
    if rule.rotate_after and since is None and d.status != drift.MISSING:
        why = f" ({display_path(d.path)} was {REPLACED})" if replaced else ""
        findings.append(f"rotate_after is set but the value's age is unknown{why}")
    if inputs_rotated:
        findings.append(
            f"made from {', '.join(inputs_rotated)}, rotated since: "
            f"rotate it with `nixseal rotate {rule.part_of or rule.name}`"
        )
    return {
        "name": rule.name,
        "file": display_path(d.path),
        "status": d.status,
        "readers": [
            {"kind": r.ref.kind, "name": r.ref.name, "key": r.ref.id, "verified": r.present}
            for r in d.readers
        ],
        "extra_readers": list(d.extra),
        "rotated": _iso(rotated),
        "age_days": age.days if age is not None else None,
        "age_basis": basis,
        "rotate_after": format_duration(rule.rotate_after) if rule.rotate_after else None,
        "overdue": overdue,
        "last_change": _iso(changed),
        "derived_from": list(derived_from),
        "inputs_rotated": list(inputs_rotated),
        "findings": findings,
    }


def _iso(when: datetime.datetime | None) -> str | None:
    return when.isoformat() if when is not None else None


def audit(rules: Rules, state: State, names: list[str]) -> list[AuditEntryJson]:
    inspector = drift.Inspector(rules, state)
    wanted = {f"{n}.age" for n in names}
    changes = git_last_changes(rules.dir, wanted)
    today = now()
    entries = []
    for n in names:
        try:
            data: bytes | None = read_regular(rules.file_for(n), AGE_FILE_LIMIT)
        except OSError:
            data = None  # the inspector reports why
        d = inspector.inspect(n) if data is None else inspector.inspect(n, data)
        replaced = state.replaced(n, data)
        maker = rules.maker(n)
        inputs = rules.derived_from(n)
        entries.append(
            audit_one(
                rules.secrets[n],
                d,
                state,
                changes.get(f"{n}.age"),
                today,
                replaced=replaced,
                derived_from=inputs,
                inputs_rotated=tuple(state.inputs_rotated(maker, inputs)),
            )
        )
    return entries


def report(rules: Rules, entries: list[AuditEntryJson]) -> AuditReportJson:
    """`audit --json`: the entries and how many findings they hold."""
    n_findings = sum(len(e["findings"]) for e in entries)
    return {"rules": display_path(rules.path), "findings": n_findings, "secrets": entries}
