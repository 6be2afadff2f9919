"""The plan step of an install (nixseal.engine.plan): what a run starts from."""

from __future__ import annotations

from pathlib import Path

import pytest
from _activation import Recorder, Scene, make_scene

from nixseal.engine import generation as gen
from nixseal.engine import manifest
from nixseal.engine.plan import Plan, plan
from nixseal.errors import GenerationError
from nixseal.util import safepath


@pytest.fixture
def scene(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Scene:
    s = make_scene(tmp_path, capsys)
    s.add("a", b"1", restartUnits=["a.service"])
    return s


def _plan(scene: Scene, *, dry_run: bool = False) -> tuple[Plan, gen.Store | None]:
    m = manifest.load(str(scene.write()))
    top = safepath.open_root(str(scene.root))
    shown = str(scene.root) + m.mount_point
    if dry_run:
        store = gen.Store.existing(top, m.mount_point, shown)
    else:
        store = gen.Store.open(top, m.mount_point, shown, None)
    return plan(top, m, store, dry_run=dry_run, keys_gid=None, log=Recorder()), store


def test_first_run_numbers_generation_one_with_a_new_key_and_no_previous(scene: Scene) -> None:
    p, store = _plan(scene)
    try:
        assert (p.number, p.live, p.handed) == (1, None, False)
        assert p.previous.record is None and p.new is not None and p.reserved >= 0
        assert store is not None and store.numbers() == [1]
    finally:
        p.close()


def test_a_dry_run_before_any_install_creates_nothing(scene: Scene) -> None:
    p, store = _plan(scene, dry_run=True)
    p.close()
    assert store is None and p.new is None and p.number == 1
    assert not (scene.root / "run").exists()


def test_the_live_generations_record_and_key_carry_over(scene: Scene) -> None:
    assert scene.install().code == 0
    live = scene.current()
    p, _ = _plan(scene)
    try:
        assert (p.live, p.number) == (live, live + 1)
        assert p.previous.record is not None and p.key == p.previous.record.key
        assert set(p.previous.entries) == {"secret:a"}
    finally:
        p.close()


def test_generations_a_killed_run_left_are_removed_before_numbering(scene: Scene) -> None:
    assert scene.install().code == 0
    live = scene.current()
    for n in (live + 1, live + 5):  # half-built by killed runs
        (scene.root / "run/secrets.d" / str(n)).mkdir()
    p, store = _plan(scene)
    try:
        assert p.number == live + 1
        assert store is not None and store.numbers() == [live, live + 1]
    finally:
        p.close()


def test_no_room_for_the_record_leaves_no_new_generation(
    scene: Scene, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(self: gen.Store, number: int, size: int) -> int:
        raise GenerationError(f"no space left for record {number}")

    monkeypatch.setattr(gen.Store, "reserve_record", full)
    with pytest.raises(GenerationError, match="no space left for record 1"):
        _plan(scene)
    assert sorted(p.name for p in (scene.root / "run/secrets.d").iterdir()) == []
