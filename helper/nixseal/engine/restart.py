"""Telling systemd about changed secrets: restart and reload lists, or systemctl
(on macOS, launchd: nixseal.engine.darwin).

In activation-script mode NixOS collects units to restart in
/run/nixos/activation-restart-list (and -reload-list) and acts on them
after activation; the manifest then names those files and we append to
them. Otherwise (a systemd unit runs us) we ask systemd ourselves, without
waiting (--no-block), and only for units that are running (try-...).
"""

from __future__ import annotations

import os

from nixseal.util.lean import NamedTuple

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

    from nixseal.util.log import Logger

SYSTEMD_RUNNING = "/run/systemd/system"


class Units(NamedTuple):
    """Units to signal. A NamedTuple: no dataclass set-up on the boot path."""

    restart: tuple[str, ...] = ()
    reload: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.restart or self.reload)


def collect(restart: Iterable[str], reload: Iterable[str]) -> Units:
    """Sorted, de-duplicated; a unit to restart needs no reload as well."""
    restarts = sorted(set(restart))
    reloads = sorted(set(reload) - set(restarts))
    return Units(tuple(restarts), tuple(reloads))


def append_list(path: str, units: Iterable[str]) -> None:
    text = "".join(f"{u}\n" for u in units)
    if not text:
        return
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def systemctl(action: str, units: tuple[str, ...], log: Logger, user: bool = False) -> bool:
    """systemctl [--user] --no-block <action> units; False (logged) when it fails."""
    if not units:
        return True
    import subprocess

    # A per-user install (home-manager) names the user's own units, which
    # only the user's systemd instance knows.
    scope = ["--user"] if user else []
    try:
        proc = subprocess.run(
            ["systemctl", *scope, "--no-block", action, *units],
            check=False,
            capture_output=True,
            text=True,
        )
    except OSError as err:
        log.warning("systemctl failed", action=action, units=list(units), reason=err.strerror)
        return False
    if proc.returncode != 0:
        reason = proc.stderr.strip().splitlines()[-1:] or [f"exit status {proc.returncode}"]
        log.warning("systemctl failed", action=action, units=list(units), reason=reason[0])
        return False
    return True


def apply(
    units: Units,
    restart_list: str | None,
    reload_list: str | None,
    may_call_systemd: bool,
    log: Logger,
    *,
    user: bool = False,
    darwin: bool = False,
) -> bool:
    """Hand units over to NixOS or systemd (launchd on macOS); True when all
    of them were handed over."""
    ok = True
    for action, selected, list_path in (
        ("try-restart", units.restart, restart_list),
        ("try-reload-or-restart", units.reload, reload_list),
    ):
        if not selected:
            continue
        if darwin and may_call_systemd:
            from nixseal.engine.darwin import kickstart

            # launchd has no reload: both lists are restarted.
            if kickstart(selected, user, log):
                log.info("units signalled", action="kickstart", units=list(selected))
            else:
                ok = False
        elif list_path is not None:
            append_list(list_path, selected)
            log.info("units queued", action=action, units=list(selected), list=list_path)
        elif may_call_systemd and os.path.isdir(SYSTEMD_RUNNING):
            if systemctl(action, selected, log, user):
                log.info("units signalled", action=action, units=list(selected))
            else:
                ok = False
        else:
            log.info("units not signalled (systemd not running here)", units=list(selected))
    return ok
