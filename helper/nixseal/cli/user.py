"""nixseal user add|remove: the users of the rules, people whose own key
reads their per-user secrets (nixseal.repo.readers)."""

from __future__ import annotations

import argparse

from nixseal.cli import _readers
from nixseal.models.repo import ReaderKind

EXAMPLES = """\
examples:
  nixseal user add carol age1...
  nixseal user add carol --replace ~/carol.pub --rekey
  nixseal user remove carol
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _readers.add_commands(parser, ReaderKind.USER)


def run(args: argparse.Namespace) -> int:
    return _readers.run_command(args, ReaderKind.USER)
