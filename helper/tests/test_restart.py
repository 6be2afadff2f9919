from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from nixseal.engine import restart
from nixseal.engine.restart import Units, collect


class Log:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def info(self, event: str, **kw: Any) -> None:
        self.events.append((event, kw))

    warning = info


def test_collect_sorts_dedupes_and_prefers_restart() -> None:
    units = collect(["b.service", "a.service", "b.service"], ["a.service", "c.service"])
    assert units == Units(("a.service", "b.service"), ("c.service",))
    assert not collect([], [])


def test_lists_are_appended(tmp_path: Path) -> None:
    lst = tmp_path / "run/nixos/activation-restart-list"
    lst.parent.mkdir(parents=True)
    lst.write_text("earlier.service\n")
    ok = restart.apply(Units(("a.service",), ("b.service",)), lst, tmp_path / "rl", False, Log())
    assert ok
    assert lst.read_text() == "earlier.service\na.service\n"
    assert (tmp_path / "rl").read_text() == "b.service\n"


def test_systemctl_is_asked_when_no_list_is_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = tmp_path / "calls"
    fake = tmp_path / "bin/systemctl"
    fake.parent.mkdir()
    fake.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n[ "$3" != bad.service ]\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:{os.environ['PATH']}")
    monkeypatch.setattr(restart, "SYSTEMD_RUNNING", tmp_path)
    log = Log()
    assert restart.apply(Units(("a.service",), ("b.service",)), None, None, True, log)
    assert calls.read_text().splitlines() == [
        "--no-block try-restart a.service",
        "--no-block try-reload-or-restart b.service",
    ]
    assert not restart.apply(Units(("bad.service",), ()), None, None, True, log)
    assert log.events[-1][0] == "systemctl failed"
    # under --root (may_call_systemd False) or without systemd: nobody is asked
    calls.unlink()
    assert restart.apply(Units(("a.service",), ()), None, None, False, log)
    monkeypatch.setattr(restart, "SYSTEMD_RUNNING", tmp_path / "absent")
    assert restart.apply(Units(("a.service",), ()), None, None, True, log)
    assert not calls.exists()


def test_user_mode_asks_the_users_systemd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # home-manager secrets name user units: the system manager doesn't know them.
    calls = tmp_path / "calls"
    fake = tmp_path / "bin/systemctl"
    fake.parent.mkdir()
    fake.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:{os.environ['PATH']}")
    monkeypatch.setattr(restart, "SYSTEMD_RUNNING", tmp_path)
    assert restart.apply(Units(("a.service",), ("b.service",)), None, None, True, Log(), user=True)
    assert calls.read_text().splitlines() == [
        "--user --no-block try-restart a.service",
        "--user --no-block try-reload-or-restart b.service",
    ]
