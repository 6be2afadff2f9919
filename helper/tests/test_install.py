from __future__ import annotations

import contextlib
import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _activation import IMPORTED, Scene, make_scene, tree
from conftest import HELPER_DIR, make_age_key, make_ssh_key, needs_age, needs_root
from hypothesis import given, settings
from hypothesis import strategies as st

from nixseal import cli
from nixseal.age import crypto
from nixseal.cli import install as install_verb


@pytest.fixture
def scene(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Scene:
    return make_scene(tmp_path, capsys)


def test_first_install_lays_out_a_generation(scene: Scene) -> None:
    scene.add("api-token", b"tok\n", restartUnits=["api.service"])
    scene.add("db/password", b"pw", reloadUnits=["db.service"])
    r = scene.install()
    assert r.code == 0, r.err
    assert (scene.live("api-token").read_bytes(), scene.live("db/password").read_bytes()) == (
        b"tok\n",
        b"pw",
    )
    # relative links: the tree is readable inside DIR and correct on a host
    assert os.readlink(scene.live()) == "secrets.d/1"
    assert scene.live("db").is_dir() and not scene.live("db").is_symlink()
    installed = r.events_named("installed")
    assert sorted(e["name"] for e in installed) == ["api-token", "db/password"]
    assert all(e["generation"] == 1 and e["kind"] == "secret" for e in installed)
    (summary,) = r.events_named("install finished")
    assert (summary["installed"], summary["previous"]) == (2, None)
    # first boot: nothing was running with an old value, nothing is restarted
    assert scene.read_list("restart") == [] and scene.read_list("reload") == []


@needs_root
def test_owners_modes_and_the_keys_group_come_from_the_root(scene: Scene) -> None:
    scene.add("a", b"1", owner="alice", group="web", mode="0440")
    scene.add("b", b"2", owner="bob")  # group: bob's primary group (100 in DIR/etc/passwd)
    scene.add("c", b"3", owner="4321", group="5432", mode="0600")
    scene.add("d/e", b"4")
    assert scene.install().code == 0
    a, b, c, e = (scene.live(n).stat() for n in ("a", "b", "c", "d/e"))
    assert (a.st_uid, a.st_gid, stat.S_IMODE(a.st_mode)) == (1234, 2000, 0o440)
    assert (b.st_uid, b.st_gid, stat.S_IMODE(b.st_mode)) == (1300, 100, 0o400)
    assert (c.st_uid, c.st_gid, stat.S_IMODE(c.st_mode)) == (4321, 5432, 0o600)
    assert (e.st_uid, e.st_gid) == (0, 0)
    for d in (scene.root / "run/secrets.d", scene.root / "run/secrets.d/1", scene.live("d")):
        st = d.stat()
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 96, 0o751), d


@needs_root
def test_without_a_keys_group_directories_belong_to_root(scene: Scene) -> None:
    (scene.root / "etc/group").write_text("root:x:0:\n")
    scene.add("a", b"1")
    assert scene.install().code == 0
    assert (scene.root / "run/secrets.d/1").stat().st_gid == 0


def test_changes_are_detected_by_content_and_units_signalled(scene: Scene) -> None:
    scene.add("same", b"s", restartUnits=["same.service"])
    scene.add("edit", b"v1", restartUnits=["edit.service"], reloadUnits=["edit2.service"])
    scene.add("gone", b"g", restartUnits=["gone.service"])
    scene.template("app.env", "PW=@EDIT@\n", reloadUnits=["app.service"])
    scene.template("static", "nothing secret\n", restartUnits=["static.service"])
    scene.doc["placeholders"] = {"edit": "@EDIT@"}
    assert scene.install().code == 0
    assert scene.live("rendered/app.env").read_bytes() == b"PW=v1\n"

    scene.set_value("same", b"s")  # re-encrypted, same plaintext: not a change
    scene.set_value("edit", b"v2")
    del scene.secrets[2]
    scene.add("new", b"n", restartUnits=["new.service"])
    r = scene.install()
    assert r.code == 0, r.err
    assert scene.live("rendered/app.env").read_bytes() == b"PW=v2\n"
    assert not scene.live("gone").exists()
    by_name = {e["name"]: e["event"] for e in r.events if "name" in e}
    assert by_name == {
        "edit": "changed",
        "gone": "removed",
        "new": "installed",
        "app.env": "changed",
    }
    assert scene.read_list("restart") == ["edit.service", "gone.service", "new.service"]
    assert scene.read_list("reload") == ["app.service", "edit2.service"]

    scene.clear_lists()
    r = scene.install()
    assert r.code == 0 and scene.read_list("restart") == [] and scene.read_list("reload") == []
    (summary,) = r.events_named("install finished")
    assert summary["unchanged"] == 5 and summary["generation"] == 3


def test_unchanged_files_are_shared_not_decrypted_again(scene: Scene) -> None:
    scene.add("a", b"1")
    scene.add("b", b"2", mode="0400")
    assert scene.install().code == 0
    inode_a, inode_b = scene.live("a").stat().st_ino, scene.live("b").stat().st_ino
    scene.secrets[1]["mode"] = "0440"  # same ciphertext, new mode: a file of its own
    # no usable key at all: an unchanged file still installs
    scene.doc["identityPaths"] = [str(scene.tmp / "nope")]
    r = scene.install()
    assert r.code == 0, r.err
    assert scene.live("a").stat().st_ino == inode_a
    assert scene.live("b").stat().st_ino != inode_b
    assert stat.S_IMODE(scene.live("b").stat().st_mode) == 0o440
    assert scene.live("b").read_bytes() == b"2"


def test_keep_generations_prunes_old_ones(scene: Scene) -> None:
    scene.add("a", b"1")
    for value in (b"2", b"3", b"4"):
        scene.set_value("a", value)
        assert scene.install().code == 0
    assert scene.generations() == [2, 3]
    scene.doc["keepGenerations"] = 0
    assert scene.install().code == 0
    assert scene.generations() == [4] and scene.current() == 4
    assert sorted(p.name for p in (scene.root / "run/secrets.d").iterdir()) == [
        "4",
        "4.json",
        "status.json",
    ]


def test_custom_paths_get_symlinks_that_follow_switches(scene: Scene) -> None:
    scene.add("tls/key", b"k1", path="/etc/nginx/key.pem")
    scene.add("inside", b"i", path="/run/secrets/elsewhere/inside")
    assert scene.install().code == 0
    link = scene.root / "etc/nginx/key.pem"
    assert os.readlink(link) == "../../run/secrets/tls/key"
    assert link.read_bytes() == b"k1"
    assert scene.live("elsewhere/inside").read_bytes() == b"i"
    assert not scene.live("inside").exists()
    scene.set_value("tls/key", b"k2")
    assert scene.install().code == 0
    assert link.read_bytes() == b"k2"
    del scene.secrets[0]
    assert scene.install().code == 0
    assert not link.is_symlink()


def test_a_regular_file_in_the_way_of_a_link_is_kept(scene: Scene) -> None:
    (scene.root / "etc/app.conf").write_text("mine")
    scene.add("app", b"v", path="/etc/app.conf")
    scene.add("other", b"o")
    r = scene.install()
    assert r.code == 1
    (failed,) = r.events_named("failed")
    assert "a file is in the way" in failed["reason"] and failed["name"] == "app"
    (summary,) = r.events_named("install finished")
    assert summary["failed"] == 1 and summary["installed"] == 1  # app counted once, as failed
    assert (scene.root / "etc/app.conf").read_text() == "mine"
    assert scene.live("other").read_bytes() == b"o"


def test_templates_render_byte_exact(scene: Scene) -> None:
    scene.add("user", b"admin")
    scene.add("pass", b"p@ss\nword\x00")
    scene.template("creds", "u=<U> p=<P> again <U>", owner="alice", mode="0440")
    scene.doc["placeholders"] = {"user": "<U>", "pass": "<P>"}
    assert scene.install().code == 0
    assert scene.live("rendered/creds").read_bytes() == b"u=admin p=p@ss\nword\x00 again admin"


# -- failure policy -----------------------------------------------------------


def _failing_cases(scene: Scene) -> None:
    other = make_ssh_key(scene.tmp, name="other_key")
    wrong = crypto.encrypt(b"w", [crypto.parse_recipient(other.public, "t")])
    Path(scene.secrets[1]["file"]).write_bytes(wrong)
    good = Path(scene.secrets[2]["file"]).read_bytes()
    Path(scene.secrets[2]["file"]).write_bytes(good[: len(good) - 10])
    Path(scene.secrets[3]["file"]).write_bytes(b"not age at all\n")
    scene.secrets[4]["owner"] = "mallory"
    Path(scene.secrets[5]["file"]).unlink()


def test_bad_secrets_fail_alone_and_keep_their_previous_value(scene: Scene) -> None:
    scene.add("fine", b"fine", restartUnits=["fine.service"])
    for i, name in enumerate(["wrongkey", "truncated", "corrupt", "owner", "missing"]):
        scene.add(name, f"old-{i}".encode(), restartUnits=[f"{name}.service"])
    scene.template("t", "v=@T@", reloadUnits=["t.service"])
    scene.doc["placeholders"] = {"truncated": "@T@"}
    assert scene.install().code == 0
    _failing_cases(scene)
    scene.set_value("fine", b"fine2")
    r = scene.install(fmt="console")
    assert r.code == 1
    assert scene.live("fine").read_bytes() == b"fine2"
    for i, name in enumerate(["wrongkey", "truncated", "corrupt", "owner", "missing"]):
        assert scene.live(name).read_bytes() == f"old-{i}".encode(), name
    assert scene.live("rendered/t").read_bytes() == b"v=old-1"
    lines = [line for line in r.err.splitlines() if line.startswith("[error")]
    assert len(lines) == 6
    reasons = "\n".join(lines)
    assert "not encrypted to these keys" in reasons
    assert "truncated or corrupt" in reasons
    assert "not an age file" in reasons
    assert "unknown owner 'mallory'" in reasons
    assert "No such file or directory" in reasons
    assert "secret 'truncated' it uses is not available" in reasons
    assert "Traceback" not in r.err
    # only the change that happened is signalled; failures change nothing
    assert scene.read_list("restart") == ["fine.service"] and scene.read_list("reload") == []
    # still failing next time: the old value stays, and stays unsignalled
    scene.clear_lists()
    assert scene.install().code == 1
    assert scene.live("owner").read_bytes() == b"old-3" and scene.read_list("restart") == []


def test_a_value_its_placeholder_cannot_hold_fails_that_template_alone(scene: Scene) -> None:
    scene.add("db/password", b'zq"9x')
    scene.add("token", b"t")
    scene.template(
        "app.json", '{"password": <nixseal:json:db/password>}', reloadUnits=["app.service"]
    )
    scene.template("other.env", "TOKEN=<nixseal:dotenv:token>\n")
    scene.doc["placeholders"] = {"db/password": "<nixseal:db/password>", "token": "<nixseal:token>"}
    assert scene.install().code == 0
    assert json.loads(scene.live("rendered/app.json").read_bytes()) == {"password": 'zq"9x'}
    scene.set_value("db/password", b"zq\x009x")
    scene.set_value("token", b"t2")
    r = scene.install(fmt="console")
    assert r.code == 1
    assert json.loads(scene.live("rendered/app.json").read_bytes()) == {"password": 'zq"9x'}
    assert scene.live("rendered/other.env").read_bytes() == b'TOKEN="t2"\n'
    assert scene.live("db/password").read_bytes() == b"zq\x009x"  # the secret itself is fine
    (line,) = [line for line in r.err.splitlines() if line.startswith("[error")]
    assert (
        "template 'app.json': the value for <nixseal:json:db/password> contains a NUL byte,"
        " which the json format cannot hold" in line
    )
    assert "zq" not in line and "9x" not in line
    assert scene.read_list("reload") == []


def test_a_new_secret_that_fails_is_absent_and_named(scene: Scene) -> None:
    scene.add("ok", b"1")
    bad = scene.add("bad", b"2")
    Path(bad["file"]).write_bytes(b"age-encryption.org/v1\n-> X25519")
    r = scene.install()
    assert r.code == 1
    (failed,) = r.events_named("failed")
    assert failed["name"] == "bad" and failed["kept_previous"] is False
    assert "truncated age file" in failed["reason"]
    assert scene.live("ok").read_bytes() == b"1" and not scene.live("bad").exists()


@pytest.mark.parametrize(
    "bad",
    [
        "{not json",
        json.dumps({"version": 1, "secrets": [{"name": "../../etc/shadow", "file": "/f"}]}),
        json.dumps({"version": 1, "secrets": [{"name": "a", "file": "/f", "mode": "rw"}]}),
        json.dumps({"version": 1, "secrets": [{"file": "/f"}]}),
    ],
)
def test_a_malformed_manifest_changes_nothing(scene: Scene, bad: str) -> None:
    scene.add("a", b"1")
    assert scene.install().code == 0
    before = tree(scene.root)
    path = scene.tmp / "bad.json"
    path.write_text(bad)
    r = scene.cli(["install", "--manifest", str(path), "--root", str(scene.root), "--no-mount"])
    assert r.code == 2
    assert r.err.startswith(f"nixseal install: error: {path}: ")
    assert len(r.err.splitlines()) == 1
    assert tree(scene.root) == before


def test_a_missing_root_is_a_usage_error(scene: Scene) -> None:
    scene.add("a", b"1")
    r = scene.cli(["install", "--manifest", str(scene.write()), "--root", str(scene.tmp / "no")])
    assert r.code == 2 and "not a directory" in r.err


# -- identities -----------------------------------------------------------------


def test_identities_of_every_kind_and_unreadable_ones_skipped(scene: Scene) -> None:
    rsa = make_ssh_key(scene.tmp, "rsa")
    age_key = make_age_key(scene.tmp)
    second = make_age_key(scene.tmp, "second.txt")
    combined = scene.tmp / "combined.txt"  # several keys, comments, blank lines
    combined.write_text(f"# one\n{age_key.secret}\n\n# two\n{second.secret}\n")
    scene.doc["identityPaths"] = [
        str(scene.tmp / "absent"),
        str(rsa.private_path),
        str(combined),
        str(scene.key.private_path),
    ]
    values = {"ed": b"e", "rsa": b"r", "age1": b"a1", "age2": b"a2"}
    recipients = {"ed": scene.key.public, "rsa": rsa.public}
    recipients |= {"age1": age_key.public, "age2": second.public}
    for name, value in values.items():
        file = scene.src / f"{name}.age"
        file.write_bytes(crypto.encrypt(value, [crypto.parse_recipient(recipients[name], "t")]))
        scene.secrets.append({"name": name, "file": str(file)})
    r = scene.install()
    assert r.code == 0, r.err
    assert {n: scene.live(n).read_bytes() for n in values} == values
    (skipped,) = r.events_named("identity skipped")
    assert skipped["identity"] == str(scene.tmp / "absent")


def test_no_usable_identity_fails_every_secret(scene: Scene) -> None:
    scene.add("a", b"1")
    scene.doc["identityPaths"] = [str(scene.tmp / "absent")]
    r = scene.install()
    assert r.code == 1
    (failed,) = r.events_named("failed")
    assert "no usable identity" in failed["reason"]


# -- modes of running -------------------------------------------------------------


def test_dry_run_reports_and_touches_nothing(scene: Scene) -> None:
    scene.add("a", b"1", restartUnits=["a.service"])
    scene.add("b", b"2")
    assert scene.install().code == 0
    scene.set_value("a", b"changed")
    scene.add("c", b"3")
    before = tree(scene.root)
    r = scene.install("--no-mount", "--dry-run")
    assert r.code == 0, r.err
    assert tree(scene.root) == before
    events = {e["name"]: e["event"] for e in r.events if "name" in e}
    assert events == {"a": "changed", "c": "installed"}
    assert all(e.get("dry_run") for e in r.events)
    (summary,) = r.events_named("dry run finished")
    assert summary["would_signal"] == {"restart": ["a.service"], "reload": []}
    # a dry run on a fresh root creates nothing at all
    fresh = make_scene(scene.tmp / "fresh", scene.capsys)
    fresh.add("x", b"x")
    assert fresh.install("--dry-run").code == 0
    assert sorted(p.name for p in fresh.root.iterdir()) == ["etc"]


def test_user_mode_installs_into_the_runtime_dir_without_chown(
    scene: Scene, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = scene.tmp / "xdg"
    runtime.mkdir()
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    scene.doc.update(userMode=True, mountPoint="%r/secrets.d", symlinkPath="%r/secrets")
    scene.doc.pop("restartListPath")
    scene.doc.pop("reloadListPath")
    scene.add("a", b"1", owner="nonexistent-user", mode="0600")
    scene.add("b", b"2", path="%r/other/b")
    r = scene.cli(["--log-format", "json", "install", "--manifest", str(scene.write())])
    assert r.code == 0, r.err
    assert (runtime / "secrets/a").read_bytes() == b"1"
    assert (runtime / "other/b").read_bytes() == b"2"
    st = (runtime / "secrets/a").stat()
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (os.getuid(), 0o600)
    assert not (runtime / "secrets.d").is_mount()


def test_log_format_after_the_verb_and_console_output(scene: Scene) -> None:
    scene.add("a", b"1")
    path = str(scene.write())
    r = scene.cli(["install", "--manifest", path, "--root", str(scene.root), "--no-mount"])
    assert r.code == 0 and "[info" in r.err and "installed" in r.err and "name=a" in r.err
    argv = ["install", "--log-format", "json", "--manifest", path, "--root", str(scene.root)]
    r = scene.cli([*argv, "--no-mount"])
    assert r.code == 0 and r.events_named("install finished")


def test_no_plaintext_in_any_output(scene: Scene) -> None:
    """Succeeding, failing, dry, json and console runs never print a value."""
    secret = b"Zq9-PLAINTEXT-never-logged-7Xk"
    scene.add("a", secret, restartUnits=["a.service"])
    scene.add("b/c", secret + b"2", path="/etc/c")
    scene.template("t", "x=@A@", reloadUnits=["t.service"])
    scene.doc["placeholders"] = {"a": "@A@"}
    outputs = []
    for fmt in ("json", "console"):
        outputs.append(scene.install(fmt=fmt))
        scene.set_value("a", secret + b"3")
        outputs.append(scene.install("--no-mount", "--dry-run", fmt=fmt))
        outputs.append(scene.install(fmt=fmt))
        _corrupt = Path(scene.secrets[1]["file"])
        good = _corrupt.read_bytes()
        _corrupt.write_bytes(good[:-5])
        scene.secrets[0]["owner"] = "nobody-here"
        outputs.append(scene.install(fmt=fmt))
        _corrupt.write_bytes(good)
        scene.secrets[0].pop("owner")
    argv = ["-v", "install", "--manifest", str(scene.write()), "--root", str(scene.root)]
    r = scene.cli([*argv, "--no-mount"])
    outputs.append(r)
    assert {o.code for o in outputs} == {0, 1}
    text = "".join(o.out + o.err for o in outputs)
    assert "Zq9-PLAINTEXT" not in text
    assert "failed" in text and "unchanged" in text  # -v shows debug events too


@needs_age
def test_files_from_the_age_cli_install_byte_exact(scene: Scene) -> None:
    age_key = make_age_key(scene.tmp)
    scene.doc["identityPaths"].append(str(age_key.path))
    payloads = {
        "bin": bytes(range(256)) * 40,
        "newline": b"value\n\n",
        "empty": b"",
    }
    for name, payload in payloads.items():
        plain = scene.tmp / f"{name}.plain"
        plain.write_bytes(payload)
        for how, args in (
            ("ssh", ["-R", str(scene.key.private_path) + ".pub"]),
            ("x25519", ["-r", age_key.public]),
            ("armor", ["-a", "-r", age_key.public]),
        ):
            out = scene.src / f"{name}-{how}.age"
            subprocess.run(["age", *args, "-o", str(out), str(plain)], check=True)
            scene.secrets.append({"name": f"{name}-{how}", "file": str(out)})
    r = scene.install()
    assert r.code == 0, r.err
    for entry in scene.secrets:
        keys = ["-i", str(scene.key.private_path), "-i", str(age_key.path)]
        want = subprocess.run(
            ["age", "-d", *keys, entry["file"]],
            check=True,
            capture_output=True,
        ).stdout
        assert scene.live(entry["name"]).read_bytes() == want
        assert want == payloads[entry["name"].split("-")[0]]


@needs_root
def test_mounts_ramfs_or_tmpfs_once_in_a_private_namespace(scene: Scene) -> None:
    scene.add("a", b"1")
    manifest = scene.write()
    script = f"""
set -e
nixseal() {{ PYTHONPATH={HELPER_DIR} {sys.executable} -m nixseal "$@"; }}
nixseal install --manifest {manifest} --root {scene.root} 2>/dev/null
nixseal install --manifest {manifest} --root {scene.root} 2>/dev/null
findmnt -n -o FSTYPE,OPTIONS {scene.root}/run/secrets.d
findmnt -n {scene.root}/run/secrets.d | wc -l
cat {scene.root}/run/secrets/a
"""
    proc = subprocess.run(
        ["unshare", "--mount", "sh", "-c", script], check=False, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    fstype_opts, count, value = proc.stdout.split("\n")[:3]
    assert fstype_opts.split()[0] == "ramfs" and "nosuid" in fstype_opts and "nodev" in fstype_opts
    assert (count, value) == ("1", "1")
    # outside the namespace nothing was mounted, and no plaintext reached this disk
    assert not (scene.root / "run/secrets.d").is_mount()
    assert not (scene.root / "run/secrets.d/1").exists()

    scene.doc["useTmpfs"] = True
    manifest = scene.write()
    proc = subprocess.run(
        ["unshare", "--mount", "sh", "-c", script], check=False, capture_output=True, text=True
    )
    assert proc.returncode == 0 and proc.stdout.split()[0] == "tmpfs"


# -- found in review ------------------------------------------------------------


def test_unusable_identities_are_each_named_and_skipped(scene: Scene) -> None:
    protected = scene.tmp / "protected_key"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "pw", "-f", str(protected)], check=True
    )
    ecdsa = make_ssh_key(scene.tmp, "ecdsa")
    truncated = scene.tmp / "truncated_key"
    truncated.write_bytes(scene.key.private_path.read_bytes()[:200])
    unusable = [protected, ecdsa.private_path, truncated, scene.tmp, Path(f"{protected}.pub")]
    scene.doc["identityPaths"] = [*map(str, unusable), str(scene.key.private_path)]
    scene.add("a", b"1")
    r = scene.install()
    assert r.code == 0, r.err
    assert scene.live("a").read_bytes() == b"1"
    skipped = r.events_named("identity skipped")
    assert [e["identity"] for e in skipped] == [str(p) for p in unusable]
    reasons = [e["reason"] for e in skipped]
    assert "passphrase-protected" in reasons[0]
    assert "ecdsa" in reasons[1]
    assert "not a regular file (a directory)" in reasons[3]
    assert all(e["level"] == "warning" for e in skipped)


@pytest.mark.parametrize("template_input", [False, True])
def test_a_value_removed_by_hand_is_decrypted_again(scene: Scene, template_input: bool) -> None:
    # Its age file is unchanged, so the previous value would be reused; it
    # is gone, so the file is decrypted again instead of failing forever.
    scene.add("a", b"1", restartUnits=["a.service"])
    if template_input:
        scene.template("t", "v=@A@")
        scene.doc["placeholders"] = {"a": "@A@"}
    assert scene.install().code == 0
    scene.live("a").unlink()
    r = scene.install()
    assert r.code == 0, r.err
    assert scene.live("a").read_bytes() == b"1"
    assert [e["name"] for e in r.events_named("installed")] == ["a"]
    assert scene.read_list("restart") == ["a.service"]
    if template_input:
        assert scene.live("rendered/t").read_bytes() == b"v=1"


def test_a_write_that_fails_midway_keeps_the_previous_value(
    scene: Scene, monkeypatch: pytest.MonkeyPatch
) -> None:
    scene.add("a", b"a1")
    scene.add("b", b"old value of b")
    assert scene.install().code == 0
    scene.set_value("a", b"a2")
    scene.set_value("b", b"new value of b")
    real_write = os.write

    def full_disk(fd: int, data: Any) -> int:
        if os.readlink(f"/proc/self/fd/{fd}").endswith("/2/b"):
            real_write(fd, bytes(data[:3]))
            raise OSError(28, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", full_disk)
    r = scene.install()
    monkeypatch.undo()
    assert r.code == 1
    (failed,) = r.events_named("failed")
    assert failed["name"] == "b" and failed["kept_previous"] is True
    assert failed["reason"] == "/run/secrets/b: no space left on /run/secrets.d for its 14 bytes"
    assert scene.live("b").read_bytes() == b"old value of b"  # not b"new"
    assert scene.live("a").read_bytes() == b"a2"
    assert scene.install().code == 0 and scene.live("b").read_bytes() == b"new value of b"


def test_the_lock_is_held_until_the_units_are_handed_over(scene: Scene) -> None:
    # The hand-over rewrites the new record; a second run must not read or
    # prune it meanwhile. A FIFO as the restart list holds the first run there.
    scene.add("a", b"1", restartUnits=["a.service"])
    assert scene.install().code == 0
    fifo = scene.root / "run/nixos/activation-restart-list"
    fifo.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(fifo)
    scene.set_value("a", b"2")
    env = {**os.environ, "PYTHONPATH": str(HELPER_DIR)}
    argv = [sys.executable, "-m", "nixseal", "install", "--manifest", str(scene.write())]
    argv += ["--root", str(scene.root), "--no-mount"]
    first = subprocess.Popen(argv, env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while scene.current() != 2:  # switched; now blocked writing the list
            assert time.monotonic() < deadline and first.poll() is None, "first run stalled"
            time.sleep(0.02)
        second = subprocess.Popen(argv, env=env, stderr=subprocess.PIPE, text=True)
        time.sleep(0.7)
        assert second.poll() is None, "second run ran during the first one's hand-over"
        assert scene.generations() == [1, 2]
    finally:
        with fifo.open("rb") as reader:  # let the first run go on
            assert first.wait(timeout=30) == 0
            assert reader.read() == b"a.service\n"
    assert second.wait(timeout=30) == 0, second.communicate()[1]
    assert scene.current() == 3 and scene.live("a").read_bytes() == b"2"


def test_a_record_of_another_version_does_not_break_the_install(scene: Scene) -> None:
    scene.add("a", b"1", restartUnits=["a.service"])
    scene.add("b", b"2", restartUnits=["b.service"])
    assert scene.install().code == 0
    record = scene.root / "run/secrets.d/1.json"
    record.write_text(json.dumps({"version": 9, "entries": [["secret:a", 5]], "pending": 1}))
    scene.set_value("b", b"3")
    r = scene.install()
    assert r.code == 0, r.err
    assert (scene.live("a").read_bytes(), scene.live("b").read_bytes()) == (b"1", b"3")
    # changes are still found, by comparing with the previous generation's files
    assert {e["name"]: e["event"] for e in r.events if "name" in e} == {"b": "changed"}
    assert scene.read_list("restart") == ["b.service"]


def test_invalid_unicode_in_the_manifest_is_a_usage_error(scene: Scene) -> None:
    scene.add("a", b"1")
    scene.template("t", "x=\ud800")
    path = scene.tmp / "m.json"
    path.write_text(json.dumps(scene.doc))  # ASCII JSON: "\ud800" escaped
    before = tree(scene.root)
    r = scene.cli(["install", "--manifest", str(path), "--root", str(scene.root), "--no-mount"])
    assert r.code == 2, r.err
    assert r.err.startswith(f"nixseal install: error: {path}: templates[0].content: ")
    assert tree(scene.root) == before


def test_user_mode_with_an_empty_runtime_dir_writes_nothing(
    scene: Scene, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", "")
    monkeypatch.chdir(scene.tmp)
    scene.doc.update(userMode=True, mountPoint="%r/secrets.d", symlinkPath="%r/secrets")
    scene.add("a", b"1")
    argv = ["install", "--manifest", str(scene.write()), "--root", str(scene.root)]
    before = tree(scene.tmp)
    r = scene.cli(argv)
    assert r.code == 2 and "XDG_RUNTIME_DIR is not set" in r.err
    monkeypatch.setenv("XDG_RUNTIME_DIR", "run/user/1000")
    r = scene.cli(argv)
    assert r.code == 2 and "is not an absolute directory" in r.err
    assert tree(scene.tmp) == before


def test_deferred_units_are_signalled_by_a_later_signal_pending_run(scene: Scene) -> None:
    """Activation-script mode: the snippet defers, a unit signals after the switch."""
    scene.add("a", b"v1", restartUnits=["a.service"], reloadUnits=["r.service"])
    assert scene.install().code == 0
    scene.set_value("a", b"v2")
    r = scene.install("--no-mount", "--defer-signals")
    assert r.code == 0, r.err
    assert scene.read_list("restart") == [] and scene.read_list("reload") == []
    assert [e["restart"] for e in r.events_named("units pending")] == [["a.service"]]
    generations = scene.generations()

    r = scene.install("--no-mount", "--signal-pending")
    assert r.code == 0, r.err
    assert scene.generations() == generations  # installs nothing
    assert scene.read_list("restart") == ["a.service"]
    assert scene.read_list("reload") == ["r.service"]
    assert r.events_named("pending units signalled")

    scene.clear_lists()
    r = scene.install("--no-mount", "--signal-pending")
    assert r.code == 0 and r.events_named("no units pending")
    assert scene.read_list("restart") == []


def test_defer_and_signal_pending_exclude_each_other(scene: Scene) -> None:
    scene.add("a", b"v1")
    with pytest.raises(SystemExit) as exit_:
        scene.install("--defer-signals", "--signal-pending")
    assert exit_.value.code == 2


# -- paths at the file system's limits -----------------------------------------


def _remove_deep(base: Path, levels: int) -> None:
    """Undo _deep_dir (shutil.rmtree, which pytest cleans up with, recurses)."""
    fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for depth in range(levels, 0, -1):
            with contextlib.suppress(FileNotFoundError):
                os.rmdir("/".join(["d"] * depth), dir_fd=fd)
    finally:
        os.close(fd)


def _deep_dir(base: Path, levels: int) -> str:
    """base/d/d/.../d, levels deep, made through descriptors (no PATH_MAX)."""
    fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY)
    for _ in range(levels):
        os.mkdir("d", dir_fd=fd)
        fd, old = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd), fd
        os.close(old)
    os.close(fd)
    return "/".join(["d"] * levels)


def test_a_link_longer_than_paths_may_be_still_installs(scene: Scene) -> None:
    """A custom path within the manifest's limits, under a --root that makes
    it longer than PATH_MAX: every step works through directory descriptors."""
    scene.add("a", b"1")
    long = "/srv/" + "/".join([f"{i:02d}" + "y" * 200 for i in range(20)]) + "/key"
    assert len(long) < 4096 < len(str(scene.root)) + len(long)
    scene.add("x", b"x", path=long)
    r = scene.install()
    assert r.code == 0, r.err
    fd = os.open(scene.root / "srv", os.O_RDONLY | os.O_DIRECTORY)
    for part in long.split("/")[2:-1]:
        fd, old = os.open(part, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd), fd
        os.close(old)
    target = os.readlink("key", dir_fd=fd)
    os.close(fd)
    assert target == "../" * 21 + "run/secrets/x"


@pytest.fixture
def deep(scene: Scene) -> Iterator[str]:
    levels = 1400
    try:
        yield _deep_dir(scene.root, levels)
    finally:
        _remove_deep(scene.root, levels)


def test_a_link_the_file_system_refuses_fails_that_entry_alone(scene: Scene, deep: str) -> None:
    """/etc/deep leads 1,400 directories down: the link there would need a
    target longer than 4,095 bytes. That entry fails; every later step of
    the run happens (later links, the summary, pruning)."""
    (scene.root / "etc/deep").symlink_to(f"../{deep}")
    scene.add("a", b"1")
    scene.add("x", b"x", path="/etc/deep/x")
    scene.add("z", b"z", path="/etc/z.conf")
    assert scene.install().code == 1
    scene.set_value("a", b"2")
    r = scene.install()
    assert r.code == 1, r.err
    (failed,) = r.events_named("failed")
    assert failed["name"] == "x" and "File name too long" in failed["reason"], failed
    (summary,) = r.events_named("install finished")
    assert summary["failed"] == 1 and summary["changed"] == 1
    assert (scene.root / "etc/z.conf").read_bytes() == b"z"
    assert scene.generations() == [1, 2]


@pytest.mark.parametrize("with_template", [False, True], ids=["secrets", "template and link"])
def test_an_install_imports_nothing_of_the_admin_side(scene: Scene, with_template: bool) -> None:
    """Every boot pays for what `nixseal install` imports: never the admin's
    side, another verb, or pathlib (~3 ms: urllib.parse, ipaddress...)."""
    scene.add("a", b"1")
    if with_template:
        scene.template("t", "x", path="/etc/t.conf")
    argv = ["install", "--manifest", str(scene.write()), "--root", str(scene.root), "--no-mount"]
    # -S, as the package starts it: what site imports would hide what the
    # install imports (the dependencies are on this interpreter's path)
    path = [str(HELPER_DIR), *(p for p in sys.path if p and Path(p).is_dir())]
    proc = subprocess.run(
        [sys.executable, "-S", "-c", IMPORTED, *argv],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(path)},
        capture_output=True,
        text=True,
        check=True,
    )
    modules = set(proc.stdout.split())
    assert {"nixseal.engine.activation", "nixseal.engine.write", "pyrage"} <= modules
    verbs = {m for m in modules if m.startswith("nixseal.cli.")}
    assert verbs == {"nixseal.cli.install"}
    assert not {m for m in modules if m.startswith("nixseal.repo")}
    assert "pathlib" not in modules  # also as it decrypts (the first install)
    assert not {m for m in modules if m.split(".")[0] == "structlog"}  # ~16 ms (util/events.py)
    assert not {"argparse", "gettext", "locale"} & modules  # ~8 ms (install.parse_quickly)
    assert not {"dataclasses", "inspect"} & modules  # ~5 ms: NamedTuples instead
    # nixseal.util.lean, .digest, .fastjson, ._socket: docs/performance.md
    costly = {"typing", "contextlib", "json", "re", "enum", "functools", "collections"}
    costly |= {"hashlib", "hmac", "base64", "struct", "socket", "signal", "importlib"}
    assert not costly & modules
    # what only some installs need is imported only by those
    assert ("nixseal.engine.render" in modules) is with_template
    assert ("nixseal.engine.links" in modules) is with_template
    # documents' parsers: only for a secret taking a key (tests/test_document.py)
    assert not {"yaml", "tomllib", "configparser", "nixseal.util.document"} & modules


# --- the command line without argparse ----------------------------------------------

_TOKENS = [
    "install",
    "--manifest",
    "m.json",
    "--manifest=m2.json",
    "--root",
    "/mnt",
    "--root=/r",
    "--dry-run",
    "--no-mount",
    "--defer-signals",
    "--signal-pending",
    "--log-format",
    "json",
    "--log-format=console",
    "--log-format=xml",
    "-v",
    "-q",
    "--verbose",
    "--quiet",
    "-vv",
    "--help",
    "-h",
    "--rules",
    "x",
    "--dry-run=1",
    "--bogus",
    "-",
    "--",
]


@given(st.lists(st.sampled_from(_TOKENS), max_size=9))
@settings(max_examples=400, deadline=None)
def test_the_quick_parse_agrees_with_argparse(tokens: list[str]) -> None:
    """Whatever parse_quickly accepts, argparse reads alike; the rest it leaves
    to argparse (help, errors, everything else), so nothing changes for users."""
    argv = ["install", "--manifest", "m.json", *tokens] if "install" not in tokens else tokens
    quick = install_verb.parse_quickly(argv)
    if quick is None:
        return
    full = cli.build_parser("install").parse_args(argv)
    for attr in (
        "verb",
        "manifest",
        "root",
        "dry_run",
        "no_mount",
        "defer_signals",
        "signal_pending",
        "log_format",
        "verbose",
        "quiet",
    ):
        assert getattr(quick, attr) == getattr(full, attr), (attr, argv)


def test_the_quick_parse_reads_the_units_command_lines() -> None:
    for argv in (
        ["install", "--manifest", "/nix/store/x-manifest.json"],
        ["--log-format", "json", "install", "--manifest", "m", "--root", "/mnt", "--no-mount"],
        ["install", "--manifest", "m", "--defer-signals"],
        ["-q", "install", "--signal-pending", "--manifest=m"],
    ):
        assert install_verb.parse_quickly(argv) is not None, argv
    for argv in (
        ["install"],
        ["install", "--help"],
        ["install", "--manifest", "m", "-x"],
        ["install", "--manifest", "m", "--defer-signals", "--signal-pending"],
    ):
        assert install_verb.parse_quickly(argv) is None, argv


# -- the status file (nixseal status reads it) ---------------------------------------


def _status(scene: Scene) -> dict[str, Any]:
    path = scene.root / "run/secrets.d/status.json"
    st_ = path.stat()
    assert stat.S_IMODE(st_.st_mode) == 0o600 and st_.st_uid == os.geteuid()
    doc: dict[str, Any] = json.loads(path.read_bytes())
    return doc


def _sha(path: str | Path) -> str:
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_the_status_file_says_each_entrys_state_and_source(scene: Scene) -> None:
    keep = scene.add("keep", b"same-value")
    change = scene.add("change", b"old-value")
    scene.add("gone", b"gone-value")
    broken = scene.add("broken", b"broken-old")
    scene.template("t", "v=@K@")
    scene.doc["placeholders"] = {"keep": "@K@"}
    assert scene.install().code == 0
    first = _status(scene)
    assert first["version"] == 1 and first["generation"] == 1
    assert first["mountPoint"] == "/run/secrets.d"
    assert {k: e["state"] for k, e in first["entries"].items()} == {
        "secret:keep": "installed",
        "secret:change": "installed",
        "secret:gone": "installed",
        "secret:broken": "installed",
        "template:t": "installed",
    }
    broken_source = _sha(broken["file"])
    gone_source = _sha(scene.secrets[2]["file"])
    scene.set_value("change", b"new-value")
    scene.doc["secrets"] = [s for s in scene.secrets if s["name"] != "gone"]
    Path(broken["file"]).write_bytes(b"age-encryption.org/v1\n-> X25519")  # fails, keeps the old
    fresh = scene.add("fresh-broken", b"x")
    Path(fresh["file"]).write_bytes(b"not age")  # fails, with no value to keep
    assert scene.install().code == 1
    doc = _status(scene)
    assert doc["generation"] == 2
    assert doc["entries"] == {
        "secret:keep": {"state": "unchanged", "source": _sha(keep["file"])},
        "secret:change": {"state": "changed", "source": _sha(change["file"])},
        "secret:gone": {"state": "removed", "source": gone_source},
        # the value in place came from the file it had before
        "secret:broken": {"state": "failed", "source": broken_source},
        "secret:fresh-broken": {"state": "failed", "source": None},
        "template:t": {"state": "unchanged", "source": None},
    }
    # never a value, nor a digest of one
    text = (scene.root / "run/secrets.d/status.json").read_text()
    record = json.loads((scene.root / "run/secrets.d/2.json").read_bytes())
    for value in (b"same-value", b"new-value", b"broken-old", b"v=same-value"):
        assert value.decode() not in text
        assert _sha_bytes(value) not in text
    for entry in record["entries"].values():
        if entry["mac"]:
            assert entry["mac"] not in text
    assert record["key"] not in text


def _sha_bytes(value: bytes) -> str:
    import hashlib

    return hashlib.sha256(value).hexdigest()


def test_a_status_file_that_cannot_be_written_is_removed_not_left_stale(
    scene: Scene, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nixseal.engine import generation

    scene.add("a", b"1")
    assert scene.install().code == 0 and _status(scene)["generation"] == 1

    def full(self: generation.Store, data: bytes) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(generation.Store, "write_status", full)
    scene.set_value("a", b"2")
    r = scene.install()
    assert r.code == 0  # the secrets are in place: status is not worth failing a boot for
    (warning,) = r.events_named(
        "status file not written; nixseal status reports none for this host"
    )
    assert warning["reason"] == "No space left on device"
    assert not (scene.root / "run/secrets.d/status.json").exists()


def test_a_dry_run_writes_no_status(scene: Scene) -> None:
    scene.add("a", b"1")
    assert scene.install("--no-mount", "--dry-run").code == 0
    assert not (scene.root / "run/secrets.d/status.json").exists()


def test_after_a_record_it_cannot_trust_the_status_is_still_written(scene: Scene) -> None:
    scene.add("a", b"1")
    scene.add("b", b"2")
    assert scene.install().code == 0
    # as after an older nixseal (or another tool): the record is not this version's
    record = scene.root / "run/secrets.d/1.json"
    doc = json.loads(record.read_bytes())
    doc["version"] = 1
    record.write_text(json.dumps(doc))
    scene.doc["secrets"] = [s for s in scene.secrets if s["name"] == "a"]
    assert scene.install().code == 0
    status = _status(scene)
    assert status["generation"] == 2
    # nothing is known of what the old generation held: no removed entries
    assert status["entries"] == {
        "secret:a": {"state": "unchanged", "source": _sha(scene.secrets[0]["file"])}
    }


def test_the_status_fits_the_room_reserved_for_it() -> None:
    from nixseal.engine import status

    keys = ["secret:a", 'secret:"q"\\', "template:ünï/\U0001f600", "secret:" + "x" * 200]
    states: dict[Any, list[str]] = {"unchanged": keys[:2], "removed": keys[2:]}
    sources = {k: "f" * 64 for k in keys}
    data = status.document(10**19 - 1, "/run/sécrets.d", states, sources, sources)
    assert len(data) <= status.size_bound(keys, "/run/sécrets.d")
