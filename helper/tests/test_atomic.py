"""write_atomic: the old file or the new one, and a one-line error otherwise."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from nixseal.errors import NixsealError
from nixseal.util.atomic import write_atomic


def test_replaces_the_file_with_the_mode_and_no_temp_left(tmp_path: Path) -> None:
    target = tmp_path / "d" / "x.age"
    write_atomic(target, b"one")
    write_atomic(target, b"two", mode=0o600)
    assert target.read_bytes() == b"two"
    assert target.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in target.parent.iterdir()] == ["x.age"]


def _target_is_a_directory(target: Path) -> None:
    target.mkdir(parents=True)


def _parent_is_a_file(target: Path) -> None:
    target.parent.write_text("not a directory")


@pytest.mark.parametrize(
    ("make", "cause"),
    [
        (_target_is_a_directory, "Is a directory"),
        (_parent_is_a_file, "a file is in the way of its directory"),
    ],
)
def test_os_errors_name_the_file_and_leave_everything_as_it_was(
    tmp_path: Path, make: Callable[[Path], None], cause: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    target = tmp_path / "d" / "x.age"
    make(target)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    with pytest.raises(NixsealError) as err:
        write_atomic(target, b"value")
    assert str(err.value) == f"d/x.age: cannot write: {cause}"
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
