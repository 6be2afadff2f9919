"""nixseal import-sops: sops files into secrets (nixseal.repo.import_sops),
then the sops-nix options of NixOS and their nixseal counterparts.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from nixseal.models.repo import ImportSopsReportJson
from nixseal.repo.context import Context
from nixseal.repo.import_sops import Imported, Value, import_sops
from nixseal.repo.sops_config import find_config, load_config
from nixseal.util.paths import display_path

EXAMPLES = """\
examples:
  nixseal import-sops --dry-run
  nixseal import-sops
  nixseal import-sops --per-value --sops-config ../.sops.yaml
"""

# sops-nix option -> nixseal option, for every secret and template.
OPTIONS = {
    "sops.secrets.<n>.sopsFile": "nixseal.secrets.<n>.document",
    "sops.secrets.<n>.key": "nixseal.secrets.<n>.key",
    "sops.secrets.<n>.format": "nixseal.secrets.<n>.format",
    "sops.secrets.<n>.owner": "nixseal.secrets.<n>.owner",
    "sops.secrets.<n>.mode": "nixseal.secrets.<n>.mode",
    "sops.secrets.<n>.path": "nixseal.secrets.<n>.path",
    "sops.secrets.<n>.restartUnits": "nixseal.secrets.<n>.restartUnits",
    "sops.secrets.<n>.neededForUsers": "nixseal.secrets.<n>.neededForUsers",
    "sops.templates.<n>": "nixseal.templates.<n>",
    "sops.placeholder.<n>": "nixseal.placeholder.<n>",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sops-config",
        metavar="PATH",
        help="the .sops.yaml (default: the nearest one at or above the current directory)",
    )
    parser.add_argument(
        "--per-value",
        action="store_true",
        help="one binary secret per value (app/db/password), not one per file",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="decrypt, encrypt and compare, but write nothing"
    )
    parser.add_argument("--json", action="store_true", help="machine-readable report on stdout")


def run(args: argparse.Namespace) -> int:
    ctx = Context.from_args(args)
    given = args.sops_config
    config = load_config(Path(given) if given else find_config(Path.cwd()))
    done = import_sops(ctx, config, per_value=args.per_value, dry_run=args.dry_run)
    if args.json:
        print(json.dumps(report(done), indent=2))
    else:
        print_text(done)
    return 0


def nix_string(text: str) -> str:
    # A JSON string is a Nix string once `${` cannot start an interpolation.
    return json.dumps(text).replace("${", "\\${")


def _doc(v: Value) -> str:
    """How a sops-nix secret reading v is written in nixseal."""
    if v.key or v.format == "binary":  # one value: keep the sops-nix name, point at it
        return f"document = {nix_string(v.name)};"
    return f"document = {nix_string(v.name)}; format = {nix_string(v.format)}; key as in sops-nix"


def print_text(done: Imported) -> None:
    rules = display_path(done.rules.path)
    verb = "would import" if done.dry_run else "imported"
    files = len({v.file for v in done.values})
    print(
        f"{verb} {files} sops files ({display_path(done.config)}) into {rules}: "
        f"{len(done.values)} secrets, each compared with sops's value"
    )
    for v in done.values:
        readers = ", ".join((*v.hosts, *v.users)) or "admins only"
        source = display_path(v.file) + (f" key {v.key}" if v.key else "")
        print(f"  {v.name} ({v.format}) from {source}: {readers}")
    for h in done.new_hosts:
        print(f"added host {h.name} (the anchor &{h.name}); review its key in {rules}")
    for s in done.not_imported:
        print(
            f"warning: {display_path(done.config)}: {s.rule}: {s.kind} key {s.key} not imported "
            "(nixseal has no PGP or cloud keys); give that reader an age or ssh key"
        )
    print("in NixOS (sops-nix -> nixseal):")
    width = max(len(k) for k in OPTIONS)
    for sops_option, ours in OPTIONS.items():
        print(f"  {sops_option:<{width}}  {ours}")
    print("for each sops.secrets.<n> reading these files:")
    seen: set[str] = set()
    for v in done.values:
        label = display_path(v.file) + (f" key {v.key}" if v.key else "")
        if v.key or v.file.as_posix() not in seen:
            seen.add(v.file.as_posix())
            print(f"  {label}: {_doc(v)}")


def report(done: Imported) -> ImportSopsReportJson:
    return {
        "rules": str(done.rules.path),
        "sops_config": str(done.config),
        "dry_run": done.dry_run,
        "secrets": [
            {
                "name": v.name,
                "sops_file": str(v.file),
                "key": v.key,
                "format": v.format,
                "hosts": list(v.hosts),
                "users": list(v.users),
            }
            for v in done.values
        ],
        "added_hosts": [{"name": h.name, "key": h.key, "anchor": h.anchor} for h in done.new_hosts],
        "not_imported": [{"rule": s.rule, "kind": s.kind, "key": s.key} for s in done.not_imported],
        "options": dict(OPTIONS),
    }
