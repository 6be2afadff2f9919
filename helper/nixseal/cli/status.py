"""nixseal status [HOST...]: what each host has installed, against the
repository (nixseal.repo.status). Reads each host's status file over ssh."""

from __future__ import annotations

import argparse
import json
import sys

from nixseal.repo import status
from nixseal.repo.context import rules_path_from_args
from nixseal.repo.rules import load_rules

EXAMPLES = """\
examples:
  nixseal status
  nixseal status web1 db1 --strict
  NIXSEAL_SSH="ssh -F ./ssh_config" nixseal status --json | jq '.hosts[].differences'
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="*", metavar="HOST", help="only these hosts (default: all)")
    parser.add_argument("--json", action="store_true", help="machine-readable report on stdout")
    parser.add_argument(
        "--strict", action="store_true", help="exit 1 when anything differs from the repository"
    )
    parser.add_argument(
        "--ssh",
        metavar="CMD",
        help=f"the command that runs `CMD root@HOST COMMAND` (default ${status.SSH_ENV}, "
        "else ssh -o BatchMode=yes -o ConnectTimeout=10)",
    )


def run(args: argparse.Namespace) -> int:
    rules = load_rules(rules_path_from_args(args))
    hosts = status.select_hosts(rules, args.names)
    ssh = status.ssh_command(args.ssh)
    results = status.fleet(rules, hosts, ssh)
    unreached = [h for h in results if h.error is not None]
    differences = sum(h.differences for h in results)
    if args.json:
        print(json.dumps(status.to_json(rules, results), indent=2))
    else:
        _table(results)
    for h in unreached:
        print(f"nixseal status: error: {h.host}: {h.error}", file=sys.stderr)
    if not args.json:
        _summary(results, differences, unreached)
    if unreached or (args.strict and differences):
        return 1
    return 0


def _table(results: list[status.HostStatus]) -> None:
    rows = [(h, r) for h in results if h.error is None for r in h.rows]
    width = max((len(_label(r)) for _, r in rows), default=0)
    states = max((len(r.status) for _, r in rows if r.detail), default=0)
    for h in results:
        if h.error is not None:
            continue
        gens = ", ".join(
            f"generation {g}" + ("" if m == "/run/secrets.d" else f" in {m}")
            for m, g in sorted(h.generations.items())
        )
        print(f"{h.host} ({gens})")
        for r in h.rows:
            detail = f"  {r.detail}" if r.detail else ""
            print(f"  {_label(r):<{width}}  {r.status:<{states}}{detail}".rstrip())


def _label(row: status.Row) -> str:
    return row.name if row.kind == "secret" else f"template {row.name}"


def _summary(
    results: list[status.HostStatus], differences: int, unreached: list[status.HostStatus]
) -> None:
    reached = len(results) - len(unreached)
    hosts = f"{reached} host{'s' if reached != 1 else ''}"
    if differences:
        text = f"{differences} difference{'s' if differences != 1 else ''} on {hosts}"
    else:
        text = f"all {hosts} up to date" if reached else "no host reached"
    if unreached:
        text += f"; {len(unreached)} without status"
    print(text)
