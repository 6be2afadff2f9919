"""Command generators (repo/command.py): a repository script makes a value
from its inputs, in a private memory directory, through `nixseal rotate`."""

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

from nixseal.repo.state import state_path

# Records what it was given (paths and environment, no values) in $GEN_LOG,
# then does what $GEN_ACTION says.
SCRIPT = """\
#!/bin/sh
set -e
printf '{"cwd": "%s", "out": "%s", "inputs": "%s", "secret": "%s", "tmp": "%s"}' \
  "$PWD" "$NIXSEAL_OUT" "$NIXSEAL_INPUTS" "$NIXSEAL_SECRET" "$TMPDIR" > "$GEN_LOG"
ls inputs/wg > "$GEN_LOG.inputs"
echo "making $NIXSEAL_SECRET"
case "${GEN_ACTION:-}" in
  fail) echo "no luck" >&2; exit 3 ;;
  extra) echo x > out/stray ;;
  missing) echo "priv-$(cat inputs/wg/psk)" > out/private; exit 0 ;;
  kill) kill -KILL $$ ;;
  dir) mkdir out/private out/conf; echo p > out/public; exit 0 ;;
  sleep) touch "$GEN_LOG.ready"; sleep 60 ;;
esac
echo "priv-$(cat inputs/wg/psk)" > out/private
echo "conf of $(cat inputs/wg/psk.pub 2>/dev/null || echo none)" > out/conf
echo "pub-$(cat inputs/wg/psk | cut -c1-4)" > out/public
"""


@pytest.fixture
def repo(tmp_path: Path, shm_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Repo:
    r = make_repo(tmp_path)
    command_rules(r, ["web1"])
    script = r.secrets / "gen/wg.sh"
    script.parent.mkdir()
    script.write_text(SCRIPT)
    script.chmod(0o755)
    monkeypatch.setenv("GEN_LOG", str(tmp_path / "gen.log"))
    monkeypatch.setenv("NIXSEAL_TMPDIR", str(shm_dir))
    r.encrypt("wg/psk", b"PSKVALUE")
    return r


def command_rules(r: Repo, hosts: list[str]) -> None:
    r.write_rules({"wg/psk": ["web1"], "wg/web1": hosts})
    text = r.rules.read_text().replace(
        '[secrets."wg/web1"]\n',
        '[secrets."wg/web1"]\ngenerator = { command = "gen/wg.sh", inputs = ["wg/psk"], '
        'outputs = ["private", "conf", "public"], public = ["public"] }\n',
    )
    r.rules.write_text(text)


def gen_log(tmp_path: Path) -> dict[str, str]:
    data: dict[str, str] = json.loads((tmp_path / "gen.log").read_text())
    return data


def test_inputs_in_and_several_outputs_out(repo: Repo, tmp_path: Path, shm_dir: Path) -> None:
    r = repo.run("rotate", "wg/web1")
    assert r.code == 0, r.err
    # The first secret output is the secret, the others <name>.<output>.age;
    # the public output is committed beside them.
    assert repo.decrypt("wg/web1") == b"priv-PSKVALUE\n"
    assert repo.decrypt("wg/web1.conf") == b"conf of none\n"
    assert (repo.secrets / "wg/web1.pub").read_text() == "pub-PSKV\n"
    assert r.out == b"wg/web1: pub-PSKV\n"
    assert "making wg/web1" in r.err  # the script's output, on stderr
    # It ran in a private directory on the memory file system, now gone.
    log = gen_log(tmp_path)
    work = Path(log["cwd"])
    assert work.parent == shm_dir and log["tmp"] == str(work)
    assert (log["out"], log["inputs"], log["secret"]) == (
        str(work / "out"), str(work / "inputs"), "wg/web1",
    )  # fmt: skip
    assert (tmp_path / "gen.log.inputs").read_text() == "psk\n"
    assert list(shm_dir.iterdir()) == []
    # What it was made from is recorded, for the next rotation of wg/psk.
    state = json.loads(state_path(repo.rules).read_text())["secrets"]
    assert state["wg/web1"]["derived_from"] == {"wg/psk": state["wg/psk"]["rotated"]}
    assert "rotated" in state["wg/web1.conf"]
    assert repo.run("check").code == 0


def test_public_halves_of_inputs_are_given_too(repo: Repo) -> None:
    text = repo.rules.read_text().replace(
        '[secrets."wg/psk"]\n', '[secrets."wg/psk"]\ngenerator = "wireguard"\n'
    )
    repo.rules.write_text(text)
    assert repo.run("rotate", "wg/psk").code == 0
    assert repo.run("rotate", "wg/web1").code == 0
    pub = (repo.secrets / "wg/psk.pub").read_text()
    assert repo.decrypt("wg/web1.conf") == f"conf of {pub}".encode()


@pytest.mark.parametrize(
    ("action", "message"),
    [
        (
            "fail",
            "wg/web1: gen/wg.sh: exited with status 3; nothing written, the old value is kept",
        ),
        ("extra", "gen/wg.sh: wrote undeclared output 'stray' (outputs are private, conf, public)"),
        ("missing", "gen/wg.sh: did not write output 'conf'; nothing written"),
        ("kill", "gen/wg.sh: killed by SIGKILL; nothing written, the old value is kept"),
        ("dir", "wg/web1: gen/wg.sh: output 'private' is not a regular file; nothing written"),
    ],
)
def test_a_failing_command_changes_nothing(
    repo: Repo, shm_dir: Path, monkeypatch: pytest.MonkeyPatch, action: str, message: str
) -> None:
    assert repo.run("rotate", "wg/web1").code == 0
    before = {p: p.read_bytes() for p in repo.secrets.rglob("*") if p.is_file()}
    monkeypatch.setenv("GEN_ACTION", action)
    r = repo.run("rotate", "wg/web1")
    assert r.code == 1
    errors = [line for line in r.err.splitlines() if line.startswith("nixseal rotate: error:")]
    assert len(errors) == 1 and message in errors[0], r.err
    after = {p: p.read_bytes() for p in repo.secrets.rglob("*") if p.is_file()}
    assert after == before
    assert list(shm_dir.iterdir()) == []


def test_script_must_be_executable_and_inside_the_repository(repo: Repo, tmp_path: Path) -> None:
    script = repo.secrets / "gen/wg.sh"
    script.chmod(0o644)
    r = repo.run("rotate", "wg/web1")
    assert r.code == 1
    assert "generator.command: secrets/gen/wg.sh is not executable; chmod +x it" in r.err
    outside = tmp_path / "outside.sh"
    outside.write_text(SCRIPT)
    outside.chmod(0o755)
    script.unlink()
    script.symlink_to(outside)
    r = repo.run("rotate", "wg/web1")
    assert "generator.command: gen/wg.sh leads outside secrets" in r.err
    script.unlink()
    r = repo.run("rotate", "wg/web1")
    assert "generator.command: no file secrets/gen/wg.sh" in r.err


def _nixseal(repo: Repo, *argv: str) -> list[str]:
    return [sys.executable, "-m", "nixseal", "-i", str(repo.admin.path), *argv]


def test_the_directory_is_removed_on_sigterm(repo: Repo, tmp_path: Path, shm_dir: Path) -> None:
    env = dict(os.environ, GEN_ACTION="sleep")
    proc = subprocess.Popen(
        _nixseal(repo, "rotate", "wg/web1"),
        cwd=repo.root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    ready = tmp_path / "gen.log.ready"
    deadline = time.monotonic() + 20
    while not ready.exists():
        assert time.monotonic() < deadline, "the script never started"
        time.sleep(0.02)
    assert len(list(shm_dir.iterdir())) == 1
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode != 0
    assert b"Traceback" not in err
    assert list(shm_dir.iterdir()) == []
    assert not repo.age_file("wg/web1").exists()


PROMPTING = """\
#!/bin/sh
read -r note
read -r passphrase
printf '%s' "$passphrase" > out/value
printf '%s' "$note" > out/note
"""


def _prompting(repo: Repo) -> None:
    text = repo.rules.read_text() + (
        '[secrets.vault]\ngenerator = { command = "gen/prompt.sh", '
        'prompts = ["note", "passphrase"], outputs = ["value", "note"], public = ["note"] }\n'
    )
    repo.rules.write_text(text)
    script = repo.secrets / "gen/prompt.sh"
    script.write_text(PROMPTING)
    script.chmod(0o755)


def test_prompts_are_asked_on_the_terminal_without_echo(repo: Repo) -> None:
    import pty

    _prompting(repo)
    argv = _nixseal(repo, "rotate", "vault")
    pid, master = pty.fork()
    if pid == 0:  # child: nixseal with the pty as its controlling terminal
        os.chdir(repo.root)
        os.execvpe(argv[0], argv, dict(os.environ))
    seen = b""
    try:
        for question, answer in (
            (b"vault: note: ", b"first key"),
            (b"vault: passphrase: ", b"s3cret typed"),
        ):
            deadline = time.monotonic() + 20
            while question not in seen:
                assert time.monotonic() < deadline, seen
                seen += os.read(master, 1024)
            time.sleep(0.1)  # echo is off once the question is out
            os.write(master, answer + b"\n")
        while True:
            try:
                chunk = os.read(master, 1024)
            except OSError:  # EIO: the child has gone
                break
            if not chunk:
                break
            seen += chunk
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(master)
    assert os.waitstatus_to_exitcode(status) == 0, seen
    asking = seen.split(b"[info")[0]
    assert asking == b"vault: note: \r\nvault: passphrase: \r\n"  # nothing typed is echoed
    assert b"s3cret typed" not in seen
    assert b"vault: first key" in seen  # the public output, printed
    assert repo.decrypt("vault") == b"s3cret typed"
    assert (repo.secrets / "vault.pub").read_text() == "first key"


def test_prompts_need_a_terminal(repo: Repo) -> None:
    _prompting(repo)
    proc = subprocess.run(
        _nixseal(repo, "rotate", "vault"),
        cwd=repo.root,
        capture_output=True,
        text=True,
        start_new_session=True,  # no controlling terminal
        check=False,
    )
    assert proc.returncode == 1
    assert (
        "vault: note: a prompt needs a terminal, and there is none; run rotate in one"
        in proc.stderr
    )
    assert not repo.age_file("vault").exists()


def test_further_outputs_are_checked_and_rekeyed_like_any_secret(repo: Repo) -> None:
    assert repo.run("rotate", "wg/web1").code == 0
    command_rules(repo, ["web1", "web2"])
    r = repo.run("check")
    assert r.code == 1
    assert b"wg/web1.conf" in r.out and b"web2" in r.out
    r = repo.run("rekey")
    assert r.code == 0, r.err
    assert repo.run("check").code == 0
    audit = json.loads(repo.run("audit", "--json", "wg/web1.conf").out)["secrets"][0]
    assert [x["name"] for x in audit["readers"] if x["kind"] == "host"] == ["web1", "web2"]
    assert audit["derived_from"] == ["wg/psk"]
