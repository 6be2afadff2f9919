from __future__ import annotations

import fcntl
import os
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from _activation import Scene, make_scene
from conftest import HELPER_DIR, needs_root

from nixseal.engine import generation as gen
from nixseal.engine import record as rec
from nixseal.errors import NixsealError
from nixseal.util import safepath

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
        proc = scene.run_process("--no-mount", failpoint=k)
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
    """Links made in a directory reached through a symlink (like /var/run ->
    /run) point from where the directory physically is."""
    (tmp_path / "real/run/secrets.d/3").mkdir(parents=True)
    (tmp_path / "var").mkdir()
    (tmp_path / "var/run").symlink_to("../real/run")  # relative: a test user may run it
    (tmp_path / "real/run/secrets.d/3/x").write_text("x")
    with safepath.open_root(None) as top:
        store = gen.Store.open(top, f"{tmp_path}/real/run/secrets.d", "secrets.d", None)
        gen.switch(top, f"{tmp_path}/real/run/secrets", "secrets", store, 3)
        with safepath.open_dir(top, f"{tmp_path}/var/run", {0, os.geteuid()}) as d:
            assert d.path == f"{tmp_path}/real/run"
            target = f"{safepath.relative(d.path, d.path + '/secrets')}/x"
            safepath.place_symlink(d, "app-x", target)
            safepath.place_symlink(d, "app-x", target)  # idempotent
            assert os.readlink(tmp_path / "var/run/app-x") == "secrets/x"
            assert (tmp_path / "var/run/app-x").read_text() == "x"
            safepath.remove_symlink(d, "app-x", "elsewhere/x")  # not ours: kept
            assert (tmp_path / "var/run/app-x").is_symlink()
            safepath.remove_symlink(d, "app-x", target)
        store.close()
    assert not (tmp_path / "real/run/app-x").is_symlink()
    assert os.readlink(tmp_path / "real/run/secrets") == "secrets.d/3"


def _new_generation(tmp_path: Path) -> tuple[gen.Store, gen.NewGeneration]:
    top = safepath.open_root(None)
    store = gen.Store.open(top, str(tmp_path / "secrets.d"), "secrets.d", None)
    top.close()
    return store, store.new(1, None)


def test_write_never_follows_or_overwrites(tmp_path: Path) -> None:
    store, new = _new_generation(tmp_path)
    target = tmp_path / "victim"
    target.write_text("keep")
    (tmp_path / "secrets.d/1/f").symlink_to(target)
    with pytest.raises(OSError):
        new.write("f", b"x", None, None, 0o400)
    assert target.read_text() == "keep"
    new.write("d/g", b"data", None, None, 0o440)
    assert (tmp_path / "secrets.d/1/d/g").stat().st_mode & 0o777 == 0o440
    assert (tmp_path / "secrets.d/1/d").stat().st_mode & 0o777 == gen.DIR_MODE
    new.close()
    store.close()


def test_lock_errors_name_the_path(tmp_path: Path) -> None:
    (tmp_path / "ro").write_text("a file, not a directory")
    with safepath.open_root(None) as top, pytest.raises(NixsealError, match="ro/sub"):
        gen.lock(top, f"{tmp_path}/ro/sub/secrets.d", f"{tmp_path}/ro/sub/secrets.d")


def test_a_link_whose_removal_a_kill_prevented_is_removed_next_time(scene: Scene) -> None:
    scene.add("keep", b"k", path="/etc/keep.conf")
    scene.add("gone", b"g", path="/etc/gone.conf")
    assert scene.run_process("--no-mount").returncode == 0
    gone = scene.root / "etc/gone.conf"
    del scene.secrets[1]
    scene.write()
    between = 0  # runs killed after the switch, before the link was removed
    for k in range(1, 60):
        proc = scene.run_process("--no-mount", failpoint=k)
        if proc.returncode == 0:
            break
        assert proc.returncode == -9, proc.stderr
        if not scene.live("gone").exists() and gone.is_symlink():
            between += 1
        assert scene.run_process("--no-mount").returncode == 0
        assert not gone.is_symlink(), f"killed at step {k}: the old link stayed"
        assert (scene.root / "etc/keep.conf").read_bytes() == b"k"
        # put the removed secret back, so the next kill point sees the same change
        scene.add("gone", b"g", path="/etc/gone.conf")
        assert scene.run_process("--no-mount").returncode == 0 and gone.is_symlink()
        del scene.secrets[1]
    else:
        pytest.fail("the run never completed")
    assert between >= 1


def test_a_foreign_link_at_a_removed_path_is_left_alone(scene: Scene) -> None:
    scene.add("x", b"1", path="/etc/x.conf")
    assert scene.install().code == 0
    link = scene.root / "etc/x.conf"
    link.unlink()
    link.symlink_to("/somewhere/mine")  # the admin took the path over
    del scene.secrets[0]
    assert scene.install().code == 0
    assert scene.install().code == 0
    assert os.readlink(link) == "/somewhere/mine"


@needs_root
def test_the_mount_point_gets_root_keys_0751_even_when_it_exists(scene: Scene) -> None:
    # e.g. a run killed between mkdir (or mount) and chown left it root:root
    mount_point = scene.root / "run/secrets.d"
    mount_point.mkdir(parents=True, mode=0o700)
    scene.add("a", b"1")
    assert scene.install().code == 0
    st = mount_point.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 96, 0o751)


def test_a_write_that_fails_leaves_no_partial_file_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, new = _new_generation(tmp_path)

    def refuse(fd: int, mode: int) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "fchmod", refuse)
    with pytest.raises(PermissionError):
        new.write("f", b"value", None, None, 0o400)
    monkeypatch.undo()
    assert not (tmp_path / "secrets.d/1/f").exists()
    new.close()
    store.close()


@needs_root
def test_no_file_or_directory_is_ever_open_to_others_while_built(
    scene: Scene, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Files: created with no permission, chowned and chmodded, then written.
    Directories: created without any permission for others but traversal."""
    scene.add("a", b"value-a", owner="alice", mode="0440")
    scene.add("d/e/f", b"value-f", owner="bob", mode="0400")
    scene.template("t", "x=@A@", owner="alice")
    scene.doc["placeholders"] = {"a": "@A@"}
    mount_point = str(scene.root / "run/secrets.d")
    seen: list[tuple[str, str, int, int, int]] = []  # call, path, mode, uid, size
    real = {name: getattr(os, name) for name in ("mkdir", "fchown", "fchmod", "write")}

    def path_of(fd: int) -> str:
        return os.readlink(f"/proc/self/fd/{fd}")

    def note(call: str, fd: int) -> None:
        path = path_of(fd)
        st = os.fstat(fd)
        record = path.endswith((".json.tmp", ".handed"))
        if path.startswith(mount_point + "/") and stat.S_ISREG(st.st_mode) and not record:
            seen.append((call, path, stat.S_IMODE(st.st_mode), st.st_uid, st.st_size))

    def mkdir(path: Any, mode: int = 0o777, *args: Any, dir_fd: int | None = None) -> None:
        full = f"{path_of(dir_fd)}/{path}" if dir_fd is not None else str(path)
        if full.startswith(mount_point):
            seen.append(("mkdir", full, mode, -1, -1))
        real["mkdir"](path, mode, *args, dir_fd=dir_fd)

    def fchown(fd: int, uid: int, gid: int) -> None:
        note("fchown", fd)
        real["fchown"](fd, uid, gid)

    def fchmod(fd: int, mode: int) -> None:
        note("fchmod", fd)
        real["fchmod"](fd, mode)

    def write(fd: int, data: Any) -> int:
        note("write", fd)
        return int(real["write"](fd, data))

    for name, fn in (("mkdir", mkdir), ("fchown", fchown), ("fchmod", fchmod), ("write", write)):
        monkeypatch.setattr(os, name, fn)
    old_umask = os.umask(0)  # the umask must not be what keeps things private
    try:
        r = scene.install()
    finally:
        os.umask(old_umask)
        monkeypatch.undo()
    assert r.code == 0, r.err
    dirs = [s for s in seen if s[0] == "mkdir"]
    assert {Path(d[1]).name for d in dirs} >= {"secrets.d", "1", "d", "e", "rendered"}
    assert all(d[2] & 0o006 == 0 for d in dirs), dirs  # others: traverse at most
    by_file: dict[str, list[tuple[str, int, int, int]]] = {}
    for call, path, mode, uid, size in seen:
        if call != "mkdir":
            by_file.setdefault(path, []).append((call, mode, uid, size))
    assert len(by_file) == 3
    for path, calls in by_file.items():
        assert [c[0] for c in calls[:3]] == ["fchown", "fchmod", "write"], path
        assert calls[0][1:] == (0, 0, 0)  # just created: no permission, root's, empty
        final = scene.live(Path(path).relative_to(mount_point + "/1").as_posix()).stat()
        # before the first byte: already the final owner and mode
        assert calls[2][1:3] == (stat.S_IMODE(final.st_mode), final.st_uid), path
        assert calls[2][3] == 0


def test_a_custom_path_is_replaced_by_rename_never_removed_first(
    scene: Scene, monkeypatch: pytest.MonkeyPatch
) -> None:
    link = scene.root / "etc/app/key.pem"
    link.parent.mkdir(parents=True)
    link.symlink_to("/run/agenix/key")  # what an earlier tool left there
    scene.add("key", b"k", path="/etc/app/key.pem")
    removed: list[str] = []
    real_unlink, real_rmdir = os.unlink, os.rmdir

    def unlink(path: Any, *args: Any, **kw: Any) -> None:
        removed.append(str(path))
        real_unlink(path, *args, **kw)

    def rmdir(path: Any, *args: Any, **kw: Any) -> None:
        removed.append(str(path))
        real_rmdir(path, *args, **kw)

    monkeypatch.setattr(os, "unlink", unlink)
    monkeypatch.setattr(os, "rmdir", rmdir)
    assert scene.install().code == 0
    assert str(link) not in removed and str(scene.live()) not in removed
    assert link.read_bytes() == b"k" and os.readlink(link) == "../../run/secrets/key"
    scene.set_value("key", b"k2")
    assert scene.install().code == 0  # the switch: /run/secrets renamed over too
    monkeypatch.undo()
    assert str(link) not in removed and str(scene.live()) not in removed
    assert link.read_bytes() == b"k2"


def test_another_tools_absolute_link_names_the_previous_generation(scene: Scene) -> None:
    """sops-nix links /run/secrets -> /run/secrets.d/N absolutely: under --root
    that generation is found in the mount point, kept, and its files reused."""
    scene.add("db", b"same")
    old = scene.root / "run/secrets.d/7"
    old.mkdir(parents=True)
    (old / "db").write_bytes(b"same")
    scene.live().symlink_to("/run/secrets.d/7")
    r = scene.install()
    assert r.code == 0, r.err
    (summary,) = r.events_named("install finished")
    assert summary["previous"] == 7 and summary.get("unchanged") == 1
    assert scene.generations() == [7, 8] and scene.current() == 8


# -- a full file system --------------------------------------------------------

FULL_TMPFS = """
import json, os, subprocess, sys
sys.path[:0] = [{tests!r}, {helper!r}]
from _activation import make_scene
from pathlib import Path
tmp = Path({tmp!r})
scene = make_scene(tmp, None)
mp = scene.root / "run/secrets.d"
mp.mkdir(parents=True)
subprocess.run(["mount", "-t", "tmpfs", "-o", "size=320k,mode=0751", "none", str(mp)], check=True)
small = {{f"s{{i}}": f"small-{{i}}".encode() for i in range(8)}}
for name, value in small.items():
    scene.add(name, value, restartUnits=[f"{{name}}.service"])
scene.add("big1", b"b1", restartUnits=["big1.service"])
scene.add("big2", b"b2")
scene.template("t", "v=@S0@")
scene.doc["placeholders"] = {{"s0": "@S0@"}}
def run():
    p = scene.run_process()
    return p.returncode, [json.loads(l) for l in p.stderr.splitlines() if l.startswith("{{")]
code, _ = run()
assert code == 0
# values too big for what is left; the small ones change too
scene.set_value("big1", b"1" * 180_000)
scene.set_value("big2", b"2" * 180_000)
for name in small:
    scene.set_value(name, small[name] + b"-v2")
code, events = run()
failed = {{e["name"]: e for e in events if e["event"] == "failed"}}
assert code == 1, events
assert set(failed) == {{"big2"}} or set(failed) == {{"big1", "big2"}}, failed
for e in failed.values():
    assert e["kept_previous"] is True
    assert "no space left on /run/secrets.d" in e["reason"] and e["path"] in e["reason"], e
assert any(e["event"] == "install finished" for e in events)
assert os.readlink(scene.live()) == "secrets.d/2"  # switched
for name, value in small.items():
    assert scene.live(name).read_bytes() == value + b"-v2"
assert scene.live("big2").read_bytes() == b"b2"  # its previous value
assert scene.live("rendered/t").read_bytes() == b"v=small-0-v2"
record = json.loads((mp / "2.json").read_text())
assert set(record["entries"]) >= {{"secret:big2", "secret:s0", "template:t"}}
# the status had its room: it says what failed for want of space
status = json.loads((mp / "status.json").read_text())
assert status["generation"] == 2
assert {{k for k, e in status["entries"].items() if e["state"] == "failed"}} == {{
    f"secret:{{n}}" for n in failed
}}, status
names = [p.name for p in mp.rglob("*")]
assert not [n for n in names if "tmp" in n], names  # nothing half-written
for p in (mp / "2").rglob("*"):
    if p.is_file():
        assert p.read_bytes() in {{*small.values(), *(v + b"-v2" for v in small.values()),
                                   b"b1", b"b2", b"1" * 180_000, b"v=small-0-v2"}}, p
# a file system too full for the record itself: nothing switches, nothing is left
filler = mp / "filler"
with filler.open("wb", buffering=0) as f:
    try:
        while True:
            f.write(b"f" * 4096)
    except OSError:
        pass
scene.set_value("s1", b"s1-v3")
code, events = run()
assert code == 1
assert os.readlink(scene.live()) == "secrets.d/2"
left = sorted(p.name for p in mp.iterdir() if p.name != "filler")
# the status stays the live generation's
assert left == [".2.handed", "1", "1.json", "2", "2.json", "status.json"], (left, events)
assert json.loads((mp / "status.json").read_text())["generation"] == 2
filler.unlink()
code, _ = run()
assert code in (0, 1) and os.readlink(scene.live()) == "secrets.d/3"
assert scene.live("s1").read_bytes() == b"s1-v3"
print("ok")
"""


@needs_root
def test_a_full_tmpfs_fails_only_the_entries_that_do_not_fit(tmp_path: Path) -> None:
    script = FULL_TMPFS.format(
        tests=str(HELPER_DIR / "tests"), helper=str(HELPER_DIR), tmp=str(tmp_path)
    )
    proc = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stdout + proc.stderr


def test_the_room_reserved_for_the_record_holds_it(
    scene: Scene, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every kind of field at once, non-ASCII and escaped paths, removed
    entries and their links, pending units: the record fits its room."""
    sizes: list[tuple[int, int]] = []
    real_reserve, real_write = gen.Store.reserve_record, gen.Store.write_record

    def reserve(self: gen.Store, number: int, size: int) -> int:
        sizes.append((size, 0))
        return real_reserve(self, number, size)

    def write(self: gen.Store, number: int, fd: int, data: bytes) -> None:
        sizes[-1] = (sizes[-1][0], len(data))
        real_write(self, number, fd, data)

    monkeypatch.setattr(gen.Store, "reserve_record", reserve)
    monkeypatch.setattr(gen.Store, "write_record", write)
    scene.add("a", b"1", restartUnits=["a.service", "b@x.service"], reloadUnits=["r.service"])
    scene.add("b/c", b"2", path='/etc/ünï/"quoted\\\\"/c.conf')
    scene.add("d", b"3", path="/run/secrets/deep/\U0001f600/d")
    scene.template("t", "x", path="/etc/t.conf", reloadUnits=["t.service"])
    assert scene.install().code == 0
    for secret in scene.secrets:
        scene.set_value(secret["name"], b"changed")
    assert scene.install().code == 0
    del scene.secrets[1]  # its link is removed, its units signalled
    assert scene.install().code == 0
    assert len(sizes) == 3 and all(0 < used <= room for room, used in sizes), sizes
    assert rec.json_len('"\\') >= len('"\\"\\\\"')
