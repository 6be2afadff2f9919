"""Paths another user can write: never followed, never raced, refused when not safe.

The attacker is a real second user (alice, uid 1234, dropped to in a forked
child) working in her own home under --root, racing the installs in a loop.
Each test checks its invariant after every install, never that a race was
won, and counts the rounds the attacker played.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from _activation import Scene, make_scene, tree
from _attacker import ALICE, as_user, attacker
from conftest import needs_root

from nixseal.errors import UnsafePath

pytestmark = needs_root

ROUNDS_TIME = 3.0  # seconds of installs per race


@pytest.fixture
def scene(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Scene:
    s = make_scene(tmp_path, capsys)
    home = s.root / "home/alice"
    home.mkdir(parents=True)
    os.chown(home, ALICE, ALICE)
    # outside --root: what no install may touch
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious").write_text("keep me")
    return s


def _races(scene: Scene, check: object) -> int:
    """Install again and again for ROUNDS_TIME seconds; check() after each."""
    runs = 0
    deadline = time.monotonic() + ROUNDS_TIME
    while time.monotonic() < deadline:
        scene.set_value("other", f"o{runs}".encode())
        r = scene.install()
        assert r.code in (0, 1), r.err
        assert "Traceback" not in r.err and "internal error" not in r.err, r.err
        assert r.events_named("install finished"), r.err
        check()  # type: ignore[operator]
        runs += 1
    return runs


def test_a_parent_owned_by_another_user_is_refused(scene: Scene) -> None:
    """A root-owned secret's link in alice's directory: she could rename a
    root-owned file over the link's name between any check and the rename."""
    app = scene.root / "home/alice/app"
    as_user(ALICE, scene.root / "home/alice", lambda: os.mkdir("app"))
    (app / "keep").write_text("root's file")  # a root-owned file in her directory
    scene.add("key", b"k", path="/home/alice/app/key.pem")
    scene.add("other", b"o")

    def swap(i: int) -> None:  # keep <-> key.pem, over and over
        os.rename(
            "app/keep" if i % 2 == 0 else "app/key.pem", "app/key.pem" if i % 2 == 0 else "app/keep"
        )

    witness = scene.tmp / "witness"  # a second name for root's file, out of her reach
    os.link(app / "keep", witness)

    def check() -> None:
        assert not any(os.path.islink(app / n) for n in os.listdir(app))
        st = witness.stat()  # still linked from her directory, never replaced
        assert (st.st_nlink, st.st_uid, witness.read_text()) == (2, 0, "root's file")

    with attacker(ALICE, scene.root / "home/alice", swap) as tally:
        runs = _races(scene, check)
    r = scene.install()
    (failed,) = r.events_named("failed")
    assert failed["name"] == "key"
    assert "owned by uid 1234, not by root or the secret's owner" in failed["reason"]
    assert scene.live("other").read_bytes() == f"o{runs - 1}".encode()
    print(f"{runs} installs against {tally.rounds} renames")
    assert tally.rounds > 0 and runs > 0


def test_a_swapped_parent_never_leads_outside_its_directory(scene: Scene) -> None:
    """alice's own secret, linked into her directory, which she keeps
    replacing with symlinks to root's directories inside and outside --root."""
    home = scene.root / "home/alice"
    as_user(ALICE, home, lambda: os.mkdir("app"))
    scene.add("key", b"k", owner="alice", path="/home/alice/app/key.pem")
    scene.add("other", b"o")
    victim = scene.tmp / "victim"
    targets = [str(victim), "../../etc", str(scene.root / "etc"), "/etc"]
    outside = {p: tree(p) for p in (victim, scene.root / "etc", Path("/etc"))}

    def swap(i: int) -> None:
        target = targets[i % len(targets)]
        if i % 2 == 0:
            os.rename("app", "app.real")
            os.symlink(target, "app")
        else:
            os.unlink("app")
            os.rename("app.real", "app")

    def check() -> None:
        for p, before in outside.items():
            assert tree(p) == before, f"{p} was written"

    with attacker(ALICE, home, swap) as tally:
        runs = _races(scene, check)
    print(f"{runs} installs against {tally.rounds} swaps")
    assert tally.rounds > 0 and runs > 0
    # with the directory left alone, the link is made
    as_user(ALICE, home, lambda: os.path.islink("app") and os.unlink("app"))
    if not (home / "app").exists():
        as_user(ALICE, home, lambda: os.rename("app.real", "app"))
    assert scene.install().code == 0
    assert (home / "app/key.pem").read_bytes() == b"k"


def test_a_path_through_a_symlink_into_the_generations_is_refused(scene: Scene) -> None:
    (scene.root / "etc/app").symlink_to("../run/secrets")  # root's own link
    (scene.root / "etc/old").symlink_to("../run/secrets.d/1")
    scene.add("a", b"1")
    scene.add("x", b"x", path="/etc/app/x.conf")
    scene.add("y", b"y", path="/etc/old/y.conf")
    scene.install()
    scene.set_value("a", b"2")
    r = scene.install()
    assert r.code == 1
    failed = {e["name"]: e["reason"] for e in r.events_named("failed")}
    assert set(failed) == {"x", "y"}
    assert all("inside the generations" in reason for reason in failed.values()), failed
    for n in scene.generations():
        names = {p.name for p in (scene.root / f"run/secrets.d/{n}").iterdir()}
        assert names <= {"a", "x", "y"}, names  # no link made inside a generation


def test_the_lock_never_follows_a_planted_symlink(scene: Scene) -> None:
    victim = scene.tmp / "victim/lockfile"
    lock = scene.root / "run/secrets.d.lock"
    lock.parent.mkdir(parents=True)
    lock.symlink_to(victim)
    scene.add("a", b"1")
    r = scene.install()
    assert r.code == 1 and "cannot lock: a symlink is in the way" in r.err, r.err
    assert not victim.exists() and not scene.live().exists()
    lock.unlink()
    assert scene.install().code == 0


def test_removing_a_generation_never_follows_a_symlink(scene: Scene) -> None:
    """Links planted where generations (or their parts) would be: removing
    them removes the links, never what they point to."""
    scene.add("other", b"o")
    assert scene.install().code == 0
    mp = scene.root / "run/secrets.d"
    victim = scene.tmp / "victim"
    before = tree(victim)
    (mp / "7").symlink_to(victim)  # a "half-built" generation
    (mp / "8").mkdir()
    (mp / "8/d").symlink_to(victim)
    (mp / "9.json").symlink_to(victim / "precious")
    scene.doc["keepGenerations"] = 0
    scene.set_value("other", b"o2")
    assert scene.install().code == 0
    assert tree(victim) == before
    assert sorted(p.name for p in mp.iterdir()) == ["2", "2.json", "status.json"]


def test_removal_races_a_user_who_owns_a_stale_generation(scene: Scene) -> None:
    """alice owns a stale generation directory (made while the mount point
    was hers) and keeps swapping its insides for links to root's files."""
    scene.add("other", b"o")
    assert scene.install().code == 0
    mp = scene.root / "run/secrets.d"
    victim = scene.tmp / "victim"
    before = tree(victim)
    rounds = 0

    def swap(i: int) -> None:
        if i % 2 == 0:
            os.mkdir("d")
            os.symlink(str(victim / "precious"), "d/f")
        else:
            os.rename("d", "d.old")
            os.symlink(str(victim), "d")

    runs = 0
    deadline = time.monotonic() + ROUNDS_TIME
    while time.monotonic() < deadline:
        stale = mp / str(max(scene.generations()) + 5)
        stale.mkdir()
        os.chown(stale, ALICE, ALICE)
        with attacker(ALICE, stale, swap) as tally:
            time.sleep(0.01)
            scene.set_value("other", f"o{runs}".encode())
            r = scene.install()
        assert r.code in (0, 1), r.err
        assert tree(victim) == before
        rounds += tally.rounds
        runs += 1
    print(f"{runs} installs against {rounds} swaps")
    assert rounds > 0


def test_a_mount_point_that_is_a_symlink_is_refused(scene: Scene) -> None:
    victim = scene.tmp / "victim"
    os.chown(victim, ALICE, ALICE)
    victim.chmod(0o700)
    before = tree(victim)
    (scene.root / "run").mkdir()
    (scene.root / "run/secrets.d").symlink_to(victim)
    scene.add("a", b"1")
    r = scene.install()
    assert r.code == 1 and "a symlink is in the way" in r.err, r.err
    st = victim.stat()
    assert (st.st_uid, st.st_mode & 0o7777) == (ALICE, 0o700)
    assert tree(victim) == before


def test_open_dir_refuses_an_unsafe_transition(tmp_path: Path) -> None:
    """Into alice's directory and back out through her symlink to root's: refused."""
    from nixseal.util import safepath

    home = tmp_path / "home"
    home.mkdir()
    os.chown(home, ALICE, ALICE)
    (tmp_path / "rootdir").mkdir()
    os.symlink(str(tmp_path / "rootdir"), home / "link")
    os.lchown(home / "link", ALICE, ALICE)
    with safepath.open_root(None) as top:
        with pytest.raises(UnsafePath, match="owned by uid 1234"):
            safepath.open_dir(top, str(home / "link"), {0})
        with pytest.raises(UnsafePath, match="leads from uid 1234's directory"):
            safepath.open_dir(top, str(home / "link"), {ALICE})
        with safepath.open_dir(top, str(home), {ALICE}) as d:
            assert d.path == str(home)
        # the same walk under a --root: an absolute link starts again at the root
        (tmp_path / "etc").mkdir()
        (tmp_path / "etc/app").symlink_to("/etc")
    with safepath.open_root(str(tmp_path)) as root, safepath.open_dir(root, "/etc/app", {0}) as d:
        assert d.path == str(tmp_path / "etc")


# The limit is set before the interpreter starts and `resource` is imported
# after the walk: the walk must import it while descriptors are left.
_DEEP_WALK = """
import os, sys
from nixseal.util import safepath
top = safepath.open_root(sys.argv[1])
d = safepath.open_dir(top, "/" + "/".join(["d"] * 600), None, create=0o755)
import resource
print(d.path.count("/d"), resource.getrlimit(resource.RLIMIT_NOFILE)[0] > 256)
"""


def test_a_path_deeper_than_the_soft_limit_of_open_files_is_walked(tmp_path: Path) -> None:
    """A walk holds a descriptor per level: past the soft limit (1,024 by
    default; 256 here) it raises the limit to the hard one instead of
    failing with "Too many open files"."""
    import resource
    import subprocess
    import sys

    from conftest import HELPER_DIR

    if resource.getrlimit(resource.RLIMIT_NOFILE)[1] < 1024:
        pytest.skip("the hard limit of open files is below 1,024 here")
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    proc = subprocess.run(
        [sys.executable, "-c", _DEEP_WALK, str(tmp_path)],
        env={**os.environ, "PYTHONPATH": str(HELPER_DIR)},
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard)),
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["600", "True"]


def test_the_status_file_replaces_a_planted_symlink(scene: Scene) -> None:
    """status.json is written by rename: a link planted there is replaced,
    and what it pointed to is neither read nor written."""
    scene.add("a", b"1")
    assert scene.install().code == 0
    mp = scene.root / "run/secrets.d"
    victim = scene.tmp / "victim-status"
    victim.write_text("precious")
    (mp / "status.json").unlink()
    (mp / "status.json").symlink_to(victim)
    scene.set_value("a", b"2")
    assert scene.install().code == 0
    assert victim.read_text() == "precious"
    status = mp / "status.json"
    assert not status.is_symlink() and status.stat().st_mode & 0o777 == 0o600
