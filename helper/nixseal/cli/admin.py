"""nixseal admin add|remove: the admins of the rules (nixseal.repo.readers).

Every secret is encrypted to every admin, so each change offers to rekey
them all; a removed admin's secrets are named for rotation.
"""

from __future__ import annotations

import argparse

from nixseal.cli import _readers
from nixseal.models.repo import ReaderKind

EXAMPLES = """\
examples:
  nixseal admin add bob ~/bob.pub --rekey
  nixseal admin add bob --replace age1... --rekey
  nixseal admin remove bob --rekey
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _readers.add_commands(parser, ReaderKind.ADMIN)


def run(args: argparse.Namespace) -> int:
    return _readers.run_command(args, ReaderKind.ADMIN)
