from __future__ import annotations

from pathlib import Path

import pytest
from _activation import Scene, make_scene
from conftest import make_age_key, make_ssh_key


@pytest.fixture
def scene(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Scene:
    return make_scene(tmp_path, capsys)


def check(scene: Scene, *extra: str) -> tuple[int, str, str]:
    r = scene.cli(["check-manifest", str(scene.write()), *extra])
    return r.code, r.out, r.err


def test_a_good_manifest_passes_with_and_without_the_host_key(scene: Scene) -> None:
    scene.add("a", b"1")
    scene.add("b/c", b"2")
    code, out, err = check(scene)
    assert (code, err) == (0, "")
    assert "2 secrets" in out
    assert check(scene, "--host-key", scene.key.public)[0] == 0
    pub = scene.key.private_path.with_suffix(".pub")
    assert check(scene, "--host-key", str(pub))[0] == 0


def test_files_not_encrypted_to_the_host_or_not_age_are_named(scene: Scene) -> None:
    scene.add("good", b"1")
    wrong = scene.add("wrong", b"2")
    other = make_ssh_key(scene.tmp, name="other_host")
    scene.key, saved = other, scene.key
    scene.encrypt(Path(wrong["file"]), b"2")  # encrypted to another host only
    scene.key = saved
    junk = scene.add("junk", b"3")
    Path(junk["file"]).write_text("plain text\n")
    scene.secrets.append({"name": "gone", "file": str(scene.tmp / "gone.age")})
    code, out, err = check(scene, "--host-key", saved.public)
    assert code == 1 and out == ""
    lines = err.splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("nixseal check-manifest: error: secret 'wrong' (")
    assert "not encrypted to the host key (ssh-ed25519 " in lines[0]
    assert "secret 'junk'" in lines[1] and "not an age file" in lines[1]
    assert "secret 'gone'" in lines[2] and "cannot read: No such file" in lines[2]
    # without a host key only the age-file checks apply
    assert len(check(scene)[2].splitlines()) == 2


def test_age_host_keys_can_only_check_the_format(scene: Scene) -> None:
    scene.add("a", b"1")
    key = make_age_key(scene.tmp)
    code, _, err = check(scene, "--host-key", key.public)
    assert code == 0 and "anonymous" in err


def test_malformed_manifest_and_bad_host_key_exit_2(scene: Scene) -> None:
    path = scene.tmp / "bad.json"
    path.write_text('{"version": 1, "secrets": [{"name": "../x", "file": "/f"}]}')
    r = scene.cli(["check-manifest", str(path)])
    assert r.code == 2 and 'secrets[0].name: hostile name "../x"' in r.err
    scene.add("a", b"1")
    assert check(scene, "--host-key", "ssh-ed25519 !!!")[0] == 2
    assert check(scene, "--host-key", str(scene.tmp / "nope.pub"))[0] == 2
