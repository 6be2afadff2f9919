"""Sealing a secret as a systemd credential: `systemd-creds encrypt`.

A secret with `seal` (its credential id) is stored, in its generation, as
what `systemd-creds encrypt --name=<id>` makes of it: encrypted with the
host key (/var/lib/systemd/credential.secret, created on first use) and a
TPM2 chip where there is one, as systemd-creds chooses by default. Units
get it with LoadCredentialEncrypted=, which only systemd can open. The
plaintext goes to systemd-creds on a pipe, never into a file.
"""

from __future__ import annotations

from nixseal.errors import NixsealError


def seal(program: str, name: str, value: bytes) -> bytes:
    """value encrypted as credential name; NixsealError (never the value) when it cannot be."""
    # Only installs that seal pay for subprocess's import.
    import subprocess

    argv = [program, "encrypt", f"--name={name}", "-", "-"]
    try:
        proc = subprocess.run(argv, input=value, capture_output=True, check=False)
    except OSError as err:
        raise NixsealError(f"cannot run {program}: {err.strerror}") from err
    if proc.returncode != 0 or not proc.stdout:
        lines = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        reason = lines[-1] if lines else f"exit status {proc.returncode}"
        raise NixsealError(f"systemd-creds encrypt failed: {reason}")
    return bytes(proc.stdout)
