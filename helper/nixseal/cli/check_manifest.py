"""`nixseal check-manifest FILE`: the module's build-time check.

Validates the manifest and every age file it names, without any key: is
it an age file, and (with --host-key) does its header name that ssh key.
Exit status: 0 all good; 1 a named file is missing, not an age file, or
not encrypted to the host key; 2 the manifest itself is malformed.
"""

from __future__ import annotations

import argparse
import sys

EXAMPLES = """\
examples:
  nixseal check-manifest result/manifest.json --host-key /etc/ssh/ssh_host_ed25519_key.pub
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="the manifest (JSON)")
    parser.add_argument(
        "--host-key",
        metavar="PUBKEY",
        help="the host's public key (ssh-ed25519/ssh-rsa line, or a file holding it): "
        "every secret must be encrypted to it",
    )


def run(args: argparse.Namespace) -> int:
    from nixseal.engine import check_manifest, manifest

    loaded = manifest.load(args.file)
    tag = None
    if args.host_key:
        tag = check_manifest.host_key_tag(args.host_key)
        if tag is None:
            print(
                "nixseal check-manifest: note: age recipients are anonymous in age headers; "
                "only checking that the files are age files",
                file=sys.stderr,
            )
    problems = check_manifest.problems(loaded, tag)
    for problem in problems:
        print(f"nixseal check-manifest: error: {problem}", file=sys.stderr)
    if problems:
        return 1
    print(
        f"nixseal check-manifest: ok: {args.file}: {len(loaded.secrets)} secrets, "
        f"{len(loaded.templates)} templates"
    )
    return 0
