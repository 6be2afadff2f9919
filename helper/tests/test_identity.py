from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Any

import pyrage
import pytest
from _admin import Repo, make_repo, run_cli
from conftest import HELPER_DIR, AgeKey, make_age_key

from nixseal.age import crypto, identity
from nixseal.errors import CryptoError, DecryptError, OpError


@pytest.fixture(scope="module")
def locked_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[AgeKey, bytes]:
    """An age identity and its file encrypted with a passphrase (scrypt: slow, made once)."""
    key = make_age_key(tmp_path_factory.mktemp("locked"))
    return key, pyrage.passphrase.encrypt(key.path.read_bytes(), "correct horse")


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    r = make_repo(tmp_path)
    r.write_rules({f"s{i}": ["web1"] for i in range(5)})
    for i in range(5):
        r.encrypt(f"s{i}", f"value {i}".encode())
    return r


def test_specs_order_cli_then_env_then_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NIXSEAL_IDENTITY", "/env/key")
    assert identity.identity_specs(["/cli/key"]) == ["/cli/key"]
    assert identity.identity_specs([]) == ["/env/key"]
    monkeypatch.delenv("NIXSEAL_IDENTITY")
    assert identity.identity_specs([]) == ["~/.ssh/id_ed25519"]


def test_passphrase_identity_asked_once_for_a_whole_rekey(
    repo: Repo,
    locked_key: tuple[AgeKey, bytes],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    key, blob = locked_key
    repo.admin = key
    repo.write_rules({f"s{i}": ["web1"] for i in range(5)})
    for i in range(5):
        repo.encrypt(f"s{i}", f"value {i}".encode())
    locked = tmp_path / "admin.key.age"
    locked.write_bytes(blob)
    asked: list[str] = []
    monkeypatch.setattr(identity, "_tty_prompt", lambda m: asked.append(m) or "correct horse")
    repo.host("web2")
    repo.write_rules({f"s{i}": ["web1", "web2"] for i in range(5)})
    r = run_cli("-i", str(locked), "rekey", cwd=repo.root)
    assert r.code == 0, r.err
    assert asked == [f"passphrase for {locked}: "]  # once for all five files
    assert "rekeyed 5 of 5" in r.err


def _run_on_a_terminal(argv: list[str], cwd: Path, answer: bytes) -> tuple[int, bytes, int]:
    """Run argv with a pseudo-terminal as its controlling terminal; answer each
    passphrase prompt. (exit status, what the terminal showed, prompts seen)."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: never returns
        try:
            os.chdir(cwd)
            os.execv(argv[0], argv)
        finally:
            os._exit(127)
    shown, asked = b"", 0
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 1)
            if not ready:
                continue
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            shown += chunk
            if shown.count(b"passphrase for ") > asked:
                asked += 1
                os.write(fd, answer + b"\n")
    finally:
        os.close(fd)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), shown, asked


def _rekey_three_on_a_terminal(repo: Repo, key: Path) -> None:
    """rekey --force of three secrets on a pseudo-terminal, answering "correct
    horse": asked once, never echoed."""
    argv = [sys.executable, "-m", "nixseal", "-i", str(key), "rekey", "--force"]
    code, shown, asked = _run_on_a_terminal(argv, repo.root, b"correct horse")
    assert code == 0, shown
    assert asked == 1 and b"rekeyed 3 of 3 secrets" in shown
    assert b"correct horse" not in shown  # not echoed


def test_passphrase_is_asked_on_the_real_terminal_once(
    repo: Repo, locked_key: tuple[AgeKey, bytes], tmp_path: Path
) -> None:
    key, blob = locked_key
    repo.admin = key
    repo.write_rules({f"s{i}": ["web1"] for i in range(3)})
    for i in range(3):
        repo.encrypt(f"s{i}", f"value {i}".encode())
    locked = tmp_path / "admin.key.age"
    locked.write_bytes(blob)
    _rekey_three_on_a_terminal(repo, locked)


def test_wrong_passphrase_fails_cleanly(
    locked_key: tuple[AgeKey, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(identity, "_PASSPHRASE_TRIES", 1)
    cb = identity.TerminalCallbacks(lambda m: "nope")
    with pytest.raises(DecryptError, match=r"k\.age: wrong passphrase"):
        identity.identities_from_data(locked_key[1], "k.age", lambda m: "nope", cb)


def test_age_file_encrypted_to_keys_is_not_an_identity(tmp_path: Path) -> None:
    key = make_age_key(tmp_path)
    data = crypto.encrypt(b"x", [crypto.parse_recipient(key.public, "t")])
    cb = identity.TerminalCallbacks(lambda m: "")
    with pytest.raises(CryptoError, match="only be passphrase-encrypted"):
        identity.identities_from_data(data, "k.age", lambda m: "", cb)


def test_op_reference_is_read_through_op_read_identity(
    repo: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[str] = []

    def read(ref: str) -> bytes:
        reads.append(ref)
        if ref.endswith("/missing"):
            raise OpError(f'"missing" isn\'t a field in the item ({ref})')
        return repo.admin.path.read_bytes()

    fake = types.ModuleType("nixseal.util.op")
    fake.read_identity = read  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "nixseal.util.op", fake)
    import nixseal.util

    # `from nixseal.util import op` takes the package's attribute once an
    # earlier test imported the real module: replace both.
    monkeypatch.setattr(nixseal.util, "op", fake, raising=False)
    r = run_cli("-i", "op://Infra/nixseal admin/key", "decrypt", "s3", cwd=repo.root)
    assert (r.code, r.out) == (0, b"value 3")
    assert reads == ["op://Infra/nixseal admin/key"]
    r = run_cli("-i", "op://Infra/x/missing", "decrypt", "s3", cwd=repo.root)
    assert r.code == 1 and "isn't a field" in r.err


def test_plugin_lines_go_to_the_named_plugin(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls: list[tuple[str, list[str], str]] = []

    def fake_plugin(name: str, lines: list[str], callbacks: Any, source: str) -> list[Any]:
        calls.append((name, list(lines), source))
        assert isinstance(callbacks, identity.TerminalCallbacks)
        return [crypto.Identity(source, object())]

    monkeypatch.setattr(crypto, "plugin_identities", fake_plugin)
    age = make_age_key(tmp_path)
    line = "AGE-PLUGIN-YUBIKEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ"
    f = tmp_path / "id.txt"
    f.write_text(f"# yubikey slot 1\n{line}\n{age.secret}\n")
    found = identity.load([str(f)], prompt=lambda m: "")
    assert calls == [("yubikey", [line], str(f))]
    assert len(found) == 2 and found[1].kind == "age"


def test_plugin_pin_is_asked_once_per_run() -> None:
    asked: list[str] = []
    cb = identity.TerminalCallbacks(lambda m: asked.append(m) or "123456")
    assert cb.request_passphrase("Enter PIN for YubiKey") == "123456"
    assert cb.request_passphrase("Enter PIN for YubiKey") == "123456"
    assert len(asked) == 1
    answers = iter(["yes", "no", ""])
    cb = identity.TerminalCallbacks(lambda m: next(answers))
    assert [cb.confirm("Touch?", "yes", "no") for _ in range(3)] == [True, False, True]


def test_unreadable_identity_is_an_error_naming_it(repo: Repo, tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text("not a key\n")
    r = run_cli("-i", str(bad), "decrypt", "s1", cwd=repo.root)
    assert r.code == 1 and str(bad) in r.err and "not an age identity" in r.err


def test_common_key_mix_ups_are_named(repo: Repo, tmp_path: Path) -> None:
    pub = tmp_path / "id.pub"
    pub.write_text(repo.hosts["web1"].public + "\n")
    r = run_cli("-i", str(pub), "decrypt", "s1", cwd=repo.root)
    assert r.err.endswith(
        "id.pub: an ssh public key; pass the private key (the file without .pub)\n"
    )
    recipient = tmp_path / "recipient.txt"
    recipient.write_text(f"# public key\n{repo.admin.public}\n")
    r = run_cli("-i", str(recipient), "decrypt", "s1", cwd=repo.root)
    assert r.code == 1 and "recipient.txt: an age public key (recipient)" in r.err
    pem = tmp_path / "pkcs8.pem"
    pem.write_text(
        "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n"
    )
    r = run_cli("-i", str(pem), "decrypt", "s1", cwd=repo.root)
    assert r.code == 1 and "pkcs8.pem: a PEM private key (BEGIN PRIVATE KEY)" in r.err
    assert r.out == b""


def test_empty_identity_path_is_a_usage_error(repo: Repo) -> None:
    r = run_cli("-i", "", "decrypt", "s1", cwd=repo.root)
    assert r.code == 2 and "empty identity path" in r.err and len(r.err.splitlines()) == 1


# --- passphrase-protected OpenSSH keys -------------------------------------------


@pytest.mark.parametrize(
    ("env", "terminal", "expected"),
    [
        ({}, True, False),  # a terminal: ask there
        ({"DISPLAY": ":0"}, True, False),
        ({"DISPLAY": ":0"}, False, True),  # no terminal, a display: askpass
        ({}, False, False),  # no terminal, no display: askpass is not allowed
        ({"SSH_ASKPASS_REQUIRE": "force"}, True, True),
        ({"SSH_ASKPASS_REQUIRE": "force"}, False, True),
        ({"SSH_ASKPASS_REQUIRE": "prefer", "DISPLAY": ":0"}, True, True),
        ({"SSH_ASKPASS_REQUIRE": "prefer"}, True, False),
        ({"SSH_ASKPASS_REQUIRE": "never", "DISPLAY": ":0"}, False, False),
        ({"WAYLAND_DISPLAY": "wayland-0"}, False, True),
    ],
)
def test_askpass_is_used_where_openssh_uses_it(
    env: dict[str, str], terminal: bool, expected: bool
) -> None:
    assert identity._use_askpass({"SSH_ASKPASS": "/bin/askpass", **env}, terminal) is expected
    assert identity._use_askpass(env, terminal) is False  # no program named


def _ssh_admin(repo: Repo, tmp_path: Path, passphrase: str) -> Path:
    """Make repo's admin a passphrase-protected ssh key; three secrets for it."""
    from test_sshkey import protected_key

    key = protected_key(tmp_path, passphrase)
    repo.admin = AgeKey("", Path(f"{key}.pub").read_text().strip(), key)
    repo.write_rules({f"s{i}": ["web1"] for i in range(3)})
    for i in range(3):
        r = run_cli("encrypt", f"s{i}", stdin=f"value {i}".encode(), cwd=repo.root)
        assert r.code == 0, r.err  # encrypting needs no key
    return key


def _askpass(tmp_path: Path, answer: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An SSH_ASKPASS program that prints answer and logs each prompt."""
    log = tmp_path / "asked"
    program = tmp_path / "askpass"
    program.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$1\" >> {log}\nprintf '%s\\n' '{answer}'\n")
    program.chmod(0o755)
    monkeypatch.setenv("SSH_ASKPASS", str(program))
    monkeypatch.setenv("SSH_ASKPASS_REQUIRE", "force")
    return log


def test_a_protected_ssh_key_is_asked_for_once_per_run_through_askpass(
    repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = _ssh_admin(repo, tmp_path, "correct horse")
    log = _askpass(tmp_path, "correct horse", monkeypatch)
    r = run_cli("-i", str(key), "rekey", "--force", cwd=repo.root)
    assert r.code == 0, r.err
    assert "rekeyed 3 of 3" in r.err
    assert log.read_text() == f"passphrase for {key}: \n"  # once for all three files
    r = run_cli("-i", str(key), "decrypt", "s2", cwd=repo.root)
    assert (r.code, r.out) == (0, b"value 2")
    assert "correct horse" not in r.err


def test_a_wrong_passphrase_is_one_line_naming_the_key_and_changes_nothing(
    repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = _ssh_admin(repo, tmp_path, "correct horse")
    log = _askpass(tmp_path, "battery staple", monkeypatch)
    before = {p.name: p.read_bytes() for p in repo.secrets.iterdir()}
    r = run_cli("-i", str(key), "rekey", "--force", cwd=repo.root)
    lines = [ln for ln in r.err.splitlines() if not ln.startswith("wrong passphrase, try again")]
    assert r.code == 1
    assert lines == [
        f"nixseal rekey: error: {key}: wrong passphrase for this ssh key (3 tries); "
        "nothing was changed"
    ]
    assert len(log.read_text().splitlines()) == 3
    assert {p.name: p.read_bytes() for p in repo.secrets.iterdir()} == before
    assert "battery staple" not in r.err


def test_a_cancelled_askpass_is_one_line(
    repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = _ssh_admin(repo, tmp_path, "pw")
    program = tmp_path / "cancel"
    program.write_text("#!/bin/sh\nexit 1\n")
    program.chmod(0o755)
    monkeypatch.setenv("SSH_ASKPASS", str(program))
    monkeypatch.setenv("SSH_ASKPASS_REQUIRE", "force")
    r = run_cli("-i", str(key), "decrypt", "s0", cwd=repo.root)
    assert r.code == 2 and r.out == b""
    assert (
        r.err
        == f"nixseal decrypt: error: passphrase for {key}: cancelled (SSH_ASKPASS {program} exited 1)\n"
    )


def test_a_protected_ssh_key_is_asked_for_on_the_real_terminal(repo: Repo, tmp_path: Path) -> None:
    key = _ssh_admin(repo, tmp_path, "correct horse")
    _rekey_three_on_a_terminal(repo, key)


def test_without_terminal_or_askpass_the_error_says_how_to_give_it(
    repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = _ssh_admin(repo, tmp_path, "pw")
    for var in ("SSH_ASKPASS", "SSH_ASKPASS_REQUIRE", "DISPLAY", "WAYLAND_DISPLAY"):
        monkeypatch.delenv(var, raising=False)
    proc = subprocess.run(
        [sys.executable, "-m", "nixseal", "-i", str(key), "decrypt", "s0"],
        cwd=repo.root,
        capture_output=True,
        start_new_session=True,  # no controlling terminal
        env={**os.environ, "PYTHONPATH": str(HELPER_DIR)},
        check=False,
    )
    assert proc.returncode == 2 and proc.stdout == b""
    assert proc.stderr.decode() == (
        f"nixseal decrypt: error: passphrase for {key}: no terminal to ask on; set "
        "SSH_ASKPASS to a program that prints it (with SSH_ASKPASS_REQUIRE=force when "
        "there is no display)\n"
    )


def test_a_wrong_key_names_the_key_files_tried(repo: Repo, tmp_path: Path) -> None:
    other = make_age_key(tmp_path, "other.txt")
    r = run_cli("-i", str(other.path), "-i", str(repo.admin.path), "decrypt", "s0", cwd=repo.root)
    assert r.code == 0  # one of them matches
    r = run_cli("-i", str(other.path), "decrypt", "s0", cwd=repo.root)
    assert r.code == 1
    assert r.err == (
        f"nixseal decrypt: error: secrets/s0.age: no identity matches (tried {other.path}): "
        "not encrypted to these keys (rekey needed?)\n"
    )
