"""The first pass of an install (nixseal.engine.decryption): every age file
read, only the changed ones decrypted, each failure the secret's own."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from _activation import Recorder, Scene, make_scene

from nixseal.engine import manifest
from nixseal.engine.decryption import Identities, Input, decryptions, read_inputs, to_decrypt
from nixseal.engine.manifest import Entry, Manifest
from nixseal.engine.previous import Previous
from nixseal.errors import NixsealError


@pytest.fixture
def scene(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Scene:
    s = make_scene(tmp_path, capsys)
    s.add("a", b"value a")
    s.add("b", b"value b", owner="nobody-here")
    s.add("c", b"value c")
    return s


def _load(scene: Scene) -> Manifest:
    return manifest.load(str(scene.write()))


def _owner_check(entry: Entry) -> None:
    if entry.owner == "nobody-here":
        raise NixsealError(f"owner {entry.owner!r} does not exist")


def test_an_unknown_owner_fails_its_secret_before_its_file_is_read(scene: Scene) -> None:
    m = _load(scene)
    os.remove(m.secrets[1].file)  # would fail with "cannot read" if it were read
    os.remove(m.secrets[2].file)
    inputs = read_inputs(m.secrets, Previous(None, None, Recorder()), _owner_check)
    assert isinstance(inputs["secret:a"], Input)
    assert str(inputs["secret:b"]) == "owner 'nobody-here' does not exist"
    assert str(inputs["secret:c"]).endswith(": cannot read: No such file or directory")
    assert to_decrypt(m.secrets, inputs) == [m.secrets[0]]


def test_without_a_usable_identity_each_secret_to_decrypt_fails_alone(scene: Scene) -> None:
    m = _load(scene)
    inputs = read_inputs(m.secrets, Previous(None, None, Recorder()), lambda e: None)
    todo = to_decrypt(m.secrets, inputs)
    logged = Recorder()
    identities = Identities(("/nonexistent/key",), logged)
    with decryptions(todo, inputs, identities, logged) as results:
        got = list(results)
    assert [s.name for s, _ in got] == ["a", "b", "c"]
    assert all(isinstance(r, NixsealError) and str(r) == identities.error for _, r in got)
    assert identities.error
    assert [(lvl, e, f["identity"]) for lvl, e, f in logged.events] == [
        ("warning", "identity skipped", "/nonexistent/key")
    ]


def test_plaintexts_follow_the_manifests_order(scene: Scene) -> None:
    m = _load(scene)
    inputs = read_inputs(m.secrets, Previous(None, None, Recorder()), lambda e: None)
    identities = Identities(m.identity_paths, Recorder())
    with decryptions(list(m.secrets), inputs, identities, Recorder()) as results:
        got = [(s.name, r) for s, r in results]
    assert got == [("a", b"value a"), ("b", b"value b"), ("c", b"value c")]
