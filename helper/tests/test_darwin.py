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

# The stand-ins keep what the real commands would have done in files:
# "mounts" is what mount(8) lists, "images" what hdiutil info reports.
STANDIN = """#!/bin/sh
printf '%s\\n' "$(basename "$0") $*" >> {log}
state={state}
case "$(basename "$0") $1" in
  "hdiutil info") cat "$state/images" 2>/dev/null; exit 0 ;;
  "mount ") cat "$state/mounts" 2>/dev/null; exit 0 ;;
esac
if [ -n "${{FAIL_{name}:-}}" ]; then echo "$(basename "$0"): it failed" >&2; exit 1; fi
case "$(basename "$0") $1" in
  "hdiutil attach")
    printf '/dev/disk7          \\t\\n'
    printf '====\\nimage-path      : %s\\n/dev/disk7\\t\\t\\n' "$3" >> "$state/images" ;;
  "hdiutil detach") rm -f "$state/images" "$state/mounts" ;;
  "mount -t")
    printf '%s on %s (hfs, local, nodev, nosuid, nobrowse%s)\\n' "$5" "$6" \\
      "${{MOUNTED_BY:+, mounted by $MOUNTED_BY}}" >> "$state/mounts" ;;
esac
"""


class Tools:
    def __init__(self, tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.log = tmp / "argv.log"
        self.state = tmp / "state"
        self.state.mkdir()
        bin_dir = tmp / "bin"
        bin_dir.mkdir()
        for attr, name in (
            ("HDIUTIL", "hdiutil"),
            ("NEWFS_HFS", "newfs_hfs"),
            ("MOUNT", "mount"),
            ("LAUNCHCTL", "launchctl"),
        ):
            script = bin_dir / name
            script.write_text(STANDIN.format(log=self.log, state=self.state, name=name.upper()))
            script.chmod(0o755)
            monkeypatch.setattr(darwin, attr, str(script))

    def calls(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []

    def forget(self) -> None:
        self.log.unlink(missing_ok=True)


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


# -- a user's own RAM disk (home-manager on macOS) ---------------------------------


class User:
    """A user-mode darwin manifest installed into runtime/ (the agent's %r)."""

    def __init__(self, scene: Scene, tools: Tools, monkeypatch: pytest.MonkeyPatch) -> None:
        self.scene, self.tools = scene, tools
        self.runtime = scene.tmp / "T"
        self.runtime.mkdir()
        monkeypatch.setenv("XDG_RUNTIME_DIR", f"{self.runtime}/")  # getconf's, with its "/"
        scene.doc.update(userMode=True, mountPoint="%r/secrets.d", symlinkPath="%r/secrets")
        scene.add("carol/token", b"s3cret")
        self.disk = self.runtime / "secrets.d"

    def install(self, *args: str) -> tuple[int, str]:
        argv = ["--log-format", "json", "install", "--manifest", str(self.scene.write()), *args]
        r = self.scene.cli(argv)
        return r.code, r.err

    def nothing_written(self) -> bool:
        """No generation, record or secret anywhere, and no symlink to one."""
        inside = list(self.disk.iterdir()) if self.disk.is_dir() else []
        return inside == [] and not (self.runtime / "secrets").is_symlink()


@pytest.fixture
def user(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    tools: Tools,
    monkeypatch: pytest.MonkeyPatch,
) -> User:
    scene = make_scene(
        tmp_path, capsys, platform="darwin", restartListPath=None, reloadListPath=None
    )
    return User(scene, tools, monkeypatch)


def test_a_users_first_run_mounts_a_private_ram_disk(user: User) -> None:
    code, err = user.install()
    assert code == 0, err
    uid, gid = os.getuid(), os.getgid()
    disk = os.path.realpath(user.disk)
    assert user.tools.calls() == [
        "mount ",  # is anything mounted there?
        f"hdiutil attach -nomount ram://{(64 << 20) // 512}",
        f"newfs_hfs -s -U {uid} -G {gid} -M 700 -v nixseal-{uid} /dev/disk7",
        f"mount -t hfs -o nobrowse,nodev,nosuid /dev/disk7 {disk}",
        "mount ",  # the new volume checked as a reused one is
        "hdiutil info",
    ]
    assert stat.S_IMODE(user.disk.stat().st_mode) == 0o700
    link = os.readlink(user.runtime / "secrets")
    assert link.startswith("secrets.d/")  # the symlink points into the volume
    assert (user.runtime / "secrets/carol/token").read_bytes() == b"s3cret"


def test_a_users_second_run_reuses_the_ram_disk(user: User) -> None:
    assert user.install()[0] == 0
    user.tools.forget()
    user.scene.set_value("carol/token", b"new")
    code, err = user.install()
    assert code == 0, err
    assert user.tools.calls() == ["mount ", "hdiutil info"]  # nothing attached or mounted
    assert (user.runtime / "secrets/carol/token").read_bytes() == b"new"


def test_a_ram_disk_of_the_user_is_found_by_name(
    user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    # mount(8) says "mounted by NAME" for every user but root.
    monkeypatch.setattr(darwin, "account", lambda: (os.getuid(), os.getgid(), "carol"))
    monkeypatch.setenv("MOUNTED_BY", "carol")
    assert user.install()[0] == 0
    user.tools.forget()
    assert user.install()[0] == 0
    assert user.tools.calls() == ["mount ", "hdiutil info"]


RAM_IMAGE = "====\nimage-path      : ram://131072\n/dev/disk7\t\t\n"


@pytest.mark.parametrize(
    ("listed", "images", "why"),
    [
        (
            "/dev/disk3s5 on {disk} (apfs, local, journaled)",
            "",
            "it is apfs, not hfs",
        ),
        (
            "/dev/disk7 on {disk} (hfs, local, nodev, nosuid, noowners, mounted by carol)",
            RAM_IMAGE,
            "it ignores ownership (noowners)",
        ),
        (
            "/dev/disk7 on {disk} (hfs, local, nodev, nosuid, mounted by bob)",
            RAM_IMAGE,
            "it was mounted by bob, not by carol",
        ),
        (
            "/dev/disk7 on {disk} (hfs, local, nodev, nosuid, mounted by carol)",
            "====\nimage-path      : /Users/carol/disk.dmg\n/dev/disk7\t\t\n",
            "/dev/disk7 is not a RAM disk",
        ),
    ],
)
def test_a_foreign_or_disk_backed_mount_is_refused_and_nothing_written(
    user: User, monkeypatch: pytest.MonkeyPatch, listed: str, images: str, why: str
) -> None:
    monkeypatch.setattr(darwin, "account", lambda: (os.getuid(), os.getgid(), "carol"))
    user.disk.mkdir()
    disk = os.path.realpath(user.disk)
    (user.tools.state / "mounts").write_text(listed.format(disk=disk) + "\n")
    (user.tools.state / "images").write_text(images)
    code, err = user.install()
    assert code != 0
    assert err.strip().splitlines() == [
        f"nixseal install: error: {user.disk}: refusing the file system mounted here: {why}; "
        "unmount it or set nixseal.mountPoint elsewhere"
    ]
    assert user.nothing_written()
    assert not any(
        c.startswith(("hdiutil attach", "newfs_hfs", "mount -t")) for c in user.tools.calls()
    )


@pytest.mark.parametrize(
    ("fail", "why"),
    [
        ({"FAIL_NEWFS_HFS": "1"}, "newfs_hfs failed: newfs_hfs: it failed"),
        ({"FAIL_MOUNT": "1"}, "mount failed: mount: it failed"),
        ({"MOUNTED_BY": "mallory"}, "the new volume: it was mounted by mallory, not by root"),
    ],
)
def test_a_failed_step_of_a_users_disk_detaches_it_and_fails(
    user: User, monkeypatch: pytest.MonkeyPatch, fail: dict[str, str], why: str
) -> None:
    monkeypatch.setattr(darwin, "account", lambda: (os.getuid(), os.getgid(), None))
    for name, value in fail.items():
        monkeypatch.setenv(name, value)
    code, err = user.install()
    assert code != 0
    assert err.strip().splitlines() == [
        f"nixseal install: error: {user.disk}: cannot mount a RAM disk: {why}"
    ]
    assert user.tools.calls()[-1] == "hdiutil detach /dev/disk7"
    assert user.nothing_written()


def test_no_mount_without_a_users_disk_is_refused(user: User) -> None:
    code, err = user.install("--no-mount")
    assert code != 0
    assert err.strip().splitlines() == [
        f"nixseal install: error: {user.disk}: no RAM disk is mounted here and --no-mount "
        "was given: on macOS per-user secrets are written to a RAM disk only"
    ]
    assert user.nothing_written()
    assert user.tools.calls() == ["mount "]


def test_a_new_volume_whose_top_is_not_the_users_is_detached(
    user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    # newfs_hfs -U not honoured: the volume's top is not the user's.
    monkeypatch.setattr(darwin, "account", lambda: (os.getuid() + 1, os.getgid(), None))
    code, err = user.install()
    assert code != 0
    assert err.strip().splitlines() == [
        f"nixseal install: error: {user.disk}: refusing the file system mounted here: its top "
        "directory is another user's; unmount it or set nixseal.mountPoint elsewhere"
    ]
    assert user.tools.calls()[-1] == "hdiutil detach /dev/disk7"
    assert user.nothing_written()
