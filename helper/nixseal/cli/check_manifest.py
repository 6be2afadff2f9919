"""`nixseal check-manifest FILE`: the module's build-time check.

Validates the manifest and every age file it names, without any key: is
it an age file, and (with --host-key) does its header name that ssh key.
Exit status: 0 all good; 1 a named file is missing, not an age file, or
not encrypted to the host key; 2 the manifest itself is malformed.
"""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="the manifest (JSON)")
    parser.add_argument(
        "--host-key",
        metavar="PUBKEY",
        help="the host's public key (ssh-ed25519/ssh-rsa line, or a file holding it): "
        "every secret must be encrypted to it",
    )


def run(args: argparse.Namespace) -> int:
    from nixseal.age.header import parse_header, ssh_key_tag
    from nixseal.engine import manifest as manifest_mod
    from nixseal.errors import CryptoError, UsageError
    from nixseal.util.readfile import AGE_FILE_LIMIT, read_regular

    manifest = manifest_mod.load(args.file)
    tag = None
    if args.host_key:
        key = _host_key_text(args.host_key)
        if key.startswith("age1"):
            print(
                "nixseal check-manifest: note: age recipients are anonymous in age headers; "
                "only checking that the files are age files",
                file=sys.stderr,
            )
        else:
            try:
                tag = ssh_key_tag(key)
            except CryptoError as err:
                raise UsageError(f"--host-key: {err}") from err
    problems = []
    for secret in manifest.secrets:
        where = f"secret {secret.name!r} ({secret.file})"
        try:
            data = read_regular(secret.file, AGE_FILE_LIMIT)
        except OSError as err:
            problems.append(f"{where}: cannot read: {err.strerror}")
            continue
        try:
            header = parse_header(data, secret.file)
        except CryptoError as err:
            problems.append(f"{where}: {str(err).split(': ', 1)[-1]}")
            continue
        if tag is not None and tag not in header.ssh_tags:
            problems.append(f"{where}: not encrypted to the host key ({tag}); rekey it")
    for problem in problems:
        print(f"nixseal check-manifest: error: {problem}", file=sys.stderr)
    if problems:
        return 1
    print(
        f"nixseal check-manifest: ok: {args.file}: {len(manifest.secrets)} secrets, "
        f"{len(manifest.templates)} templates"
    )
    return 0


def _host_key_text(value: str) -> str:
    """The public key line given, or the first one in the file named."""
    from nixseal.errors import UsageError
    from nixseal.util.keytext import PRIVATE_KEY, looks_private
    from nixseal.util.readfile import TEXT_LIMIT, read_regular

    text = value.strip()
    if looks_private(text):
        raise UsageError(f"--host-key: {PRIVATE_KEY}; give the host's public key instead")
    if text.startswith(("ssh-", "age1")):
        return text
    try:
        lines = read_regular(text, TEXT_LIMIT).decode().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise UsageError(f"--host-key {value}: neither a public key nor a readable file") from err
    if any(looks_private(line) for line in lines):
        raise UsageError(
            f"--host-key {value}: {PRIVATE_KEY} in this file; give the public key "
            "(e.g. ssh_host_ed25519_key.pub)"
        )
    for line in lines:
        if line.strip().startswith(("ssh-", "age1")):
            return line.strip()
    # Never quote the file: it may well be the private key (ssh or age).
    raise UsageError(
        f"--host-key {value}: no ssh-ed25519, ssh-rsa or age1 public key in this file "
        "(give the public key, e.g. ssh_host_ed25519_key.pub)"
    )
