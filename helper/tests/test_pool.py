"""Forked decryption workers (nixseal.util.pool), alone and inside `nixseal install`."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from _activation import Scene, make_scene, tree
from conftest import HELPER_DIR, make_ssh_key

from nixseal.age import crypto
from nixseal.engine import decryption
from nixseal.errors import NixsealError
from nixseal.util import pool


def _children() -> set[int]:
    """Live or unreaped child processes of this test process."""
    pid = os.getpid()
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return {int(p) for p in text.split()}


def _square(i: int) -> bytes:
    if i % 7 == 3:
        raise NixsealError(f"item {i}: refused")
    return str(i * i).encode() * (i % 5)  # some results are empty


def _as_comparable(results: list[bytes | NixsealError]) -> list[bytes | str]:
    return [str(r) if isinstance(r, NixsealError) else r for r in results]


def test_workers_give_what_the_calling_process_gives_in_order() -> None:
    items = list(range(300))
    before = _children()
    with pool.OrderedMap(_square, items, 1) as serial:
        expected = _as_comparable(list(serial))
    with pool.OrderedMap(_square, items, 3) as parallel:
        assert len(_children() - before) == 3  # the work really is spread
        got = _as_comparable(list(parallel))
    assert got == expected
    assert "item 3: refused" in got and b"" in got
    assert _children() == before  # every worker reaped


def test_results_bigger_than_a_pipe_arrive_whole() -> None:
    big = [bytes([i]) * 300_000 for i in range(6)]  # > 64 KiB pipe buffer each
    with pool.OrderedMap(lambda i: big[i], range(6), 2) as results:
        assert list(results) == big


def test_a_worker_that_dies_costs_time_not_results() -> None:
    parent = os.getpid()
    failures: list[str] = []

    def dies_in_a_worker(i: int) -> bytes:
        if i == 57 and os.getpid() != parent:
            os._exit(3)  # a crash in the worker only: the parent computes it fine
        return _square(i)

    with pool.OrderedMap(dies_in_a_worker, range(200), 2, failures.append) as results:
        got = _as_comparable(list(results))
    with pool.OrderedMap(_square, range(200), 1) as serial:
        assert got == _as_comparable(list(serial))
    assert failures == ["worker 1 ended early (item 58)"]


def test_a_malformed_frame_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    real_send = pool._send

    def garbling_send(fd: int, kind: bytes, index: int, payload: bytes) -> None:
        # only workers send, so only they use this (inherited by the fork)
        real_send(fd, b"?" if index == 10 else kind, index, payload)

    monkeypatch.setattr(pool, "_send", garbling_send)
    failures: list[str] = []
    with pool.OrderedMap(_square, range(40), 2, failures.append) as results:
        got = _as_comparable(list(results))
    with pool.OrderedMap(_square, range(40), 1) as serial:
        assert got == _as_comparable(list(serial))
    assert failures == ["malformed result from a worker (item 11)"]


def test_stopping_early_reaps_the_workers() -> None:
    before = _children()
    with pool.OrderedMap(_square, range(10_000), 2) as results:
        assert next(results) == b""  # 0*0, 0 times
    assert _children() == before


def test_workers_hold_none_of_the_callers_files(tmp_path: Path) -> None:
    # The install lock is an open file of the caller: a worker that kept it
    # would keep the lock after the caller died.
    with (tmp_path / "lock").open("w") as held:
        fd = held.fileno()

        def probe(_: int) -> bytes:
            try:
                os.fstat(fd)
            except OSError:
                return b"closed"
            return b"open"

        with pool.OrderedMap(probe, range(4), 2) as results:
            assert list(results) == [b"closed"] * 4


def test_how_many_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pool, "cpus", lambda: 4)
    assert pool.workers_for(31, 32) == 1  # too few to repay a fork
    assert pool.workers_for(64, 32) == 2
    assert pool.workers_for(10_000, 32) == 4  # no more than the CPUs

    class Plugin:
        kind = "plugin"

    # a hardware key may ask for a PIN: one process talks to the user
    assert pool.workers_for(10_000, 32, [Plugin()]) == 1
    monkeypatch.setattr(pool, "cpus", lambda: 1)
    assert pool.workers_for(10_000, 32) == 1


# -- inside nixseal install ----------------------------------------------------


@pytest.fixture
def scene(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Scene:
    # Workers from a handful of files and on any machine, so the pool is used.
    monkeypatch.setattr(decryption, "FILES_PER_WORKER", 10)
    monkeypatch.setattr(pool, "cpus", lambda: 4)
    return make_scene(tmp_path, capsys)


def _many(scene: Scene, count: int = 120) -> dict[str, bytes]:
    values = {}
    for i in range(count):
        name = f"app{i % 4}/s{i:03d}"
        values[name] = os.urandom(i % 50) + f"value {i}\n".encode()
        scene.add(name, values[name], owner="alice" if i % 3 else None, mode="0440")
    return values


def _install_both_ways(
    scene: Scene, monkeypatch: pytest.MonkeyPatch
) -> tuple[tuple[object, ...], tuple[object, ...]]:
    """(workers, serial): the exit code, the generation's tree and the log events."""
    seen = []
    used: list[int] = []
    real_workers_for = pool.workers_for

    def spy(*args: object) -> int:
        used.append(real_workers_for(*args))  # type: ignore[arg-type]
        return used[-1]

    monkeypatch.setattr(pool, "workers_for", spy)
    for per_worker in (10, 1_000_000):
        monkeypatch.setattr(decryption, "FILES_PER_WORKER", per_worker)
        scene.root = Path(tempfile.mkdtemp(dir=scene.tmp))
        (scene.root / "etc").mkdir()
        for f in ("passwd", "group"):
            (scene.root / "etc" / f).write_text((scene.tmp / "root/etc" / f).read_text())
        r = scene.install()
        events = [
            (e["event"], e.get("name"), e.get("reason"))
            for e in r.events
            if e["event"] in {"installed", "failed"}
        ]
        seen.append((r.code, tree(scene.root / "run/secrets.d/1"), events))
    assert used == [4]  # too few files for two workers: the pool is not even asked
    return seen[0], seen[1]


def test_install_with_workers_is_byte_for_byte_the_serial_install(
    scene: Scene, monkeypatch: pytest.MonkeyPatch
) -> None:
    values = _many(scene)
    workers, serial = _install_both_ways(scene, monkeypatch)
    assert workers == serial
    code, files, events = workers
    assert code == 0 and len(events) == len(values)
    assert {name: files[name][3] for name in values} == values


def test_a_bad_file_among_many_fails_alone_with_the_serial_message(
    scene: Scene, monkeypatch: pytest.MonkeyPatch
) -> None:
    values = _many(scene)
    corrupt = scene.secrets[41]
    data = bytearray(Path(corrupt["file"]).read_bytes())
    data[-5] ^= 0xFF  # the payload no longer authenticates
    Path(corrupt["file"]).write_bytes(bytes(data))
    foreign = scene.secrets[77]
    other_host = crypto.parse_recipient(make_ssh_key(scene.tmp, name="other").public, "t")
    Path(foreign["file"]).write_bytes(crypto.encrypt(b"for another host", [other_host]))
    workers, serial = _install_both_ways(scene, monkeypatch)
    assert workers == serial
    code, files, events = workers
    failed = {name: reason for event, name, reason in events if event == "failed"}
    assert code == 1
    assert failed == {
        corrupt["name"]: f"{corrupt['file']}: truncated or corrupt age file "
        "(payload does not authenticate)",
        foreign["name"]: f"{foreign['file']}: no identity matches "
        f"(tried {scene.key.private_path}): not encrypted to these keys (rekey needed?)",
    }
    installed = {n: v for n, v in values.items() if n not in failed}
    assert {name: files[name][3] for name in installed} == installed


# `nixseal install` as its own process, with workers from 10 files on any machine.
_INSTALL_WITH_WORKERS = (
    "import os, signal, sys; from nixseal import cli; from nixseal.engine import decryption;"
    " from nixseal.util import pool; decryption.FILES_PER_WORKER = 10; pool.cpus = lambda: 4;"
    " pool.failpoint = lambda n: os.kill(os.getpid(), signal.SIGKILL) if n == 25 else None;"
    " sys.exit(cli.main(sys.argv[1:]))"
)


def test_a_worker_killed_mid_run_and_everything_still_installs(scene: Scene) -> None:
    values = _many(scene, 60)
    argv = [sys.executable, "-c", _INSTALL_WITH_WORKERS, "--log-format", "json", "install"]
    argv += ["--manifest", str(scene.write()), "--root", str(scene.root), "--no-mount"]
    env = {**os.environ, "PYTHONPATH": str(HELPER_DIR)}
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert {name: scene.live(name).read_bytes() for name in values} == values
    assert proc.stderr.count('"event": "installed"') == len(values)
    assert '"event": "decryption workers failed; continuing alone"' in proc.stderr
    assert "ended early (item 25)" in proc.stderr
    assert not any(v.decode(errors="replace").strip() in proc.stderr for v in values.values())
