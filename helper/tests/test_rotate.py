"""nixseal rotate: new values from generators or 1Password, recorded in the state."""

from __future__ import annotations

import base64
import datetime
import json
import secrets
from pathlib import Path

import pytest
from _admin import Repo, make_repo, run_cli
from _fakeop import FakeOp, files_containing, install, private_tmpdir, write_rules
from conftest import make_age_key

from nixseal.age import crypto, generators
from nixseal.repo.state import state_path


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeOp:
    return install(monkeypatch, tmp_path / "onepassword")


@pytest.fixture
def repo(tmp_path: Path, fake: FakeOp) -> Repo:
    r = make_repo(tmp_path)
    fake.add_item("Infra", "grafana", {"password": "old-grafana", "username": "admin"})
    fake.add_item("Infra", "upstream", {"token": "up-" + secrets.token_hex(8)})
    write_rules(
        r,
        {
            "db": 'generator = "password"\nrotate_after = "30d"',
            "long": 'generator = { kind = "password", length = 64 }',
            "session": 'generator = { kind = "hex", length = 16 }',
            "cookie": 'generator = "base64"',
            "deploy/key": 'generator = "ssh-ed25519"',
            "backup-identity": 'generator = "age"',
            "grafana": 'generator = "password"\npush = "op://Infra/grafana/password"',
            "upstream": 'source = "op://Infra/upstream/token"',
            "manual": "",
        },
    )
    return r


def rotated_at(repo: Repo, name: str) -> datetime.datetime:
    entry = json.loads(state_path(repo.rules).read_text())["secrets"][name]
    return datetime.datetime.fromisoformat(entry["rotated"].replace("Z", "+00:00"))


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


def test_rotate_records_time_and_changes_value(repo: Repo) -> None:
    start = now()
    r = repo.run("rotate", "db")
    assert r.code == 0, r.err
    first = repo.decrypt("db")
    assert len(first) == generators.DEFAULT_PASSWORD_LENGTH
    assert set(first.decode()) <= set(generators.PASSWORD_ALPHABET)
    t1 = rotated_at(repo, "db")
    assert start <= t1 <= now()

    r = repo.run("rotate", "db")
    assert r.code == 0, r.err
    assert repo.decrypt("db") != first
    assert rotated_at(repo, "db") >= t1
    assert "rotated 1 of 1 secrets" in r.err


def test_generator_kinds(repo: Repo, tmp_path: Path) -> None:
    r = repo.run("rotate", "long", "session", "cookie", "deploy/key", "backup-identity")
    assert r.code == 0, r.err
    assert len(repo.decrypt("long")) == 64
    assert len(bytes.fromhex(repo.decrypt("session").decode())) == 16
    assert len(base64.b64decode(repo.decrypt("cookie"), validate=True)) == 32

    # ssh-ed25519: the private key loads; its public half (printed and in
    # <name>.pub) encrypts to it.
    key_file = tmp_path / "deploy_key"
    key_file.write_bytes(repo.decrypt("deploy/key"))
    ssh_ids = crypto.load_identity_file(key_file)
    pub = (repo.secrets / "deploy/key.pub").read_text().strip()
    assert f"deploy/key: {pub}" in r.text
    sealed = crypto.encrypt(b"hello", [crypto.parse_recipient(pub, "pub")])
    assert crypto.decrypt(sealed, ssh_ids, "t") == b"hello"

    # age identity: parses, and <name>.pub is its recipient.
    age_ids = crypto.identities_from_bytes(repo.decrypt("backup-identity"), "age")
    age_pub = (repo.secrets / "backup-identity.pub").read_text().strip()
    assert age_pub.startswith("age1") and f"backup-identity: {age_pub}" in r.text
    sealed = crypto.encrypt(b"hi", [crypto.parse_recipient(age_pub, "pub")])
    assert crypto.decrypt(sealed, age_ids, "t") == b"hi"


def test_rotate_push_writes_1password_first(repo: Repo, fake: FakeOp) -> None:
    r = repo.run("rotate", "--push", "grafana")
    assert r.code == 0, r.err
    value = repo.decrypt("grafana")
    assert fake.value("Infra", "grafana", "password") == value.decode()
    assert fake.value("Infra", "grafana", "username") == "admin"
    for argv in fake.calls():
        assert not any(value.decode() in a for a in argv), argv
    assert ["item", "edit", "grafana", "--vault", "Infra"] in fake.calls()


def test_rotate_without_push_leaves_1password_alone(repo: Repo, fake: FakeOp) -> None:
    assert repo.run("rotate", "grafana").code == 0
    assert fake.value("Infra", "grafana", "password") == "old-grafana"
    assert fake.calls() == []


def test_push_failure_changes_nothing(repo: Repo, fake: FakeOp) -> None:
    data = fake.data()
    data["vaults"][0]["items"][0]["title"] = "grafana-moved"
    fake.save(data)
    r = repo.run("rotate", "--push", "grafana", "upstream")
    assert r.code == 1
    assert (
        "nixseal rotate: error: grafana: op item get grafana (for op://Infra/grafana/password)"
        in r.err
    )
    assert not repo.age_file("grafana").exists()
    assert repo.age_file("upstream").exists()  # the others proceed
    assert "grafana" not in json.loads(state_path(repo.rules).read_text())["secrets"]
    assert "rotated 1 of 2 secrets, 1 failed" in r.err


def test_push_needs_a_push_reference(repo: Repo, fake: FakeOp) -> None:
    r = repo.run("rotate", "--push", "db", "grafana")
    assert r.code == 2
    assert "--push: db: no push reference" in r.err
    assert 'push = "op://vault/item/field"' in r.err
    assert not repo.age_file("grafana").exists() and fake.calls() == []


def test_rotate_source_secret(repo: Repo, fake: FakeOp) -> None:
    r = repo.run("rotate", "upstream")
    assert r.code == 0, r.err
    assert repo.decrypt("upstream") == fake.value("Infra", "upstream", "token").encode()
    t1 = rotated_at(repo, "upstream")

    r = repo.run("rotate", "upstream")
    assert r.code == 1
    assert "op://Infra/upstream/token still holds the current value" in r.err
    assert "change it in 1Password first" in r.err
    assert rotated_at(repo, "upstream") == t1

    data = fake.data()
    data["vaults"][0]["items"][1]["fields"][0]["value"] = "rotated-upstream"
    fake.save(data)
    assert repo.run("rotate", "upstream").code == 0
    assert repo.decrypt("upstream") == b"rotated-upstream"


def test_source_rotation_needs_a_key_that_reads_the_current_file(
    repo: Repo, fake: FakeOp, tmp_path: Path
) -> None:
    """Without the old value to compare, an unchanged 1Password field would
    be recorded as a rotation that never happened."""
    assert repo.run("rotate", "upstream").code == 0
    t1 = rotated_at(repo, "upstream")
    before = repo.age_file("upstream").read_bytes()
    stranger = make_age_key(tmp_path, "stranger.txt")
    r = run_cli("-i", str(stranger.path), "rotate", "upstream", cwd=repo.root)
    assert r.code == 1
    assert (
        "cannot decrypt secrets/upstream.age to compare it with op://Infra/upstream/token" in r.err
    )
    assert "nixseal pull upstream" in r.err
    assert "rotated 0 of 1 secrets, 1 failed" in r.err
    assert repo.age_file("upstream").read_bytes() == before
    assert rotated_at(repo, "upstream") == t1


def test_due_picks_a_file_replaced_outside_nixseal(repo: Repo) -> None:
    """audit calls such a value's age unknown; --due must rotate it too."""
    assert repo.run("rotate", "db").code == 0
    first = repo.decrypt("db")
    assert repo.run("rotate", "--due").code == 0  # recorded just now: not due
    assert repo.decrypt("db") == first
    recipient = crypto.parse_recipient(repo.admin.public, "test")
    repo.age_file("db").write_bytes(crypto.encrypt(b"set-by-hand", [recipient]))
    assert repo.run("rotate", "--due").code == 0
    assert repo.decrypt("db") not in (first, b"set-by-hand")


def test_rotate_without_generator_or_source(repo: Repo) -> None:
    r = repo.run("rotate", "manual", "db")
    assert r.code == 2
    assert "manual: no generator or source" in r.err
    assert "nixseal edit" in r.err
    assert not repo.age_file("db").exists()


def test_rotate_unknown_secret(repo: Repo) -> None:
    r = repo.run("rotate", "nope")
    assert r.code == 1
    assert "no secret 'nope'" in r.err


def test_rotate_needs_names_or_due(repo: Repo) -> None:
    r = repo.run("rotate")
    assert r.code == 2
    assert "--due" in r.err


def test_rotate_due(repo: Repo) -> None:
    # db has rotate_after = 30d and was never rotated: due. The others have
    # no rotate_after: never due.
    r = repo.run("rotate", "--due")
    assert r.code == 0, r.err
    assert repo.age_file("db").exists()
    assert not repo.age_file("long").exists()
    first = repo.decrypt("db")

    assert repo.run("rotate", "--due").code == 0  # rotated just now: not due
    assert repo.decrypt("db") == first

    path = state_path(repo.rules)
    doc = json.loads(path.read_text())
    doc["secrets"]["db"]["rotated"] = "2020-01-01T00:00:00Z"
    path.write_text(json.dumps(doc))
    assert repo.run("rotate", "--due").code == 0
    assert repo.decrypt("db") != first


def test_rotate_keeps_plaintext_off_disk_and_out_of_logs(
    repo: Repo, fake: FakeOp, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    tmp = private_tmpdir(monkeypatch, tmp_path / "tmp")
    names = ["db", "long", "session", "cookie", "deploy/key", "backup-identity"]
    runs = [
        repo.run("-v", "--log-format", "json", "rotate", *names),
        repo.run("-v", "rotate", "--push", "grafana"),
    ]
    assert [r.code for r in runs] == [0, 0], [r.err for r in runs]
    for name in [*names, "grafana"]:
        value = repo.decrypt(name)
        # Only the age files (and 1Password, for the pushed one) hold it.
        assert files_containing(value, repo.root, tmp) == []
        for r in runs:
            assert value not in r.out and value.decode() not in r.err
        for argv in fake.calls():
            assert not any(value.decode() in a for a in argv)


def test_due_secrets_are_pushed_when_they_can_be(repo: Repo, fake: FakeOp) -> None:
    # grafana (push) and db (no push) both come due; --push pushes grafana only.
    rules = repo.rules.read_text().replace(
        'push = "op://Infra/grafana/password"',
        'push = "op://Infra/grafana/password"\nrotate_after = "1d"',
    )
    repo.rules.write_text(rules)
    r = repo.run("rotate", "--due", "--push")
    assert r.code == 0, r.err
    assert repo.age_file("db").exists() and repo.age_file("grafana").exists()
    assert fake.value("Infra", "grafana", "password") == repo.decrypt("grafana").decode()


def test_signed_out_op_skips_only_what_needs_op(repo: Repo, fake: FakeOp) -> None:
    fake.sign_out()
    # db comes due (never rotated, rotate_after 30d) and needs no op.
    r = repo.run("rotate", "--push", "--due", "upstream", "grafana")
    assert r.code == 1
    assert "upstream: op read op://Infra/upstream/token" in r.err and "op signin" in r.err
    assert "not tried, as op is not usable: grafana" in r.err
    assert repo.age_file("db").exists()  # needs no op: rotated
    assert not repo.age_file("grafana").exists() and not repo.age_file("upstream").exists()
    assert len(fake.calls()) == 1
    assert "rotated 1 of 3 secrets, 2 failed" in r.err


def test_unwritable_public_half_is_reported_not_a_traceback(repo: Repo) -> None:
    (repo.secrets / "deploy" / "key.pub").mkdir(parents=True)
    r = repo.run("rotate", "deploy/key", "db")
    assert r.code == 1
    assert (
        "nixseal rotate: error: deploy/key: secrets/deploy/key.pub: cannot write: "
        "Is a directory" in r.err
    )
    assert "rotated 1 of 2 secrets, 1 failed" in r.err
    assert repo.decrypt("db")  # the other secret was rotated


# --- values made from others ------------------------------------------------


@pytest.fixture
def chain(tmp_path: Path) -> Repo:
    r = make_repo(tmp_path)
    write_rules(
        r,
        {
            "pki/ca": 'generator = { kind = "ca", days = 90 }',
            "pki/web1": 'generator = { kind = "cert", ca = "pki/ca", names = ["web1.example"] }',
            "web/admin": 'generator = "password"',
            "web/htpasswd": 'generator = { kind = "htpasswd", password = "web/admin", user = "admin" }',
            "wg/web1": 'generator = "wireguard"',
        },
    )
    return r


def test_built_in_kinds_through_rotate(chain: Repo) -> None:
    import bcrypt
    from cryptography import x509

    r = chain.run("rotate", "--with-dependents", "pki/ca", "web/admin", "wg/web1")
    assert r.code == 0, r.err
    wg_public = (chain.secrets / "wg/web1.pub").read_text()
    assert (
        wg_public
        == generators.wireguard_public_key(chain.decrypt("wg/web1").decode().strip()) + "\n"
    )
    # Key pairs print their public half, a certificate where it went.
    out = r.out.decode()
    assert f"wg/web1: {wg_public}" in out
    assert "pki/ca: secrets/pki/ca.pub\n" in out and "pki/web1: secrets/pki/web1.pub\n" in out
    ca = x509.load_pem_x509_certificate((chain.secrets / "pki/ca.pub").read_bytes())
    leaf = x509.load_pem_x509_certificate((chain.secrets / "pki/web1.pub").read_bytes())
    leaf.verify_directly_issued_by(ca)
    user, _, hashed = chain.decrypt("web/htpasswd").decode().strip().partition(":")
    assert user == "admin" and bcrypt.checkpw(chain.decrypt("web/admin"), hashed.encode())
    assert not (chain.secrets / "web/htpasswd.pub").exists()  # secret unless public = true


def test_rotating_an_input_makes_its_dependents_due(chain: Repo) -> None:
    assert chain.run("rotate", "--with-dependents", "pki/ca", "web/admin").code == 0
    assert chain.run("rotate", "--due").out == b""
    assert "rotated 0 of 0 secrets" in chain.run("rotate", "--due").err
    first_leaf = chain.decrypt("pki/web1")
    assert chain.run("rotate", "pki/ca").code == 0
    r = chain.run("rotate", "--due")
    assert r.code == 0, r.err
    assert (
        "rotated secret=pki/web1 file=secrets/pki/web1.age "
        "reason='made from pki/ca, rotated since'" in r.err
    )
    assert "rotated 1 of 1 secrets" in r.err
    assert chain.decrypt("pki/web1") != first_leaf
    assert "rotated 0 of 0 secrets" in chain.run("rotate", "--due").err


def test_with_dependents_rotates_the_chain_inputs_first(chain: Repo) -> None:
    assert chain.run("rotate", "pki/ca", "web/admin").code == 0
    r = chain.run("-v", "rotate", "--with-dependents", "web/admin", "pki/ca")
    assert r.code == 0, r.err
    order = [
        line.split("secret=")[1].split()[0]
        for line in r.err.splitlines()
        if "rotated secret=" in line
    ]
    assert order == ["web/admin", "pki/ca", "web/htpasswd", "pki/web1"]


def test_a_failed_input_stops_its_dependents(chain: Repo) -> None:
    assert chain.run("rotate", "pki/ca").code == 0
    (chain.secrets / "pki/ca.pub").unlink()
    r = chain.run("rotate", "pki/web1")
    assert r.code == 1
    assert "pki/web1: pki/ca.pub, the CA's certificate, is missing; rotate pki/ca" in r.err
    # The CA's own rotation fails: what is made from it is not tried.
    (chain.secrets / "pki/ca.pub").mkdir()
    r = chain.run("rotate", "--with-dependents", "pki/ca")
    assert r.code == 1
    assert "not tried, as a secret they are made from failed: pki/web1" in r.err
    assert not chain.age_file("pki/web1").exists()


def test_a_further_output_is_rotated_by_its_generator(tmp_path: Path) -> None:
    r = make_repo(tmp_path)
    write_rules(
        r,
        {"pair": 'generator = { command = "g.sh", outputs = ["key", "extra"] }'},
    )
    script = r.secrets / "g.sh"
    script.write_text("#!/bin/sh\necho k > out/key\necho e > out/extra\n")
    script.chmod(0o755)
    res = r.run("rotate", "pair.extra")
    assert res.code == 0, res.err
    assert "rotated secret=pair file=secrets/pair.age" in res.err
    assert (r.decrypt("pair"), r.decrypt("pair.extra")) == (b"k\n", b"e\n")
