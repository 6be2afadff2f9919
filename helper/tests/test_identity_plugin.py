"""Plugin recipients and identities (age-plugin-yubikey and friends), end to end.

A stand-in plugin binary speaks the age plugin protocol to pyrage: it wraps
file keys for ``age1fake1...`` recipients and unwraps them for
``AGE-PLUGIN-FAKE-1...`` identities after asking for a PIN, as a hardware
key would.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from _admin import Repo, make_repo, run_cli
from _fakeplugin import PluginKey, install_plugin, make_plugin_key

from nixseal.age import header, identity

PIN = "123456"


@pytest.fixture
def plugin_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Repo, PluginKey, Path]:
    install_plugin(monkeypatch, tmp_path / "plugin.log", PIN)
    repo = make_repo(tmp_path)
    key = make_plugin_key()
    ident = repo.root / "keys" / "yubikey.txt"
    ident.write_text(f"# fake hardware key\n{key.identity}\n")
    repo.write_rules(
        {"db": ["web1"], "api": ["web1"], "tls": ["web1"]}, extra=f'bob = "{key.recipient}"'
    )
    for name in ("db", "api", "tls"):
        repo.encrypt(name, f"value of {name}".encode())
    return repo, key, ident


def answer(monkeypatch: pytest.MonkeyPatch, reply: str) -> list[str]:
    asked: list[str] = []

    def prompt(message: str) -> str:
        asked.append(message)
        return reply

    monkeypatch.setattr(identity, "_tty_prompt", prompt)
    return asked


def test_encrypts_to_plugin_recipients(plugin_repo: tuple[Repo, PluginKey, Path]) -> None:
    repo, _, _ = plugin_repo
    hdr = header.parse_header(repo.age_file("db").read_bytes(), "db")
    assert "fake" in [s.type for s in hdr.stanzas]
    assert "X25519" in [s.type for s in hdr.stanzas]  # alice's key as well


def test_decrypt_with_plugin_identity(
    plugin_repo: tuple[Repo, PluginKey, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    repo, _, ident = plugin_repo
    asked = answer(monkeypatch, PIN)
    r = run_cli("-i", str(ident), "decrypt", "api", cwd=repo.root)
    assert (r.code, r.out) == (0, b"value of api"), r.err
    assert len(asked) == 1 and "PIN" in asked[0]


def test_pin_asked_once_per_run(
    plugin_repo: tuple[Repo, PluginKey, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    repo, _, ident = plugin_repo
    asked = answer(monkeypatch, PIN)
    r = run_cli("-i", str(ident), "rekey", "--force", cwd=repo.root)
    assert r.code == 0, r.err
    # The plugin asked for each of the three files; the user was asked once.
    assert (tmp_path / "plugin.log").read_text().count("request-secret") == 3
    assert len(asked) == 1
    for name in ("db", "api", "tls"):
        assert repo.decrypt(name) == f"value of {name}".encode()


def test_wrong_pin(
    plugin_repo: tuple[Repo, PluginKey, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    repo, _, ident = plugin_repo
    answer(monkeypatch, "000000")
    r = run_cli("-i", str(ident), "decrypt", "db", cwd=repo.root)
    assert r.code == 1
    assert r.out == b""
    assert len(r.err.strip().splitlines()) == 1, r.err
    assert "secrets/db.age" in r.err
    assert "wrong PIN" in r.err


def test_missing_plugin_binary_is_one_line(
    plugin_repo: tuple[Repo, PluginKey, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    repo, _, _ = plugin_repo
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    r = repo.run("encrypt", "db", stdin=b"new")
    assert r.code == 1
    assert len(r.err.strip().splitlines()) == 1, r.err
    assert "'age-plugin-fake' on the PATH" in r.err
