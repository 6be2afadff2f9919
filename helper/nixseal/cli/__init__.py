"""Command line: global options, the verb table, error handling.

Each verb lives in its own module exposing
``add_arguments(parser)`` and ``run(args) -> int``. Only the chosen verb's
module is imported: ``nixseal install`` runs at every boot and switch, and
must not pay for the admin verbs' imports.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from types import ModuleType

from nixseal import __version__
from nixseal.errors import NixsealError
from nixseal.util import signals

# verb -> (module, one-line help)
VERBS: dict[str, tuple[str, str]] = {
    "install": ("install", "install secrets from a manifest (activation)"),
    "check-manifest": ("check_manifest", "validate a manifest and the files it names"),
    "init": ("init", "create secrets/secrets.toml and optionally an admin key"),
    "host": ("host", "add, re-key or remove a host in the rules"),
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
    "import-agenix": ("import_agenix", "convert an agenix secrets.nix into the rules"),
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


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """argparse's help formatter, without `import shutil`.

    argparse makes a formatter for every add_argument and asks shutil for
    the terminal width; importing shutil (and the compression modules it
    pulls in) cost `nixseal install` ~3 ms at every boot. Same width, from os.
    Raw description: each verb's examples keep their lines.
    """

    def __init__(
        self,
        prog: str,
        indent_increment: int = 2,
        max_help_position: int = 24,
        width: int | None = None,
    ) -> None:
        if width is None:
            width = _columns() - 2  # as argparse does
        super().__init__(prog, indent_increment, max_help_position, width)


def _columns() -> int:
    """As shutil.get_terminal_size: $COLUMNS, else stdout's terminal, else 80."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns if columns > 0 else 80


def _verb_module(verb: str) -> ModuleType:
    return importlib.import_module(f"nixseal.cli.{VERBS[verb][0]}")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nixseal",
        description="Secrets management for NixOS: age-encrypted secrets in git.",
        epilog="`nixseal VERB --help` shows a verb's options and examples.",
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"nixseal {__version__}")
    parser.add_argument(
        "--rules",
        metavar="PATH",
        help="rules file (default: nearest secrets/secrets.toml at or above the cwd)",
    )
    parser.add_argument(
        "-i",
        "--identity",
        dest="identities",
        action="append",
        default=[],
        metavar="IDENTITY",
        help="age or OpenSSH key file, op:// reference, or plugin identity file "
        "(repeatable; default $NIXSEAL_IDENTITY, then ~/.ssh/id_ed25519)",
    )
    parser.add_argument(
        "--log-format", choices=("console", "json"), default="console", help="log output format"
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    # `nixseal` alone prints this help (args.print_help)
    parser.set_defaults(print_help=parser.print_help)
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for verb, (_, help_text) in VERBS.items():
        if only is not None and verb != only:
            continue  # a dozen unused subparsers cost `nixseal install` ~5 ms at every boot
        module = _verb_module(verb)
        p = sub.add_parser(
            verb,
            help=help_text,
            description=help_text,
            epilog=module.EXAMPLES,
            formatter_class=_Formatter,
        )
        p.set_defaults(print_help=p.print_help)
        module.add_arguments(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    verb = _chosen_verb(args_list)
    with signals.handled(verb if verb in VERBS else None):
        return _main(args_list, verb)


def _main(args_list: list[str], verb: str | None) -> int:
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
