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


def test_a_private_key_given_as_host_key_is_refused_without_quoting_it(scene: Scene) -> None:
    scene.add("a", b"1")
    age_key = make_age_key(scene.tmp)
    secret_line = age_key.path.read_text().splitlines()[-1]
    ssh_private = scene.key.private_path.read_text()
    for path in (age_key.path, scene.key.private_path):
        code, out, err = check(scene, "--host-key", str(path))
        assert code == 2 and out == ""
        assert "a private key in this file; give the public key" in err
        assert secret_line[:20] not in err and "PRIVATE" not in err
        assert not any(line in err for line in ssh_private.splitlines()[1:-1])


def test_a_host_key_file_may_start_with_comments(scene: Scene) -> None:
    scene.add("a", b"1")
    pub = scene.tmp / "host.pub"
    pub.write_text(f"# web1's host key\n\n{scene.key.public}\n")
    assert check(scene, "--host-key", str(pub))[0] == 0
    other = make_ssh_key(scene.tmp, name="other_host")
    pub.write_text(f"# another host\n{other.public}\n")
    code, _, err = check(scene, "--host-key", str(pub))
    assert code == 1 and "not encrypted to the host key" in err
