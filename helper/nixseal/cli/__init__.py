"""Command line: global options, the verb table, error handling.

Each verb lives in its own module exposing
``add_arguments(parser)`` and ``run(args) -> int``. Only the chosen verb's
module is imported: ``nixseal install`` runs at every boot and switch, and
must not pay for the admin verbs' imports.
"""

from __future__ import annotations

import os
import sys
from types import ModuleType

from nixseal.errors import NixsealError
from nixseal.util import signals

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence

# verb -> (module, one-line help)
VERBS: dict[str, tuple[str, str]] = {
    "install": ("install", "install secrets from a manifest (activation)"),
    "check-manifest": ("check_manifest", "validate a manifest and the files it names"),
    "init": ("init", "create secrets/secrets.toml and optionally an admin key"),
    "host": ("host", "add, re-key, reinstall or remove a host in the rules"),
    "admin": ("admin", "add, re-key or remove an admin in the rules"),
    "user": ("user", "add, re-key or remove a user in the rules"),
    "group": ("group", "set or remove a group of hosts in the rules"),
    "edit": ("edit", "edit a secret in $EDITOR, in a private tmpfs"),
    "encrypt": ("encrypt", "encrypt stdin or a file into a secret"),
    "decrypt": ("decrypt", "decrypt a secret to stdout"),
    "rekey": ("rekey", "re-encrypt secrets whose recipients differ from the rules"),
    "rotate": ("rotate", "give secrets new values from their generator or source"),
    "pull": ("pull", "read 1Password sources and encrypt them"),
    "check": ("check", "fail when files are missing or encrypted to the wrong keys"),
    "audit": ("audit", "who can read each secret, and how old it is"),
    "status": ("status", "what each host has installed, against the repository (over ssh)"),
    "import-agenix": ("import_agenix", "convert an agenix secrets.nix into the rules"),
    "import-sops": ("import_sops", "turn sops files into secrets, each value checked"),
    "completion": ("completion", "print the completion script for bash, zsh or fish"),
}

# Global options that take a value: needed to find the verb in argv
# without building every verb's parser.
_VALUED_GLOBALS = ("--rules", "-i", "--identity", "--log-format")


def _chosen_verb(argv: Sequence[str]) -> str | None:
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in _VALUED_GLOBALS:
            skip = True
            continue
        if arg == "--":
            return None
        if arg.startswith("-"):
            continue
        return arg
    return None


def _verb_module(verb: str) -> ModuleType:
    # __import__, not importlib.import_module: importlib (with warnings)
    # is one more import at every boot.
    name = f"nixseal.cli.{VERBS[verb][0]}"
    __import__(name)
    return sys.modules[name]


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole command line (or nixseal's and only's): nixseal.cli._parser."""
    from nixseal.cli import _parser

    return _parser.build_parser(only)


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    verb = _chosen_verb(args_list)
    with signals.handled(verb if verb in VERBS else None):
        return _main(args_list, verb)


def _main(args_list: list[str], verb: str | None) -> int:
    args = None
    if verb == "install":  # at every boot: its usual flags without argparse
        args = _verb_module(verb).parse_quickly(args_list)
    if args is None:
        parser = build_parser(verb if verb in VERBS else None)
        args = parser.parse_args(args_list)
    if args.verb is None:
        args.print_help()
        return 0

    from nixseal.util import log

    # `install` runs at every boot: the same lines, without structlog
    log.configure(args.log_format, -1 if args.quiet else args.verbose, lean=args.verb == "install")
    try:
        with signals.running():
            code: int = _verb_module(args.verb).run(args)
    except BaseException as err:
        if signals.received and not isinstance(err, SystemExit):
            # whatever the signal's exception became on its way up
            return signals.report(signals.received[0])
        return _failure(args.verb, err)
    if signals.received:  # swallowed on the way (by a library), but it came
        return signals.report(signals.received[0])
    return code


def _failure(verb: str, err: BaseException) -> int:
    """The one line and the exit status for what a verb raised."""
    if isinstance(err, KeyboardInterrupt):  # another handler's (the CLI run in process)
        return signals.report(signals.SIGINT)
    if isinstance(err, NixsealError):
        print(f"nixseal {verb}: error: {err}", file=sys.stderr)
        return err.exit_code
    if isinstance(err, BrokenPipeError):
        _drop_stdout()
        return 1
    if isinstance(err, OSError):
        # What no verb turned into a message, e.g. stdout on a full disk.
        _drop_stdout()
        where = f"{err.filename}: " if err.filename else "writing output: "
        print(f"nixseal {verb}: error: {where}{err.strerror or err}", file=sys.stderr)
        return 1
    if not isinstance(err, Exception) or os.environ.get("NIXSEAL_DEBUG"):
        raise err
    # A bug. Not a traceback: its message may quote the data at hand
    # (a value, a key); the exception type and where it happened say enough.
    print(f"nixseal {verb}: internal error: {_where(err)}", file=sys.stderr)
    return 1


def _where(err: BaseException) -> str:
    import traceback

    frames = traceback.extract_tb(err.__traceback__)
    place = f" at {frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno}" if frames else ""
    return f"{type(err).__name__}{place} (a bug: please report it; NIXSEAL_DEBUG=1 shows more)"


def _drop_stdout() -> None:
    """Point stdout at /dev/null, so its unwritable rest is no second error at exit."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sys.stdout.fileno())
    except (OSError, AttributeError, ValueError):
        pass  # no real stdout (closed, or replaced by a test): nothing to flush
