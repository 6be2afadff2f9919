from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _activation import Scene, make_scene
from conftest import HELPER_DIR

from nixseal import generation as gen
from nixseal.errors import NixsealError

NAMES = ("a", "nested/b", "c")


@pytest.fixture
def scene(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Scene:
    return make_scene(tmp_path, capsys)


def test_a_run_killed_at_any_step_leaves_a_complete_generation(scene: Scene) -> None:
    scene.add("a", b"", restartUnits=["a.service"])
    scene.add("nested/b", b"", reloadUnits=["b.service"])
    scene.add("c", b"", path="/etc/c.conf", owner="alice")
    scene.template("t", "t=@V@", restartUnits=["t.service"])
    scene.doc["placeholders"] = {"a": "@V@"}
    # "a" holds the bare version number (the template shows it), the others
    # "<name>-v<version>": a mix of generations would be visible
    version = 1
    for name in NAMES[1:]:
        scene.set_value(name, f"{name}-v{version}".encode())
    scene.set_value("a", b"1")
    assert scene.run_process("--no-mount").returncode == 0
    killed = 0
    for k in range(1, 80):
        scene.clear_lists()
        version += 1
        for name in NAMES[1:]:
            scene.set_value(name, f"{name}-v{version}".encode())
        scene.set_value("a", str(version).encode())
        proc = scene.run_process("--no-mount", env={"NIXSEAL_FAILPOINT": str(k)})
        if proc.returncode == 0:
            break  # k is past the last step: every step has been tried
        assert proc.returncode == -9, proc.stderr
        killed += 1
        # invariant: the symlink points at a complete generation, old or new
        assert os.readlink(scene.live()).startswith("secrets.d/")
        live = _live_version_or_a(scene)
        assert live in {version - 1, version}
        # the next run converges, and the units of the change are signalled
        proc = scene.run_process("--no-mount")
        assert proc.returncode == 0, proc.stderr
        assert _live_version_or_a(scene) == version
        assert scene.generations() == sorted(scene.generations())[-2:]
        assert {"a.service", "t.service"} <= set(scene.read_list("restart")), k
        assert "b.service" in scene.read_list("reload")
        leftovers = [p.name for p in scene.root.rglob("*") if "tmp" in p.name]
        assert leftovers == []
    else:
        pytest.fail("the run never completed")
    assert killed >= 10  # every filesystem step of a run was a kill point


def _live_version_or_a(scene: Scene) -> int:
    """The one version every live file shows; fails on a mix or a missing file."""
    a = int(scene.live("a").read_text())
    others = {int(scene.live(n).read_text().rsplit("v", 1)[1]) for n in NAMES[1:]}
    assert (scene.root / "etc/c.conf").read_text() == scene.live("c").read_text()
    assert scene.live("rendered/t").read_text() == f"t={a}"
    assert others == {a}, f"a mix of generations is live: a={a} others={others}"
    return a


def _start(scene: Scene, manifest: Path) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "nixseal", "--log-format", "json", "install"]
    argv += ["--manifest", str(manifest), "--root", str(scene.root), "--no-mount"]
    env = {**os.environ, "PYTHONPATH": str(HELPER_DIR)}
    return subprocess.Popen(argv, env=env, stderr=subprocess.PIPE, text=True)


def test_a_second_run_waits_for_the_lock(scene: Scene) -> None:
    scene.add("a", b"1")
    lock_path = scene.root / "run/secrets.d.lock"
    lock_path.parent.mkdir(parents=True)
    with lock_path.open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        proc = _start(scene, scene.write())
        time.sleep(0.7)
        assert proc.poll() is None, "install ran while another held the lock"
        assert not scene.live().exists()
    assert proc.wait(timeout=30) == 0
    assert scene.live("a").read_bytes() == b"1"


def test_concurrent_runs_are_serialized(scene: Scene) -> None:
    for i in range(20):
        scene.add(f"s{i}", str(i).encode())
    manifest = scene.write()
    procs = [_start(scene, manifest) for _ in range(3)]
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0]
    assert scene.current() == 3 and scene.generations() == [2, 3]
    assert [scene.live(f"s{i}").read_text() for i in range(20)] == [str(i) for i in range(20)]


def test_half_built_generations_are_removed(scene: Scene) -> None:
    scene.add("a", b"1")
    assert scene.install().code == 0
    stray = scene.root / "run/secrets.d/7"
    (stray / "x").mkdir(parents=True)
    (stray / "x/partial").write_text("p")
    (scene.root / "run/secrets.d/5.json").write_text("{}")
    assert scene.install().code == 0
    assert scene.generations() == [1, 2] and scene.current() == 2


def test_a_directory_at_symlink_path(scene: Scene) -> None:
    scene.add("a", b"1")
    scene.live().mkdir(parents=True)  # empty: replaced
    assert scene.install().code == 0 and scene.live("a").read_bytes() == b"1"
    other = make_scene(scene.tmp / "o", scene.capsys)
    other.add("a", b"1")
    (other.live() / "precious").mkdir(parents=True)
    r = other.cli(
        ["install", "--manifest", str(other.write()), "--root", str(other.root), "--no-mount"]
    )
    assert r.code == 1 and "a directory is in the way; move it" in r.err
    assert (other.live() / "precious").is_dir()


def test_relative_targets_resolve_physically(tmp_path: Path) -> None:
    (tmp_path / "real/run").mkdir(parents=True)
    (tmp_path / "var").mkdir()
    (tmp_path / "var/run").symlink_to(tmp_path / "real/run")  # like /var/run -> /run
    (tmp_path / "real/run/secrets.d/3").mkdir(parents=True)
    (tmp_path / "real/run/secrets.d/3/x").write_text("x")
    gen.place_symlink(tmp_path / "real/run/secrets", tmp_path / "real/run/secrets.d", "3")
    link = tmp_path / "var/run/app-x"
    gen.place_symlink(link, tmp_path / "real/run/secrets", "x")
    assert os.readlink(link) == "secrets/x"
    assert link.read_text() == "x"
    gen.place_symlink(link, tmp_path / "real/run/secrets", "x")  # idempotent
    gen.remove_symlink(link, tmp_path / "real/run/secrets", "x")
    assert not link.is_symlink()


def test_remove_symlink_leaves_foreign_links(tmp_path: Path) -> None:
    link = tmp_path / "l"
    link.symlink_to("/somewhere/else")
    gen.remove_symlink(link, tmp_path / "secrets", "x")
    assert link.is_symlink()


def test_write_file_never_follows_or_overwrites(tmp_path: Path) -> None:
    target = tmp_path / "victim"
    target.write_text("keep")
    (tmp_path / "f").symlink_to(target)
    with pytest.raises(OSError):
        gen.write_file(tmp_path / "f", b"x", None, None, 0o400)
    assert target.read_text() == "keep"
    gen.write_file(tmp_path / "g", b"data", None, None, 0o440)
    assert (tmp_path / "g").stat().st_mode & 0o777 == 0o440


def test_lock_errors_name_the_path(tmp_path: Path) -> None:
    (tmp_path / "ro").write_text("a file, not a directory")
    with pytest.raises(NixsealError, match="cannot create directory"):
        gen.lock(tmp_path / "ro/sub/secrets.d")
