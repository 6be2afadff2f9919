"""nixseal check [NAME...]: fail when files are missing or stale.

Needs no key: ssh recipients are read from the headers, age recipients
from the state file (see drift.py). Each finding names the secret, who is
missing or extra, and the command that fixes it.
"""

from __future__ import annotations

import argparse
import json

from nixseal.repo import drift
from nixseal.repo.context import Context
from nixseal.repo.findings import findings, fix_for, report, shared_keys
from nixseal.util.paths import display_path

EXAMPLES = """\
examples:
  nixseal check
  nixseal check --json | jq .ok
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="*", metavar="NAME", help="only these secrets")
    parser.add_argument("--json", action="store_true", help="machine-readable report on stdout")


def run(args: argparse.Namespace) -> int:
    ctx = Context.from_args(args)
    rules = ctx.rules
    names = rules.select(args.names)
    inspector = drift.Inspector(rules, ctx.state)
    results = inspector.inspect_all(names)
    bad = [d for d in results if d.status != drift.OK]
    orphans = [] if args.names else drift.orphans(rules)
    if args.json:
        doc = report(rules, results, orphans)
        print(json.dumps(doc, indent=2))
        return 0 if doc["ok"] else 1
    shared = shared_keys(rules)
    for line in shared:
        print(f"error: {line}; fix: give each its own key")
    for d in bad:
        fix = fix_for(rules, d)
        for line in findings(d):
            print(f"{d.name}: {line}; fix: {fix}")
    for p in orphans:
        print(f"warning: {display_path(p)}: no secret in the rules names this file")
    if bad:
        print(f"{len(bad)} of {len(results)} secrets need attention")
        return 1
    if shared:
        print(f"all {len(results)} secrets match the rules, but keys are shared")
        return 1
    print(f"all {len(results)} secrets match the rules")
    return 0
