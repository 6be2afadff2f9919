"""tests/_units.py renders units by NixOS's rules (nixos/lib/systemd-lib.nix,
nixos/lib/systemd-unit-options.nix) and home-manager's (modules/systemd.nix).

Each case is a rule as those files state it, checked on a unit written for
the rule; the real-systemd tests then boot what the renderer writes.
"""

from __future__ import annotations

import json
from pathlib import Path

from _units import GuestStore, Rendered, render_system, render_user, section, store_path

STORE = "/nix/store/" + "a" * 32
DEFAULT_PATH = [f"{STORE}-coreutils-9.5", f"{STORE}-systemd-257"]


def service(**fields: object) -> dict[str, object]:
    return {"enable": True, "restartIfChanged": True, "stopIfChanged": True, **fields}


def one(**fields: object) -> tuple[str, Rendered]:
    out = render_system({"services": {"app": service(**fields)}}, DEFAULT_PATH)
    return out.files["app.service"], out


def test_dependency_lists_are_one_space_separated_line() -> None:
    text, _ = one(after=["a.service", "b.target"], wants=["c.service"], requires=["d.service"])
    assert "After=a.service b.target\n" in text
    assert "Wants=c.service\n" in text
    assert "Requires=d.service\n" in text


def test_list_attributes_become_repeated_lines_and_keys_are_sorted() -> None:
    text, _ = one(serviceConfig={"Type": "oneshot", "ExecStartPre": ["/bin/a", "/bin/b"]})
    service_part = text.split("[Service]\n", 1)[1]
    assert service_part.index("ExecStartPre=/bin/a\nExecStartPre=/bin/b\n") < service_part.index(
        "Type=oneshot"
    )
    assert section({"B": True, "A": False, "C": 3}) == "A=false\nB=true\nC=3\n"


def test_script_becomes_exec_start_of_a_set_e_script() -> None:
    text, out = one(script="echo hi", preStart="echo pre")
    start = next(line for line in text.splitlines() if line.startswith("ExecStart="))
    exe = start.removeprefix("ExecStart=")
    assert exe.startswith("/nix/store/") and exe.endswith("-unit-script-app-start/bin/app-start")
    assert out.store[exe] == "#!/bin/bash\nset -e\n\necho hi"
    assert "ExecStartPre=" in text and "app-pre-start" in text


def test_environment_and_the_default_path() -> None:
    text, _ = one(environment={"B": "x y", "A": "1", "GONE": None}, path=[f"{STORE}-jq-1.7"])
    lines = [line for line in text.splitlines() if line.startswith("Environment=")]
    assert lines[0] == 'Environment="A=1"'
    assert lines[1] == 'Environment="B=x y"'
    path = json.loads(lines[2].removeprefix("Environment="))
    assert path == (
        f"PATH={STORE}-jq-1.7/bin:{STORE}-coreutils-9.5/bin:{STORE}-systemd-257/bin"
        f":{STORE}-jq-1.7/sbin:{STORE}-coreutils-9.5/sbin:{STORE}-systemd-257/sbin"
    )
    assert not any("GONE" in line for line in lines)


def test_restart_triggers_name_a_store_file_that_changes_with_them() -> None:
    a, out = one(restartTriggers=["/nix/store/x-manifest.json"])
    b, _ = one(restartTriggers=["/nix/store/y-manifest.json"])
    trigger = next(line for line in a.splitlines() if line.startswith("X-Restart-Triggers="))
    path = trigger.split("=", 1)[1]
    assert out.store[path] == "/nix/store/x-manifest.json"
    assert "-X-Restart-Triggers-app" in path
    assert a != b


def test_wanted_by_required_by_and_aliases_become_symlinks() -> None:
    text, out = one(
        wantedBy=["multi-user.target"], requiredBy=["x.target"], aliases=["other.service"]
    )
    assert text.endswith("\n[Install]\nWantedBy=multi-user.target\n")
    assert out.links["multi-user.target.wants/app.service"] == "../app.service"
    assert out.links["x.target.requires/app.service"] == "../app.service"
    assert out.links["other.service"] == "app.service"


def test_change_flags_and_disabled_units() -> None:
    text, _ = one(reloadIfChanged=True, stopIfChanged=False)
    assert "X-ReloadIfChanged=true\n" in text and "X-StopIfChanged=false\n" in text
    text, _ = one(restartIfChanged=False)
    assert "X-RestartIfChanged=false\n" in text
    out = render_system({"services": {"off": service(enable=False)}}, DEFAULT_PATH)
    assert out.links["off.service"] == "/dev/null"


def test_upstream_units_get_a_drop_in() -> None:
    out = render_system(
        {"services": {"systemd-sysusers": service(before=["x.target"])}},
        DEFAULT_PATH,
        upstream={"systemd-sysusers.service"},
    )
    assert "systemd-sysusers.service.d/overrides.conf" in out.files


def test_home_manager_units_are_ini_sections_with_wants_links() -> None:
    out = render_user(
        {
            "nixseal": {
                "Unit": {"Description": "d", "X-Restart-Triggers": ["/nix/store/m"]},
                "Service": {"Type": "oneshot", "ExecStart": "/bin/x"},
                "Install": {"WantedBy": ["default.target"]},
            }
        }
    )
    text = out.files["nixseal.service"]
    assert text.index("[Install]") < text.index("[Service]") < text.index("[Unit]")
    assert "X-Restart-Triggers=/nix/store/m\n" in text
    assert out.links["default.target.wants/nixseal.service"] == "../nixseal.service"


def test_the_guest_store_maps_packages_and_refuses_unknown_paths(tmp_path: Path) -> None:
    store = GuestStore(tmp_path / "store")
    script = store_path("s", "x")
    store.add([f"ExecStart={STORE}-bash-5.2/bin/bash {script}"], {script: "#!/bin/sh\n"})
    assert (tmp_path / "store" / f"{'a' * 32}-bash-5.2").readlink() == Path("/usr")
    assert (tmp_path / "store" / script.removeprefix("/nix/store/")).stat().st_mode & 0o111
    try:
        store.add([f"ExecStart=/nix/store/{'b' * 32}-unknown-1/bin/x"], {})
    except AssertionError as err:
        assert "nothing provides" in str(err)
    else:
        raise AssertionError("an unknown store path was accepted")
