"""macOS (nix-darwin): the RAM disk under the generations, and launchd's restarts.

macOS has no ramfs or tmpfs. The mount point gets an HFS+ volume made on a
RAM disk instead, as agenix and sops-nix make theirs there: ``hdiutil
attach -nomount ram://SECTORS`` gives a device backed by memory alone,
``newfs_hfs`` formats it and ``mount -t hfs`` mounts it ``nobrowse``
(Spotlight and the Finder leave it alone), ``nodev`` and ``nosuid``. It is
never written to a disk, and is gone at shutdown. Memory given to a RAM
disk is wired, never paged out.

home-manager's install (user mode) gets a RAM disk of the user's own the
same way, without root (mount_user_ram_disk): a user's temporary
directory is on the disk, and no per-user directory in memory exists.

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


def _attach(shown: str) -> str:
    """A new RAM disk's device (/dev/diskN), backed by memory alone."""
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
    return device


def detach(device: str) -> None:
    """Give the memory back (unmounting first); a device left attached is never reused."""
    import subprocess

    subprocess.run([HDIUTIL, "detach", device], check=False, capture_output=True)


def mount_ram_disk(path: str, shown: str) -> None:
    """A fresh RAM disk's HFS+ volume mounted on path (physical, existing)."""
    device = _attach(shown)
    try:
        # -s: case-sensitive, as the names of secrets are on Linux.
        _run([NEWFS_HFS, "-s", "-v", VOLUME_NAME, device], "newfs_hfs", shown)
        _run([MOUNT, "-t", "hfs", "-o", MOUNT_OPTIONS, device, path], "mount", shown)
    except GenerationError:
        detach(device)
        raise


# -- a user's own RAM disk (home-manager) ---------------------------------------
#
# Without root, as the user: hdiutil attaches a RAM disk and gives its
# device node to the user who asked; newfs_hfs formats it (the user may
# write the node) with the root directory the user's and 0700; mount(8)
# mounts it on the mount point, which the kernel allows a user on a
# directory of their own, forcing nosuid and nodev. Disk Arbitration
# (diskutil) is not used: it mounts disk images with ownership ignored,
# which would let every user of the Mac act as the files' owner.
#
# What is mounted there is trusted only when mount(8)'s list shows it as
# hfs, with ownership honoured (no "noowners"), mounted by this user (the
# kernel records who mounted; mount(8) prints "mounted by NAME" for any
# user but root), from a device hdiutil lists as attached from ram://.

USER_MOUNT_OPTIONS = "nobrowse,nodev,nosuid"


def account() -> tuple[int, int, str | None]:
    """This user's uid, primary gid and name (None for root: mount names no one)."""
    import pwd

    uid = os.getuid()
    if uid == 0:
        return 0, os.getgid(), None
    try:
        return uid, os.getgid(), pwd.getpwuid(uid).pw_name
    except KeyError:
        return uid, os.getgid(), str(uid)


def listed(path: str, shown: str) -> tuple[str, list[str]] | None:
    """The device and options mount(8) lists for path (physical), if mounted.

    Its lines are "DEVICE on PATH (TYPE, OPTION, ...)".
    """
    marker = f" on {path} ("
    found = None
    for line in _run([MOUNT], "mount", shown).splitlines():
        device, sep, rest = line.partition(marker)
        if sep and rest.endswith(")"):
            found = device, [o.strip() for o in rest[:-1].split(",")]
    return found  # the last: what is mounted on top, and seen at path


def _ram_devices(info: str) -> set[str]:
    """The devices of images attached from ram://, from hdiutil info's report.

    The report has one section per image (separated by a line of "="), with
    "image-path : ..." and lines starting with the image's /dev/diskN.
    """
    found: set[str] = set()
    ram = False
    for line in info.splitlines():
        if line.startswith("="):
            ram = False
            continue
        key, sep, value = line.partition(":")
        if sep and key.strip() == "image-path":
            ram = value.strip().startswith("ram://")
        elif ram and line.startswith("/dev/disk"):
            found.add(line.split()[0])
    return found


def foreign(device: str, options: list[str], name: str | None, shown: str) -> str | None:
    """Why the listed file system is not a private RAM disk of this user's (None: it is)."""
    fstype = options[0] if options else ""
    if fstype != "hfs":
        return f"it is {fstype or 'of no type'}, not hfs"
    if "noowners" in options:
        return "it ignores ownership (noowners)"
    by = next((o[len("mounted by ") :] for o in options if o.startswith("mounted by ")), None)
    if by != name:
        return f"it was mounted by {by or 'root'}, not by {name or 'root'}"
    if device not in _ram_devices(_run([HDIUTIL, "info"], "hdiutil info", shown)):
        return f"{device} is not a RAM disk"
    return None


def mount_user_ram_disk(path: str, uid: int, gid: int, name: str | None, shown: str) -> str:
    """A fresh RAM disk of this user's on path (physical, the user's own directory),
    checked as a reused one is; detached again when any step fails. Its device."""
    device = _attach(shown)
    try:
        # -U/-G/-M: the volume's top directory is the user's, 0700, from the start.
        owned = ["-U", str(uid), "-G", str(gid), "-M", "700"]
        _run([NEWFS_HFS, "-s", *owned, "-v", f"{VOLUME_NAME}-{uid}", device], "newfs_hfs", shown)
        _run([MOUNT, "-t", "hfs", "-o", USER_MOUNT_OPTIONS, device, path], "mount", shown)
        found = listed(path, shown)
        if found is None:
            why: str | None = "mount does not list it"
        elif found[0] != device:
            why = f"mount lists {found[0]} there, not {device}"
        else:
            why = foreign(device, found[1], name, shown)
        if why is not None:
            raise GenerationError(f"{shown}: cannot mount a RAM disk: the new volume: {why}")
    except GenerationError:
        detach(device)
        raise
    return device


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
