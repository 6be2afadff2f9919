"""nixseal host add|remove: the hosts of the rules (nixseal.repo.readers).

A changed key or a removed host makes files stale: the rekey is offered,
and a removed host's secrets are named for rotation.
"""

from __future__ import annotations

import argparse

from nixseal.cli import _readers
from nixseal.models.repo import ReaderKind

EXAMPLES = """\
examples:
  nixseal host add web2 /etc/ssh/ssh_host_ed25519_key.pub
  ssh-keyscan -t ed25519 web2 | nixseal host add web2 -
  nixseal host add web2 --replace "ssh-ed25519 AAAA... root@web2" --rekey
  nixseal host remove web2
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _readers.add_commands(parser, ReaderKind.HOST)


def run(args: argparse.Namespace) -> int:
    return _readers.run_command(args, ReaderKind.HOST)
