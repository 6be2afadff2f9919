"""nixseal check [NAME...]: fail when files are missing or stale.

Needs no key: ssh recipients are read from the headers, age recipients
from the state file (see drift.py). Each finding names the secret, who is
missing or extra, and the command that fixes it.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from nixseal import drift
from nixseal.repo import Context, create_command
from nixseal.rules import Rules, display_path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="*", metavar="NAME", help="only these secrets")
    parser.add_argument("--json", action="store_true", help="machine-readable report on stdout")


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


def to_json(rules: Rules, d: drift.Drift) -> dict[str, Any]:
    return {
        "name": d.name,
        "file": display_path(d.path),
        "status": d.status,
        "missing": [{"kind": r.kind, "name": r.name} for r in d.missing],
        "extra": list(d.extra),
        "problems": findings(d) if d.status != drift.OK else [],
        "fix": fix_for(rules, d) or None,
    }


def run(args: argparse.Namespace) -> int:
    ctx = Context.from_args(args)
    rules = ctx.rules
    names = rules.select(args.names)
    inspector = drift.Inspector(rules, ctx.state)
    results = inspector.inspect_all(names)
    bad = [d for d in results if d.status != drift.OK]
    orphans = [] if args.names else drift.orphans(rules)
    if args.json:
        doc = {
            "ok": not bad,
            "rules": display_path(rules.path),
            "secrets": [to_json(rules, d) for d in results],
            "orphans": [display_path(p) for p in orphans],
        }
        print(json.dumps(doc, indent=2))
        return 1 if bad else 0
    for d in bad:
        fix = fix_for(rules, d)
        for line in findings(d):
            print(f"{d.name}: {line}; fix: {fix}")
    for p in orphans:
        print(f"warning: {display_path(p)}: no secret in the rules names this file")
    if bad:
        print(f"{len(bad)} of {len(results)} secrets need attention")
        return 1
    print(f"all {len(results)} secrets match the rules")
    return 0
