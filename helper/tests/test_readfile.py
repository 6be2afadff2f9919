"""Special files where a file is read: refused before reading, never waited on.

Identities, age files and manifests that are FIFOs (with no writer, or
with a writer that never stops), character devices that never end
(/dev/zero, /dev/urandom), sockets, directories or regular files over the
size cap: `nixseal install` skips such an identity with a warning, fails
such an entry alone, and rejects such a manifest (exit 2); the admin CLI's
`-i` and `check-manifest` say so in one line. Each run is a real process
with a deadline and an address-space limit, so a hang or an endless read
fails the test instead of the machine.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from _activation import Scene, make_scene, tree
from conftest import HELPER_DIR

DEADLINE = int(
    os.environ.get("TEST_DEADLINE", "20")
)  # seconds: a refused file costs microseconds, a hang costs this
ADDRESS_SPACE = 1 << 30  # an endless read hits this long before the machine's memory

SPECIALS = ("fifo", "fifo-endless-writer", "dev-zero", "dev-urandom", "socket", "directory")


def run(argv: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(HELPER_DIR), "NIXSEAL_IDENTITY": ""}
    # prlimit, not preexec_fn: a FIFO's writer thread may be running here.
    return subprocess.run(
        ["prlimit", f"--as={ADDRESS_SPACE}", sys.executable, "-m", "nixseal", *argv],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        check=False,
    )


@contextmanager
def special(kind: str, path: Path) -> Iterator[Path]:
    """path as a special file of kind (or a link to a device) while in the block."""
    stop = threading.Event()
    writer = None
    server = None
    if kind.startswith("fifo"):
        os.mkfifo(path)
        if kind == "fifo-endless-writer":

            def feed() -> None:
                # O_RDWR never blocks on a FIFO; keeps writing until stopped.
                fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
                try:
                    while not stop.is_set():
                        try:
                            os.write(fd, b"x" * 65536)
                        except BlockingIOError:
                            stop.wait(0.001)
                finally:
                    os.close(fd)

            writer = threading.Thread(target=feed, daemon=True)
            writer.start()
    elif kind == "dev-zero":
        path.symlink_to("/dev/zero")
    elif kind == "dev-urandom":
        path.symlink_to("/dev/urandom")
    elif kind == "socket":
        server = socket.socket(socket.AF_UNIX)
        server.bind(str(path))
    elif kind == "directory":
        path.mkdir()
    elif kind == "oversized":
        with path.open("wb") as f:
            f.truncate((64 << 20) + 1)  # sparse: no disk used
    else:
        raise AssertionError(kind)
    try:
        yield path
    finally:
        stop.set()
        if writer is not None:
            writer.join()
        if server is not None:
            server.close()


@pytest.fixture
def scene(tmp_path: Path) -> Scene:
    return make_scene(tmp_path, None)


def install(scene: Scene) -> subprocess.CompletedProcess[str]:
    argv = ["--log-format", "json", "install", "--manifest", str(scene.write())]
    return run([*argv, "--root", str(scene.root), "--no-mount"])


@pytest.mark.parametrize("kind", SPECIALS)
def test_a_special_identity_is_skipped_and_the_others_used(scene: Scene, kind: str) -> None:
    scene.add("a", b"1")
    with special(kind, scene.tmp / "bad_identity") as bad:
        scene.doc["identityPaths"] = [str(bad), str(scene.key.private_path)]
        proc = install(scene)
    assert proc.returncode == 0, proc.stderr
    assert scene.live("a").read_bytes() == b"1"
    assert '"event": "identity skipped"' in proc.stderr
    assert "not a regular file" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("kind", [*SPECIALS, "oversized"])
def test_a_special_age_file_fails_that_entry_only(scene: Scene, kind: str) -> None:
    scene.add("good", b"g")
    entry = scene.add("bad", b"old value")
    assert install(scene).returncode == 0
    Path(entry["file"]).unlink()
    scene.set_value("good", b"g2")
    with special(kind, Path(entry["file"])):
        proc = install(scene)
    assert proc.returncode == 1, proc.stderr
    assert scene.live("good").read_bytes() == b"g2"
    assert scene.live("bad").read_bytes() == b"old value"  # kept
    (failed,) = [line for line in proc.stderr.splitlines() if '"event": "failed"' in line]
    reason = "larger than 64 MiB" if kind == "oversized" else "not a regular file"
    assert '"name": "bad"' in failed and reason in failed


@pytest.mark.parametrize("kind", [*SPECIALS, "oversized"])
def test_a_special_manifest_is_a_usage_error(scene: Scene, kind: str) -> None:
    scene.add("a", b"1")
    assert install(scene).returncode == 0
    before = tree(scene.root)
    with special(kind, scene.tmp / "special.json") as manifest:
        for verb in (["install", "--root", str(scene.root), "--no-mount", "--manifest"], []):
            proc = run(["check-manifest" if not verb else verb[0], *verb[1:], str(manifest)])
            assert proc.returncode == 2, proc.stderr
            assert len(proc.stderr.splitlines()) == 1, proc.stderr
            assert f"{manifest}: cannot read manifest: " in proc.stderr
    assert tree(scene.root) == before


@pytest.mark.parametrize("kind", SPECIALS)
def test_check_manifest_names_a_special_age_file(scene: Scene, kind: str) -> None:
    entry = scene.add("a", b"1")
    Path(entry["file"]).unlink()
    with special(kind, Path(entry["file"])):
        proc = run(["check-manifest", str(scene.write())])
    assert proc.returncode == 1, proc.stderr
    assert "secret 'a'" in proc.stderr and "not a regular file" in proc.stderr


@pytest.mark.parametrize("kind", [*SPECIALS, "oversized"])
def test_the_admin_cli_refuses_a_special_identity(tmp_path: Path, kind: str) -> None:
    from _admin import make_repo

    repo = make_repo(tmp_path)
    repo.write_rules({"db": ["web1"]})
    repo.encrypt("db", b"v")
    with special(kind, tmp_path / "key") as key:
        proc = run(["-i", str(key), "decrypt", "db"], cwd=repo.root)
        assert proc.returncode == 1, proc.stderr
        assert len(proc.stderr.splitlines()) == 1, proc.stderr
        assert f"{key}: cannot read identity: " in proc.stderr
        assert "not a regular file" in proc.stderr or "larger than 1 MiB" in proc.stderr


@pytest.mark.parametrize("kind", ["fifo", "dev-zero"])
def test_host_add_and_init_refuse_a_special_key_file(tmp_path: Path, kind: str) -> None:
    from _admin import make_repo

    repo = make_repo(tmp_path)
    repo.write_rules({"db": ["web1"]})
    with special(kind, tmp_path / "key.pub") as key:
        proc = run(["host", "add", "web2", str(key)], cwd=repo.root)
        assert proc.returncode == 2 and "not a regular file" in proc.stderr, proc.stderr
        fresh = tmp_path / "fresh"
        fresh.mkdir()
        proc = run(["init", "--admin", "a", "--admin-key", str(key)], cwd=fresh)
        assert proc.returncode == 2 and "not a regular file" in proc.stderr, proc.stderr


def test_the_reader_names_each_kind(tmp_path: Path) -> None:
    from nixseal.util import readfile

    kinds = {"fifo": "a FIFO", "dev-zero": "a character device", "socket": "a socket"}
    kinds |= {"directory": "a directory"}
    for kind, word in kinds.items():
        with special(kind, tmp_path / kind) as path, pytest.raises(OSError) as err:
            readfile.read_regular(path, 1024)
        assert err.value.strerror == f"not a regular file ({word})"
    big = tmp_path / "big"
    big.write_bytes(b"x" * 1025)
    with pytest.raises(OSError) as err:
        readfile.read_regular(big, 1024)
    assert err.value.strerror == "larger than 1 KiB"
    assert readfile.read_regular(big, 2048) == b"x" * 1025
