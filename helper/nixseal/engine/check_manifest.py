"""The module's build-time check of a manifest (`nixseal check-manifest`).

Validates every age file the manifest names, without any key: is it an
age file, and (given the host's key) does its header name that ssh key.
"""

from __future__ import annotations

from nixseal.age.header import parse_header, ssh_key_tag
from nixseal.engine.manifest import Manifest
from nixseal.errors import CryptoError, UsageError
from nixseal.util.keytext import PRIVATE_KEY, looks_private
from nixseal.util.readfile import AGE_FILE_LIMIT, TEXT_LIMIT, read_regular


def host_key_tag(value: str) -> str | None:
    """The tag age headers name the host's ssh key by; None for an age key,
    which age headers never name (its recipients are anonymous)."""
    key = _host_key_text(value)
    if key.startswith("age1"):
        return None
    try:
        return ssh_key_tag(key)
    except CryptoError as err:
        raise UsageError(f"--host-key: {err}") from err


def problems(manifest: Manifest, tag: str | None) -> list[str]:
    """One line per secret whose file is unreadable, not an age file, or
    (with tag) not encrypted to the host's key."""
    found = []
    for secret in manifest.secrets:
        where = f"secret {secret.name!r} ({secret.file})"
        try:
            data = read_regular(secret.file, AGE_FILE_LIMIT)
        except OSError as err:
            found.append(f"{where}: cannot read: {err.strerror}")
            continue
        try:
            header = parse_header(data, secret.file)
        except CryptoError as err:
            found.append(f"{where}: {str(err).split(': ', 1)[-1]}")
            continue
        if tag is not None and tag not in header.ssh_tags:
            found.append(f"{where}: not encrypted to the host key ({tag}); rekey it")
    return found


def _host_key_text(value: str) -> str:
    """The public key line given, or the first one in the file named."""
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
