"""`nixseal install`: install the secrets a manifest names (activation).

Runs at every boot and switch, so this module and what it imports at the
top are kept lean; the engine is nixseal.activation.
Exit status: 0 all installed; 1 some entry failed (the others are
installed, failed ones keep their previous value); 2 the manifest or the
command line is wrong and nothing was changed.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from nixseal.errors import UsageError
from nixseal.log import LOG_FORMATS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--manifest", required=True, metavar="FILE", help="the manifest (JSON)")
    parser.add_argument(
        "--root",
        metavar="DIR",
        help="treat DIR as / for every path written; owners from DIR/etc/passwd and group",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="report what would change; touch nothing live"
    )
    parser.add_argument(
        "--no-mount", action="store_true", help="do not mount ramfs/tmpfs at the mount point"
    )
    # Also accepted after the verb; SUPPRESS keeps the global value otherwise.
    parser.add_argument(
        "--log-format", choices=LOG_FORMATS, default=argparse.SUPPRESS, help="log output format"
    )


def run(args: argparse.Namespace) -> int:
    from nixseal import log as logging_setup
    from nixseal import manifest as manifest_mod
    from nixseal.activation import Activation

    log = logging_setup.get_logger()
    root = _root(args.root)
    manifest = manifest_mod.expand_runtime_dir(
        manifest_mod.load(args.manifest), os.environ.get("XDG_RUNTIME_DIR")
    )
    activation = Activation(manifest, root, args.dry_run, not args.no_mount, log)
    try:
        return _install(activation, args, log)
    finally:
        activation.close()


def _install(activation: Any, args: argparse.Namespace, log: Any) -> int:
    from nixseal.restart import apply

    manifest = activation.m
    root = activation.root
    with activation.locked():
        out = activation.run()
        log = log.bind(generation=out.generation)
        counts = {state: len(keys) for state, keys in sorted(out.states.items()) if keys}
        units = {"restart": list(out.units.restart), "reload": list(out.units.reload)}
        if args.dry_run:
            log = log.bind(dry_run=True)
            log.info("dry run finished", previous=out.previous, **counts, would_signal=units)
            return 1 if out.failed else 0
        if out.units:
            rooted = activation.rooted
            handed_over = apply(
                out.units,
                Path(rooted(manifest.restart_list_path)) if manifest.restart_list_path else None,
                Path(rooted(manifest.reload_list_path)) if manifest.reload_list_path else None,
                root is None,
                log,
                user=manifest.user_mode,
            )
            if handed_over:
                activation.clear_pending(out)
    log.info("install finished", previous=out.previous, **counts, signalled=units)
    return 1 if out.failed else 0


def _root(value: str | None) -> str | None:
    if value is None:
        return None
    root = os.path.abspath(value).rstrip("/")  # noqa: PTH100 (a string prefix is wanted)
    if not Path(root or "/").is_dir():
        raise UsageError(f"--root {value}: not a directory")
    return root or None
