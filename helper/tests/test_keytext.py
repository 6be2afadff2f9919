"""A private key given where a public key belongs is named, never quoted.

Every place that takes or shows a public key is tried with every kind of
private key text: the rules (admins, hosts, users), the state file's
recorded recipients, `host add`, `init --admin-key`, `check-manifest
--host-key` and an agenix secrets.nix. No window of the key's secret part
may appear in any output.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from _admin import Repo, make_repo, run_cli
from conftest import make_ssh_key

from nixseal.age import crypto

AGE_SECRET, _ = crypto.generate_age_identity()
PLUGIN = "AGE-PLUGIN-YUBIKEY-1QQSXYZ9W0E5RPL7FGN4K3M2HU8D6TJCVAS"
OPENSSH_BODY = "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW"
PRIVATE_TEXTS = {
    "age secret key": AGE_SECRET,
    "age secret key, lower case": AGE_SECRET.lower(),
    "age plugin identity": PLUGIN,
    "openssh begin line": "-----BEGIN OPENSSH PRIVATE KEY-----",
    "openssh body line": OPENSSH_BODY,
    "pem": "-----BEGIN PRIVATE KEY-----",
}


def _secret_part(text: str) -> str:
    for prefix in ("AGE-SECRET-KEY-", "age-secret-key-", "AGE-PLUGIN-"):
        if text.startswith(prefix):
            return text[len(prefix) :]
    return text


def assert_not_echoed(private: str, output: str) -> None:
    """No 8 characters in a row of the key's secret part are in output."""
    part = _secret_part(private)
    for i in range(max(1, len(part) - 7)):
        window = part[i : i + 8]
        if window.strip("-") and not window.startswith(("BEGIN", "PRIVATE", " KEY")):
            assert window not in output, f"{window!r} of the private key is echoed"
    assert "a private key" in output


@pytest.mark.parametrize("text", PRIVATE_TEXTS.values(), ids=PRIVATE_TEXTS.keys())
def test_private_key_text_is_recognised(text: str) -> None:
    from nixseal.util import keytext

    assert keytext.looks_private(text)
    assert keytext.looks_private(f"  {text}  \n")
    assert keytext.shown(text) == "a private key"


@pytest.mark.parametrize(
    "text",
    [
        "age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBd root@web1",
        "age1yubikey1qwerty",
        "not a key at all",
    ],
)
def test_public_and_other_text_is_quoted_as_before(text: str) -> None:
    from nixseal.util import keytext

    assert not keytext.looks_private(text)
    assert keytext.shown(text) == repr(text[:40])


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    r = make_repo(tmp_path)
    r.write_rules({"db": ["web1"]})
    r.encrypt("db", b"v")
    return r


def _put_in_rules(repo: Repo, table: str, private: str) -> None:
    text = repo.rules.read_text()
    quoted = json.dumps(private)  # a TOML basic string
    if table == "admins":
        text = text.replace(f'alice = "{repo.admin.public}"', f"alice = {quoted}")
    elif table == "hosts":
        text = text.replace(f'key = "{repo.host("web1").public}"', f"key = {quoted}")
    else:
        text += f"[users.carol]\nkey = {quoted}\n"
    repo.rules.write_text(text)


@pytest.mark.parametrize("table", ["admins", "hosts", "users"])
@pytest.mark.parametrize("kind", PRIVATE_TEXTS.keys())
def test_a_private_key_in_the_rules_is_named_by_every_verb(
    repo: Repo, table: str, kind: str
) -> None:
    private = PRIVATE_TEXTS[kind]
    _put_in_rules(repo, table, private)
    for verb in (["check"], ["audit"], ["rekey"], ["rekey", "--dry-run"], ["decrypt", "db"]):
        r = repo.run(*verb)
        assert r.code != 0, verb
        assert len(r.err.splitlines()) == 1, r.err
        assert f"[{table}" in r.err and "a private key" in r.err, r.err
        assert_not_echoed(private, r.text + r.err)


@pytest.mark.parametrize("kind", PRIVATE_TEXTS.keys())
def test_host_add_names_a_private_key_given_as_text_or_file(
    repo: Repo, tmp_path: Path, kind: str
) -> None:
    private = PRIVATE_TEXTS[kind]
    before = repo.rules.read_text()
    key_file = tmp_path / "web2_key"
    key_file.write_text(f"# the host's key\n{private}\n")
    for arg, stdin in ((private, b""), (str(key_file), b""), ("-", private.encode())):
        r = repo.run("host", "add", "web2", arg, stdin=stdin)
        assert r.code != 0 and len(r.err.splitlines()) == 1, r.err
        assert_not_echoed(private, r.text + r.err)
    assert repo.rules.read_text() == before


def test_host_add_names_a_whole_openssh_private_key_file(repo: Repo, tmp_path: Path) -> None:
    key = make_ssh_key(tmp_path, name="web2")
    body = key.private_path.read_text()
    r = repo.run("host", "add", "web2", str(key.private_path))
    assert r.code != 0 and "a private key" in r.err
    for line in body.splitlines()[1:-1]:
        assert line[:20] not in r.err


@pytest.mark.parametrize("kind", PRIVATE_TEXTS.keys())
def test_init_names_a_private_admin_key(tmp_path: Path, kind: str) -> None:
    private = PRIVATE_TEXTS[kind]
    r = run_cli("init", "--admin", "alice", "--admin-key", private, cwd=tmp_path)
    assert r.code != 0 and len(r.err.splitlines()) == 1, r.err
    assert_not_echoed(private, r.text + r.err)
    assert not (tmp_path / "secrets/secrets.toml").exists()


@pytest.mark.parametrize("kind", PRIVATE_TEXTS.keys())
def test_check_manifest_names_a_private_host_key(tmp_path: Path, kind: str) -> None:
    private = PRIVATE_TEXTS[kind]
    manifest = tmp_path / "m.json"
    manifest.write_text(json.dumps({"version": 1, "secrets": []}))
    key_file = tmp_path / "host_key"
    key_file.write_text(private + "\n")
    for value in (private, str(key_file)):
        r = run_cli("check-manifest", str(manifest), "--host-key", value, cwd=tmp_path)
        assert r.code == 2 and len(r.err.splitlines()) == 1, r.err
        assert_not_echoed(private, r.text + r.err)


def test_a_private_key_recorded_as_a_recipient_is_not_shown(repo: Repo) -> None:
    state = repo.secrets / "secrets.state.json"
    doc = json.loads(state.read_text())
    (entry,) = doc["files"].values() if "files" in doc else doc["secrets"].values()
    entry["recipients"] = [*entry["recipients"], AGE_SECRET]
    state.write_text(json.dumps(doc))
    for verb in ("check", "audit"):
        r = repo.run(verb)
        assert "a private key" in r.text + r.err, (verb, r.text, r.err)
        assert_not_echoed(AGE_SECRET, r.text + r.err)


@pytest.mark.skipif(shutil.which("nix-instantiate") is None, reason="needs nix-instantiate")
@pytest.mark.parametrize("kind", ["age secret key", "openssh body line"])
def test_import_agenix_names_a_private_key(repo: Repo, kind: str) -> None:
    private = PRIVATE_TEXTS[kind]
    repo.rules.unlink()
    (repo.secrets / "secrets.nix").write_text(
        f'{{ "x.age".publicKeys = [ {json.dumps(private)} ]; }}'
    )
    r = run_cli("import-agenix", "secrets/secrets.nix", cwd=repo.root)
    assert r.code == 1 and len(r.err.splitlines()) == 1, r.err
    assert "x.age: publicKeys: a private key" in r.err
    assert_not_echoed(private, r.text + r.err)
