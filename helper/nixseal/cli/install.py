"""`nixseal install`: install the secrets a manifest names (activation).

Runs at every boot and switch, so this module and what it imports at the
top are kept lean; the engine is nixseal.engine.activation.
Exit status: 0 all installed; 1 some entry failed (the others are
installed, failed ones keep their previous value); 2 the manifest or the
command line is wrong and nothing was changed.
"""

from __future__ import annotations

import os
import types

from nixseal.errors import UsageError
from nixseal.util.log import LOG_FORMATS

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence

    from nixseal.engine.activation import Activation
    from nixseal.engine.restart import Units
    from nixseal.util.log import Logger


EXAMPLES = """\
examples:
  nixseal install --manifest /etc/nixseal/manifest.json
  nixseal install --manifest manifest.json --root /mnt --dry-run
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    import argparse

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
    # Activation-script mode: the snippet runs before systemd is reloaded,
    # so it leaves the units pending; a unit signals them after the switch.
    signals = parser.add_mutually_exclusive_group()
    signals.add_argument(
        "--defer-signals",
        action="store_true",
        help="leave the units of changed entries pending for --signal-pending",
    )
    signals.add_argument(
        "--signal-pending",
        action="store_true",
        help="only signal the current generation's pending units; install nothing",
    )
    # Also accepted after the verb; SUPPRESS keeps the global value otherwise.
    parser.add_argument(
        "--log-format", choices=LOG_FORMATS, default=argparse.SUPPRESS, help="log output format"
    )


# The flags parse_quickly knows: flag -> (attribute, takes a value); the
# global ones before the verb, the verb's own after it.
_GLOBAL = {
    "-v": ("verbose", False),
    "--verbose": ("verbose", False),
    "-q": ("quiet", False),
    "--quiet": ("quiet", False),
    "--log-format": ("log_format", True),
}
_OWN = {
    "--manifest": ("manifest", True),
    "--root": ("root", True),
    "--dry-run": ("dry_run", False),
    "--no-mount": ("no_mount", False),
    "--defer-signals": ("defer_signals", False),
    "--signal-pending": ("signal_pending", False),
    "--log-format": ("log_format", True),
}


def parse_quickly(argv: Sequence[str]) -> argparse.Namespace | None:
    """The command line of a usual install, read without argparse.

    argparse and what it imports (gettext, locale) cost every boot ~8 ms.
    Anything this does not know (help, an unknown or malformed flag, a
    missing --manifest, both signal flags) returns None, and argparse reads
    the command line as always, with its own messages.
    """
    values: dict[str, object] = {"verb": "install", "quiet": False}
    verbose = 0
    values |= {"log_format": "console", "manifest": None, "root": None}
    values |= {attr: False for attr, valued in _OWN.values() if not valued}
    flags, i, seen_verb = _GLOBAL, 0, False
    while i < len(argv):
        arg = argv[i]
        if arg == "install" and not seen_verb:
            flags, seen_verb, i = _OWN, True, i + 1
            continue
        name, _, inline = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        found = flags.get(name)
        if found is None or (inline and not found[1]):
            return None
        attr, valued = found
        if valued:
            if not inline:
                i += 1
                if i >= len(argv) or argv[i].startswith("-"):
                    return None
                inline = argv[i]
            if attr == "log_format" and inline not in LOG_FORMATS:
                return None  # argparse says which are
            values[attr] = inline
        elif attr == "verbose":
            verbose += 1
        else:
            values[attr] = True
        i += 1
    if not seen_verb or values["manifest"] is None:
        return None
    if values["defer_signals"] and values["signal_pending"]:
        return None
    # argparse's Namespace is a plain attribute bag too; importing argparse
    # for it is what this function avoids.
    return types.SimpleNamespace(**values, verbose=verbose)  # type: ignore[return-value]


def run(args: argparse.Namespace) -> int:
    from nixseal.engine import manifest as manifest_mod
    from nixseal.engine.activation import Activation
    from nixseal.util import log as logging_setup

    log = logging_setup.get_logger()
    root = _root(args.root)
    manifest = manifest_mod.expand_runtime_dir(
        manifest_mod.load(args.manifest), os.environ.get("XDG_RUNTIME_DIR")
    )
    activation = Activation(manifest, root, args.dry_run, not args.no_mount, log)
    try:
        if args.signal_pending:
            return _signal_pending(activation, log)
        return _install(activation, args, log)
    finally:
        activation.close()


def _install(activation: Activation, args: argparse.Namespace, log: Logger) -> int:
    with activation.locked():
        out = activation.run()
        log = log.bind(generation=out.generation)
        counts = {state: len(keys) for state, keys in sorted(out.states.items()) if keys}
        units = {"restart": list(out.units.restart), "reload": list(out.units.reload)}
        if args.dry_run:
            log = log.bind(dry_run=True)
            log.info("dry run finished", previous=out.previous, **counts, would_signal=units)
            return 1 if out.failed else 0
        if out.units and args.defer_signals:
            log.info("units pending", restart=units["restart"], reload=units["reload"])
        elif out.units and _hand_over(activation, out.units, log):
            activation.clear_pending(out.generation)
    log.info("install finished", previous=out.previous, **counts, signalled=units)
    return 1 if out.failed else 0


def _hand_over(activation: Activation, units: Units, log: Logger) -> bool:
    """Units to the manifest's lists, or to systemctl (never under --root)."""
    from nixseal.engine.restart import apply

    m, rooted = activation.m, activation.rooted
    return apply(
        units,
        rooted(m.restart_list_path) if m.restart_list_path else None,
        rooted(m.reload_list_path) if m.reload_list_path else None,
        activation.root is None,
        log,
        user=m.user_mode,
        darwin=m.platform == "darwin",
    )


def _signal_pending(activation: Activation, log: Logger) -> int:
    """Hand over the units the live generation's record holds as pending."""
    with activation.locked():
        live = activation.live_pending()
        if live is None:
            log.info("no units pending")
            return 0
        number, units = live
        handed_over = _hand_over(activation, units, log)
        if handed_over:
            activation.clear_pending(number)
    log.info("pending units signalled", generation=number, restart=list(units.restart))
    return 0 if handed_over else 1


def _root(value: str | None) -> str | None:
    if value is None:
        return None
    root = os.path.abspath(value).rstrip("/")  # a string prefix is wanted
    if not os.path.isdir(root or "/"):
        raise UsageError(f"--root {value}: not a directory")
    return root or None
