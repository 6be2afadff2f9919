"""macOS (nix-darwin): the RAM disk under the generations, and launchd's restarts.

macOS has no ramfs or tmpfs. The mount point gets an HFS+ volume made on a
RAM disk instead, as agenix and sops-nix make theirs there: ``hdiutil
attach -nomount ram://SECTORS`` gives a device backed by memory alone,
``newfs_hfs`` formats it and ``mount -t hfs`` mounts it ``nobrowse``
(Spotlight and the Finder leave it alone), ``nodev`` and ``nosuid``. It is
never written to a disk, and is gone at shutdown. Memory given to a RAM
disk is wired, never paged out.

Services are launchd jobs, named by their labels; a changed secret's jobs
are restarted with ``launchctl kickstart -k``, which kills a running job
and starts it again (launchd has no reload: a reload is the same restart).

The commands are absolute paths (the daemon's PATH is launchd's short
one); the tests point these names at stand-ins that record their argv.
"""

from __future__ import annotations

import os

from nixseal.errors import GenerationError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from nixseal.util.log import Logger

HDIUTIL = "/usr/bin/hdiutil"
NEWFS_HFS = "/sbin/newfs_hfs"
MOUNT = "/sbin/mount"
LAUNCHCTL = "/bin/launchctl"

# As sops-nix's: room for tens of thousands of small secrets and their
# generations; a RAM disk takes its memory as it is written, up to this.
RAM_DISK_BYTES = 64 << 20
SECTOR_BYTES = 512
VOLUME_NAME = "nixseal"
MOUNT_OPTIONS = "nobrowse,nodev,nosuid,-m=0751"


def _run(argv: list[str], step: str, shown: str) -> str:
    """argv's standard output; a GenerationError naming step when it fails."""
    import subprocess

    try:
        proc = subprocess.run(argv, check=False, capture_output=True, text=True)
    except OSError as err:
        reason = err.strerror or str(err)
        raise GenerationError(f"{shown}: cannot mount a RAM disk: {step} failed: {reason}") from err
    if proc.returncode != 0:
        last = proc.stderr.strip().splitlines()[-1:] or [f"exit status {proc.returncode}"]
        raise GenerationError(f"{shown}: cannot mount a RAM disk: {step} failed: {last[0]}")
    return proc.stdout


def mount_ram_disk(path: str, shown: str) -> None:
    """A fresh RAM disk's HFS+ volume mounted on path (physical, existing)."""
    out = _run(
        [HDIUTIL, "attach", "-nomount", f"ram://{RAM_DISK_BYTES // SECTOR_BYTES}"],
        "hdiutil attach",
        shown,
    )
    words = out.split()
    device = words[0] if words else ""
    if not device.startswith("/dev/disk") or not device[len("/dev/disk") :].isdigit():
        raise GenerationError(
            f"{shown}: cannot mount a RAM disk: hdiutil attach failed: "
            f"it printed no /dev/diskN ({len(out)} characters)"
        )
    try:
        # -s: case-sensitive, as the names of secrets are on Linux.
        _run([NEWFS_HFS, "-s", "-v", VOLUME_NAME, device], "newfs_hfs", shown)
        _run([MOUNT, "-t", "hfs", "-o", MOUNT_OPTIONS, device, path], "mount", shown)
    except GenerationError:
        # Give the memory back; a device left attached is never reused.
        import subprocess

        subprocess.run([HDIUTIL, "detach", device], check=False, capture_output=True)
        raise


def kickstart(labels: tuple[str, ...], user: bool, log: Logger) -> bool:
    """launchctl kickstart -k each job; False (logged) when one of them fails.

    System daemons are in the ``system`` domain; a user's agents (the
    home-manager module) in the user's ``gui/<uid>`` domain.
    """
    import subprocess

    domain = f"gui/{os.getuid()}" if user else "system"
    ok = True
    for label in labels:
        try:
            proc = subprocess.run(
                [LAUNCHCTL, "kickstart", "-k", f"{domain}/{label}"],
                check=False,
                capture_output=True,
                text=True,
            )
        except OSError as err:
            log.warning("launchctl failed", label=label, reason=err.strerror)
            ok = False
            continue
        if proc.returncode != 0:
            reason = proc.stderr.strip().splitlines()[-1:] or [f"exit status {proc.returncode}"]
            log.warning("launchctl failed", label=label, reason=reason[0])
            ok = False
    return ok
