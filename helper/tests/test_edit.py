from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _admin import Repo, make_repo

from nixseal.repo.edit import MEMORY_FS, filesystem_type

EDITOR = f"""#!{sys.executable}
import json, os, stat, sys, time
path = sys.argv[-1]
log = os.environ["EDIT_LOG"]
action = os.environ.get("EDIT_ACTION", "keep")
info = {{
    "file": path,
    "dir_mode": stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode),
    "file_mode": stat.S_IMODE(os.stat(path).st_mode),
    "pid": os.getpid(),
}}
if action != "hang":
    info["content"] = open(path, "rb").read().decode()
with open(log, "w") as f:
    json.dump(info, f)
if action.startswith("replace:"):
    with open(path, "wb") as f:
        f.write(action[len("replace:"):].encode())
elif action.startswith("seq:"):
    steps = json.loads(action[len("seq:"):])
    counter = log + ".n"
    n = int(open(counter).read()) if os.path.exists(counter) else 0
    open(counter, "w").write(str(n + 1))
    with open(path, "wb") as f:
        f.write(steps[min(n, len(steps) - 1)].encode())
elif action == "fail":
    sys.exit(3)
elif action == "ctrlc":
    import signal
    got = []
    signal.signal(signal.SIGINT, lambda *a: got.append(1))
    open(log + ".ready", "w").close()
    while not os.path.exists(log + ".go"):
        time.sleep(0.01)
    with open(path, "wb") as f:
        f.write(f"after ctrl-c {{len(got)}}".encode())
elif action == "hang":
    with open(path, "wb") as f:
        f.write(os.environ["EDIT_TYPED"].encode())
    open(log + ".ready", "w").close()
    time.sleep(60)
"""


@pytest.fixture
def repo(tmp_path: Path, shm_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Repo:
    r = make_repo(tmp_path)
    r.write_rules({"db": ["web1"], "new/one": []})
    editor = tmp_path / "editor.py"
    editor.write_text(EDITOR)
    editor.chmod(0o755)
    monkeypatch.setenv("EDITOR", str(editor))
    monkeypatch.delenv("VISUAL", raising=False)
    monkeypatch.setenv("EDIT_LOG", str(tmp_path / "editor.log"))
    monkeypatch.setenv("NIXSEAL_TMPDIR", str(shm_dir))
    return r


def editor_log(tmp_path: Path) -> dict[str, object]:
    data: dict[str, object] = json.loads((tmp_path / "editor.log").read_text())
    return data


def test_edit_changes_value_in_private_tmpfs_dir(
    repo: Repo, tmp_path: Path, shm_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo.encrypt("db", b"old value")
    monkeypatch.setenv("EDIT_ACTION", "replace:new value")
    r = repo.run("edit", "db")
    assert r.code == 0, r.err
    assert repo.decrypt("db") == b"new value"
    log = editor_log(tmp_path)
    assert log["content"] == "old value"
    assert log["dir_mode"] == 0o700 and log["file_mode"] == 0o600
    edited = Path(str(log["file"]))
    assert edited.parent.parent == shm_dir
    assert not edited.parent.exists()
    assert list(shm_dir.iterdir()) == []


def test_unchanged_content_is_not_reencrypted(repo: Repo, monkeypatch: pytest.MonkeyPatch) -> None:
    repo.encrypt("db", b"same")
    before = repo.age_file("db").read_bytes()
    monkeypatch.setenv("EDIT_ACTION", "keep")
    r = repo.run("edit", "db")
    assert r.code == 0 and "unchanged, not re-encrypted" in r.err
    assert repo.age_file("db").read_bytes() == before


def test_new_secret_is_created_from_the_rules(
    repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EDIT_ACTION", "replace:fresh")
    r = repo.run("edit", "new/one")
    assert r.code == 0, r.err
    assert editor_log(tmp_path)["content"] == ""
    assert repo.decrypt("new/one") == b"fresh"
    assert repo.run("check", "new/one").code == 0
    r = repo.run("edit", "not-in-rules")
    assert r.code == 1 and 'add a [secrets."not-in-rules"]' in r.err


def test_failing_editor_changes_nothing(
    repo: Repo, shm_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo.encrypt("db", b"keep me")
    before = repo.age_file("db").read_bytes()
    monkeypatch.setenv("EDIT_ACTION", "fail")
    r = repo.run("edit", "db")
    assert r.code == 1 and "editor exited with status 3" in r.err
    assert repo.age_file("db").read_bytes() == before
    assert list(shm_dir.iterdir()) == []


def test_refuses_a_directory_on_persistent_disk(
    repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if filesystem_type(tmp_path) in MEMORY_FS:
        pytest.skip("the test's temporary directory is itself on tmpfs")
    repo.encrypt("db", b"v")
    monkeypatch.setenv("NIXSEAL_TMPDIR", str(tmp_path))
    r = repo.run("edit", "db")
    assert r.code == 2 and "no tmpfs or ramfs directory" in r.err and "NIXSEAL_TMPDIR" in r.err


def _contains(root: Path, needle: bytes) -> list[Path]:
    hits = []
    for p in root.rglob("*"):
        if p.is_file() and not p.is_symlink():
            try:
                if needle in p.read_bytes():
                    hits.append(p)
            except OSError:
                pass
    return hits


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_signal_during_edit_leaves_no_plaintext(
    repo: Repo, tmp_path: Path, shm_dir: Path, sig: signal.Signals
) -> None:
    repo.encrypt("db", b"original plaintext")
    before = repo.age_file("db").read_bytes()
    env = dict(os.environ, EDIT_ACTION="hang", EDIT_TYPED="half-typed secret")
    proc = subprocess.Popen(
        [sys.executable, "-m", "nixseal", "-i", str(repo.admin.path), "edit", "db"],
        cwd=repo.root,
        env=env,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    ready = tmp_path / "editor.log.ready"
    deadline = time.monotonic() + 20
    while not ready.exists():
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        assert time.monotonic() < deadline, "editor never started"
        time.sleep(0.02)
    editor_pid = int(editor_log(tmp_path)["pid"])  # type: ignore[call-overload]
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 128 + sig
    assert b"nothing saved" in err
    assert list(shm_dir.iterdir()) == []
    assert repo.age_file("db").read_bytes() == before
    for needle in (b"original plaintext", b"half-typed secret"):
        assert _contains(tmp_path, needle) == []
        assert _contains(shm_dir, needle) == []
    with pytest.raises(ProcessLookupError):
        os.kill(editor_pid, 0)


def test_ctrl_c_on_the_terminal_reaches_the_editor_only(repo: Repo, tmp_path: Path) -> None:
    import pty

    repo.encrypt("db", b"before")
    env = dict(os.environ, EDIT_ACTION="ctrlc")
    argv = [sys.executable, "-m", "nixseal", "-i", str(repo.admin.path), "edit", "db"]
    pid, master = pty.fork()
    if pid == 0:  # child: nixseal on the pty as its controlling terminal
        os.chdir(repo.root)
        os.execvpe(argv[0], argv, env)
    try:
        ready = tmp_path / "editor.log.ready"
        deadline = time.monotonic() + 20
        while not ready.exists():
            assert time.monotonic() < deadline, "editor never started"
            time.sleep(0.02)
        os.write(master, b"\x03")  # Ctrl-C typed on the terminal
        time.sleep(0.3)
        (tmp_path / "editor.log.go").touch()
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(master)
    assert os.waitstatus_to_exitcode(status) == 0
    assert repo.decrypt("db") == b"after ctrl-c 1"


@pytest.mark.parametrize(
    ("editor", "code", "message"),
    [
        ("vim 'unterminated", 2, '$EDITOR "vim \'unterminated": no closing quotation'),
        ("sh -c 'kill -KILL $$'", 1, "editor was killed by SIGKILL; db not changed"),
        ("sh -c 'rm \"$1\"' x", 1, "editor removed the file; db not changed: No such file"),
    ],
    ids=["unbalanced quote", "killed", "file removed"],
)
def test_broken_editors_are_one_line_and_change_nothing(
    repo: Repo, shm_dir: Path, monkeypatch: pytest.MonkeyPatch, editor: str, code: int, message: str
) -> None:
    repo.encrypt("db", b"keep me")
    before = repo.age_file("db").read_bytes()
    monkeypatch.setenv("EDITOR", editor)
    r = repo.run("edit", "db")
    assert r.code == code
    assert r.err.startswith(f"nixseal edit: error: {message}") and len(r.err.splitlines()) == 1
    assert str(shm_dir) not in r.err  # no private path (and no value) in the message
    assert repo.age_file("db").read_bytes() == before
    assert list(shm_dir.iterdir()) == []


def test_blank_editor_variable_is_named(repo: Repo, monkeypatch: pytest.MonkeyPatch) -> None:
    """The message names the variable that is blank, VISUAL before EDITOR."""
    repo.encrypt("db", b"kept")
    monkeypatch.setenv("VISUAL", "   ")
    r = repo.run("edit", "db")
    assert r.code == 2
    assert "$VISUAL is empty" in r.err
    monkeypatch.delenv("VISUAL")
    monkeypatch.setenv("EDITOR", " ")
    r = repo.run("edit", "db")
    assert r.code == 2
    assert "$EDITOR is empty" in r.err
    assert repo.decrypt("db") == b"kept"


def test_an_emptied_value_is_refused_unless_allowed(
    repo: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo.encrypt("db", b"the password")
    before = repo.age_file("db").read_bytes()
    monkeypatch.setenv("EDIT_ACTION", "replace:")
    r = repo.run("edit", "db")
    assert r.code == 2
    assert r.err == (
        "nixseal edit: error: db: the edited value is empty; not changed "
        "(--allow-empty to store it)\n"
    )
    assert repo.age_file("db").read_bytes() == before
    r = repo.run("edit", "--allow-empty", "db")
    assert r.code == 0, r.err
    assert repo.decrypt("db") == b""


def _document_repo(repo: Repo, fmt: str) -> None:
    repo.write_rules({"db": ["web1"], "app": ["web1"]})
    with repo.rules.open("a") as f:
        f.write(f'format = "{fmt}"\n')


def test_a_document_that_does_not_parse_is_opened_again_then_kept(
    repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _document_repo(repo, "yaml")
    repo.encrypt("app", b"db:\n  password: old\n")
    fixed = "db:\n  password: new\n"
    monkeypatch.setenv("EDIT_ACTION", "seq:" + json.dumps(["db: [unclosed\n", fixed]))
    r = repo.run("edit", "app")
    assert r.code == 0, r.err
    assert (
        "nixseal edit: error: app: the document is not valid yaml (line 2, column 1); "
        "opening it again (save it unchanged to give up)"
    ) in r.err
    # opened again on what was saved: nothing typed is lost
    assert editor_log(tmp_path)["content"] == "db: [unclosed\n"
    assert repo.decrypt("app") == fixed.encode()


def test_a_document_saved_unparsable_twice_changes_nothing(
    repo: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    _document_repo(repo, "json")
    repo.encrypt("app", b'{"a": 1}')
    before = repo.age_file("app").read_bytes()
    monkeypatch.setenv("EDIT_ACTION", 'replace:{"a": ')
    r = repo.run("edit", "app")
    assert r.code == 1
    assert r.err.strip().endswith(
        "app: the document is not valid json (line 1, column 7); not changed"
    ), r.err
    assert repo.age_file("app").read_bytes() == before


def test_an_editor_that_keeps_saving_mistakes_is_stopped(
    repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _document_repo(repo, "json")
    repo.encrypt("app", b'{"a": 1}')
    monkeypatch.setenv("EDIT_ACTION", "seq:" + json.dumps(["{", "{{", "{{{", "{}"]))
    r = repo.run("edit", "app")
    assert r.code == 1 and r.err.count("opening it again") == 2, r.err
    assert (tmp_path / "editor.log.n").read_text() == "3"  # opened three times, no more
    assert repo.decrypt("app") == b'{"a": 1}'


def test_encrypt_refuses_a_document_that_does_not_parse(repo: Repo) -> None:
    _document_repo(repo, "toml")
    r = repo.run("encrypt", "app", stdin=b"a = \n")
    assert r.code != 0
    assert "app: the document is not valid toml (line 1, column 5); nothing written" in r.err
    assert not repo.age_file("app").exists()
    assert repo.run("encrypt", "app", stdin=b"a = 1\n").code == 0
    # a binary secret takes anything
    assert repo.run("encrypt", "db", stdin=b"a = \n").code == 0
