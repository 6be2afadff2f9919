"""The helper on macOS (nixseal/engine/darwin.py and the darwin paths of the
engine): the RAM disk under the generations, and launchctl's restarts.

No macOS here: hdiutil, newfs_hfs, mount and launchctl are stand-in scripts
that record their argv (and print what the real ones print), pointed at by
the module's command paths. What the real commands do is unverified here
(docs/testing.md).
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from _activation import Recorder, Scene, make_scene
from conftest import needs_root

from nixseal.engine import darwin
from nixseal.engine import generation as gen
from nixseal.engine import manifest as manifest_mod
from nixseal.engine.restart import Units, apply
from nixseal.errors import GenerationError
from nixseal.util import safepath

STANDIN = """#!/bin/sh
printf '%s\\n' "$(basename "$0") $*" >> {log}
case "$(basename "$0") $1" in
  "hdiutil attach") printf '/dev/disk7          \\t\\n' ;;
esac
if [ -n "${{FAIL_{name}:-}}" ]; then echo "$(basename "$0"): it failed" >&2; exit 1; fi
"""


class Tools:
    def __init__(self, tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.log = tmp / "argv.log"
        bin_dir = tmp / "bin"
        bin_dir.mkdir()
        for attr, name in (
            ("HDIUTIL", "hdiutil"),
            ("NEWFS_HFS", "newfs_hfs"),
            ("MOUNT", "mount"),
            ("LAUNCHCTL", "launchctl"),
        ):
            script = bin_dir / name
            script.write_text(STANDIN.format(log=self.log, name=name.upper()))
            script.chmod(0o755)
            monkeypatch.setattr(darwin, attr, str(script))

    def calls(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []


@pytest.fixture
def tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Tools:
    return Tools(tmp_path, monkeypatch)


@pytest.fixture
def scene(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Scene:
    return make_scene(
        tmp_path,
        capsys,
        platform="darwin",
        restartListPath=None,
        reloadListPath=None,
    )


def test_mount_makes_formats_and_mounts_a_ram_disk(tools: Tools, tmp_path: Path) -> None:
    target = tmp_path / "secrets.d"
    target.mkdir()
    darwin.mount_ram_disk(str(target), "/run/secrets.d")
    sectors = (64 << 20) // 512
    assert tools.calls() == [
        f"hdiutil attach -nomount ram://{sectors}",
        "newfs_hfs -s -v nixseal /dev/disk7",
        f"mount -t hfs -o nobrowse,nodev,nosuid,-m=0751 /dev/disk7 {target}",
    ]


@pytest.mark.parametrize("step", ["NEWFS_HFS", "MOUNT"])
def test_a_failed_step_detaches_the_ram_disk_and_names_the_step(
    step: str, tools: Tools, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(f"FAIL_{step}", "1")
    with pytest.raises(GenerationError) as err:
        darwin.mount_ram_disk(str(tmp_path), "/run/secrets.d")
    shown = step.lower()
    assert str(err.value) == (
        f"/run/secrets.d: cannot mount a RAM disk: {shown} failed: {shown}: it failed"
    )
    assert tools.calls()[-1] == "hdiutil detach /dev/disk7"


def test_hdiutil_printing_no_device_is_an_error(
    tools: Tools, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    silent = tmp_path / "silent"
    silent.write_text("#!/bin/sh\nexit 0\n")
    silent.chmod(0o755)
    monkeypatch.setattr(darwin, "HDIUTIL", str(silent))
    with pytest.raises(GenerationError, match="hdiutil attach failed: it printed no /dev/diskN"):
        darwin.mount_ram_disk(str(tmp_path), "/run/secrets.d")
    assert tools.calls() == []  # nothing formatted or mounted


def test_a_missing_command_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(darwin, "HDIUTIL", str(tmp_path / "nowhere"))
    with pytest.raises(GenerationError, match="hdiutil attach failed: No such file"):
        darwin.mount_ram_disk(str(tmp_path), "/run/secrets.d")


@needs_root
def test_install_mounts_the_ram_disk_once(scene: Scene, tools: Tools) -> None:
    scene.add("db/password", b"s3cret")
    r = scene.install("--log-format", "json")  # and no --no-mount
    assert r.code == 0, r.err
    calls = tools.calls()
    assert [c.split()[0] for c in calls] == ["hdiutil", "newfs_hfs", "mount"]
    physical = os.path.realpath(scene.root / "run/secrets.d")
    assert calls[2].endswith(f" /dev/disk7 {physical}")
    assert (scene.live("db/password")).read_bytes() == b"s3cret"
    st = os.stat(scene.root / "run/secrets.d")
    assert stat.S_IMODE(st.st_mode) == 0o751
    # The stand-in mounted nothing, so the check that something is mounted
    # there cannot hold: the second run mounts again, as it would after a
    # reboot. A real RAM disk is a mount point, which the next run leaves.
    top = safepath.open_root(str(scene.root))
    store = gen.Store.open(top, "/run/secrets.d", "/run/secrets.d", None)
    try:
        assert store.mount(False, 0, darwin=True)
    finally:
        store.close()
        top.close()


@needs_root
def test_install_no_mount_runs_no_command(scene: Scene, tools: Tools) -> None:
    scene.add("a", b"x")
    assert scene.install("--no-mount").code == 0
    assert tools.calls() == []


def test_restarts_kickstart_each_label_in_the_system_domain(tools: Tools) -> None:
    log = Recorder()
    units = Units(("org.nixos.nginx", "org.nixos.grafana"), ("com.example.app",))
    assert apply(units, None, None, True, log, darwin=True)
    assert tools.calls() == [
        "launchctl kickstart -k system/org.nixos.nginx",
        "launchctl kickstart -k system/org.nixos.grafana",
        "launchctl kickstart -k system/com.example.app",
    ]


def test_user_restarts_are_in_the_users_gui_domain(tools: Tools) -> None:
    assert apply(
        Units(("org.nix-community.home.app",)), None, None, True, Recorder(), user=True, darwin=True
    )
    assert tools.calls() == [f"launchctl kickstart -k gui/{os.getuid()}/org.nix-community.home.app"]


def test_a_failed_kickstart_is_a_warning_and_the_others_still_run(
    tools: Tools, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAIL_LAUNCHCTL", "1")
    log = Recorder()
    assert not apply(Units(("a.b", "c.d")), None, None, True, log, darwin=True)
    assert len(tools.calls()) == 2
    warnings = [(e, f) for level, e, f in log.events if level == "warning"]
    assert warnings == [
        ("launchctl failed", {"label": "a.b", "reason": "launchctl: it failed"}),
        ("launchctl failed", {"label": "c.d", "reason": "launchctl: it failed"}),
    ]


def test_under_root_nothing_is_kickstarted(tools: Tools) -> None:
    assert apply(Units(("a.b",)), None, None, False, Recorder(), darwin=True)
    assert tools.calls() == []


def _manifest(**top: object) -> dict[str, object]:
    return {"version": 1, "secrets": [], "platform": "darwin", **top}


def test_darwin_manifests_name_launchd_labels() -> None:
    doc = _manifest(
        secrets=[
            {"name": "a", "file": "/x.age", "restartUnits": ["org.nixos.nginx"], "reloadUnits": []}
        ]
    )
    m = manifest_mod.parse(json.dumps(doc))
    assert m.platform == "darwin"
    assert m.secrets[0].restart_units == ("org.nixos.nginx",)


@pytest.mark.parametrize("label", ["org/nixos", "-x", ".x", "a b", "", "x\n"])
def test_a_bad_label_is_refused(label: str) -> None:
    doc = _manifest(secrets=[{"name": "a", "file": "/x.age", "restartUnits": [label]}])
    with pytest.raises(manifest_mod.ManifestError) as err:
        manifest_mod.parse(json.dumps(doc), "m.json")
    assert str(err.value) == (
        f"m.json: secrets[0].restartUnits[0]: bad launchd label {label!r} (on darwin these "
        'name launchd jobs, such as "org.nixos.nginx")'
    )


@pytest.mark.parametrize(
    ("field", "message"),
    [
        ({"useTmpfs": True}, 'useTmpfs: a tmpfs is Linux\'s; platform "darwin" needs false'),
        (
            {"systemdCreds": "/bin/systemd-creds"},
            'systemdCreds: systemd is Linux\'s; platform "darwin" needs null',
        ),
        ({"platform": "windows"}, 'platform: expected "linux" or "darwin", got \'windows\''),
        ({"platform": 1}, 'platform: expected "linux" or "darwin", got the number 1'),
    ],
)
def test_what_darwin_lacks_is_refused(field: dict[str, object], message: str) -> None:
    with pytest.raises(manifest_mod.ManifestError) as err:
        manifest_mod.parse(json.dumps(_manifest(**field)), "m.json")
    assert str(err.value) == f"m.json: {message}"


def test_without_platform_a_manifest_is_linux_s() -> None:
    m = manifest_mod.parse(json.dumps({"version": 1, "secrets": []}))
    assert m.platform == "linux"
    doc = {"version": 1, "secrets": [{"name": "a", "file": "/x.age", "restartUnits": ["x.y"]}]}
    with pytest.raises(manifest_mod.ManifestError, match="bad unit name"):
        manifest_mod.parse(json.dumps(doc))
