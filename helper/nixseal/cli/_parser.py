"""The argparse command line: nixseal's options and every verb's.

Kept out of nixseal.cli so that a usual `nixseal install` (every boot),
whose flags nixseal.cli.install reads itself, never imports argparse.
"""

from __future__ import annotations

import argparse
import os
import sys

from nixseal import __version__, cli
from nixseal.util.log import LOG_FORMATS


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
        "--log-format", choices=LOG_FORMATS, default="console", help="log output format"
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    # `nixseal` alone prints this help (args.print_help)
    parser.set_defaults(print_help=parser.print_help)
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for verb, (_, help_text) in cli.VERBS.items():
        if only is not None and verb != only:
            continue  # a dozen unused subparsers cost `nixseal install` ~5 ms at every boot
        module = cli._verb_module(verb)  # looked up now: tests stand in for it
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
