"""nixseal audit: who can read each secret, and how old its value is
(nixseal.repo.audit); printed as a table or as JSON.
"""

from __future__ import annotations

import argparse
import json

from nixseal.models.repo import AuditEntryJson
from nixseal.repo.audit import REPLACED, audit, report
from nixseal.repo.context import Context

EXAMPLES = """\
examples:
  nixseal audit
  nixseal audit --strict   # in CI: exit 1 on any finding
  nixseal audit db/password --json
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="*", metavar="NAME", help="only these secrets")
    parser.add_argument("--json", action="store_true", help="machine-readable report on stdout")
    parser.add_argument("--strict", action="store_true", help="exit 1 when there is any finding")


def _readers_cell(entry: AuditEntryJson) -> str:
    parts: dict[str, list[str]] = {}
    for r in entry["readers"]:
        mark = {True: "", False: "!", None: "?"}[r["verified"]]
        parts.setdefault(r["kind"] + "s", []).append(r["name"] + mark)
    cell = " ".join(f"{k}:{','.join(v)}" for k, v in parts.items())
    if entry["extra_readers"]:
        cell += f" +{len(entry['extra_readers'])} extra"
    return cell


def render_table(entries: list[AuditEntryJson]) -> str:
    head = ("SECRET", "READERS", "ROTATED", "AFTER", "LAST CHANGE", "FINDINGS")
    rows = [head]
    for e in entries:
        rotated = (e["rotated"] or "-")[:10]
        if e["rotated"] is None and e["age_basis"] in ("git", "replaced"):
            rotated = f"({e['age_basis']})"
        rows.append(
            (
                e["name"],
                _readers_cell(e),
                rotated,
                e["rotate_after"] or "-",
                (e["last_change"] or "-")[:10],
                "; ".join(e["findings"]) or "ok",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(head) - 1)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1]
             for r in rows]  # fmt: skip
    legend = "readers: name! = not encrypted to it, name? = cannot verify (age key, no record)"
    if any(e["age_basis"] == "replaced" for e in entries):
        legend += f"\nrotated: (replaced) = file {REPLACED}; the value's age is unknown"
    return "\n".join([*lines, "", legend])


def run(args: argparse.Namespace) -> int:
    ctx = Context.from_args(args)
    rules = ctx.rules
    names = rules.select(args.names)
    entries = audit(rules, ctx.state, names)
    doc = report(rules, entries)
    n_findings = doc["findings"]
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        print(render_table(entries))
        print(f"{n_findings} finding(s) in {len(entries)} secrets")
    return 1 if args.strict and n_findings else 0
