"""op.py against the stand-in op: reads, writes, errors, identities kept in 1Password."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest
from _admin import Repo, make_repo, run_cli
from _fakeop import FakeOp, files_containing, install
from hypothesis import given
from hypothesis import strategies as st

from nixseal.age import generators
from nixseal.errors import OpError
from nixseal.util import op


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeOp:
    return install(monkeypatch, tmp_path / "onepassword")


# --- references


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("op://Infra/grafana/password", ("Infra", "grafana", None, "password", "")),
        (
            "op://Infra/grafana/admin/admin password",
            ("Infra", "grafana", "admin", "admin password", ""),
        ),
        (
            "op://Infra/deploy/private key?ssh-format=openssh",
            ("Infra", "deploy", None, "private key", "ssh-format=openssh"),
        ),
    ],
)
def test_reference_parts(text: str, parts: tuple[str, str, str | None, str, str]) -> None:
    ref = op.parse_reference(text)
    assert (ref.vault, ref.item, ref.section, ref.field, ref.query) == parts


@pytest.mark.parametrize(
    "text",
    [
        "Infra/grafana/password",
        "op://Infra/grafana",
        "op://Infra/a/b/c/d",
        "op://Infra//password",
        "op:// /grafana/password",
        "op://Infra/grafana/pass\nword",
        "op://Infra/-rf/password",
        "op://Infra/grafana/password?bad query",
    ],
)
def test_bad_reference_is_one_line_naming_it(text: str) -> None:
    with pytest.raises(OpError) as caught:
        op.parse_reference(text)
    msg = str(caught.value)
    assert repr(text) in msg
    assert "op://vault/item/[section/]field" in msg
    assert "\n" not in msg


_segment = st.text(
    alphabet=st.characters(whitelist_categories=("L", "N"), whitelist_characters=" ._"),
    min_size=1,
    max_size=12,
).filter(lambda s: s.strip() != "")


@given(_segment, _segment, st.one_of(st.none(), _segment), _segment)
def test_reference_round_trip(vault: str, item: str, section: str | None, field: str) -> None:
    text = "op://" + "/".join([vault, item, *([section] if section else []), field])
    ref = op.parse_reference(text)
    assert (ref.vault, ref.item, ref.section, ref.field) == (vault, item, section, field)


# --- read


def test_read_returns_value_exactly(fake: FakeOp) -> None:
    fake.add_item("Infra", "grafana", {"password": "pa ss\nword\n"})
    assert op.read("op://Infra/grafana/password") == b"pa ss\nword\n"
    assert fake.calls() == [["read", "--no-newline", "op://Infra/grafana/password"]]


def test_read_with_section(fake: FakeOp) -> None:
    fake.add_item("Infra", "grafana", {"token": "t0k"}, section="api")
    assert op.read("op://Infra/grafana/api/token") == b"t0k"


def test_read_never_asks_op_for_a_file(fake: FakeOp) -> None:
    fake.add_item("Infra", "db", {"password": "x"})
    op.read("op://Infra/db/password")
    for argv in fake.calls():
        assert "-o" not in argv and "--out-file" not in argv


def test_not_signed_in(fake: FakeOp) -> None:
    fake.add_item("Infra", "grafana", {"password": "v"})
    fake.sign_out()
    with pytest.raises(OpError) as caught:
        op.read("op://Infra/grafana/password")
    msg = str(caught.value)
    assert msg.startswith("op read op://Infra/grafana/password: ")
    assert "not signed in" in msg
    assert "eval $(op signin)" in msg and "OP_SERVICE_ACCOUNT_TOKEN" in msg
    assert "[ERROR]" not in msg and "\n" not in msg


def test_item_missing(fake: FakeOp) -> None:
    fake.add_item("Infra", "grafana", {"password": "v"})
    with pytest.raises(OpError) as caught:
        op.read("op://Infra/grafnaa/password")
    msg = str(caught.value)
    assert "op read op://Infra/grafnaa/password:" in msg
    assert '"grafnaa" isn\'t an item in the "Infra" vault' in msg
    assert "check the item name" in msg


def test_field_missing(fake: FakeOp) -> None:
    fake.add_item("Infra", "grafana", {"password": "v"})
    with pytest.raises(OpError, match=r"does not have a field 'pasword'.*check the field"):
        op.read("op://Infra/grafana/pasword")


def test_vault_missing(fake: FakeOp) -> None:
    fake.add_item("Infra", "grafana", {"password": "v"})
    with pytest.raises(OpError, match=r"isn't a vault.*check the vault name"):
        op.read("op://Infar/grafana/password")


def test_bad_reference_never_reaches_op(fake: FakeOp) -> None:
    with pytest.raises(OpError, match="bad 1Password reference"):
        op.read("op://Infra/grafana")
    assert fake.calls() == []


def test_op_missing_from_path(fake: FakeOp) -> None:
    fake.uninstall()
    with pytest.raises(OpError, match=r"`op` is not on PATH"):
        op.read("op://Infra/grafana/password")


@pytest.mark.parametrize(
    ("stderr", "expected"),
    [
        # Forms real op versions print (with their timestamps).
        (
            "[ERROR] 2026/03/01 10:00:00 could not read secret 'op://V/i/f': error initializing "
            "client: You are not currently signed in. Please run `op signin --help` for instructions",
            "error initializing client: You are not currently signed in",
        ),
        (
            "[ERROR] 2026/03/01 10:00:00 could not find session token for account my",
            "could not find session token",
        ),
        ("[ERROR] 2026/03/01 10:00:00 account is not signed in", "account is not signed in"),
    ],
)
def test_sign_in_failures_get_the_hint(stderr: str, expected: str) -> None:
    msg = op.explain(stderr.encode())
    assert msg.startswith(expected)
    assert msg.endswith(op.SIGN_IN_HINT)
    assert "2026/03/01" not in msg


def test_unknown_error_keeps_ops_words_bounded() -> None:
    assert op.explain(b"[ERROR] 2026/03/01 10:00:00 something new\n") == "something new"
    assert len(op.explain(b"[ERROR] " + b"z" * 5000)) <= 300
    assert op.explain(b"") == "failed without a message"


# --- whoami


def test_whoami(fake: FakeOp) -> None:
    assert op.whoami().startswith("admin@example.com at https://")
    fake.sign_out()
    with pytest.raises(OpError, match=r"^op whoami: account is not signed in; run `eval"):
        op.whoami()


# --- write


def test_write_keeps_the_value_off_the_command_line(fake: FakeOp) -> None:
    fake.add_item("Infra", "grafana", {"password": "old", "username": "admin"})
    value = "n3w-" + secrets.token_hex(8)
    op.write("op://Infra/grafana/password", value.encode())
    assert fake.value("Infra", "grafana", "password") == value
    assert fake.value("Infra", "grafana", "username") == "admin"
    assert op.read("op://Infra/grafana/password") == value.encode()
    for argv in fake.calls():
        assert not any(value in a for a in argv), argv
    edits = [i for i, a in enumerate(fake.calls()) if a[:2] == ["item", "edit"]]
    assert len(edits) == 1
    assert fake.stdin_sizes()[edits[0]] > len(value)  # the item JSON went through stdin
    gets = [a for a in fake.calls() if a[:2] == ["item", "get"]]
    assert "--reveal" in gets[0]  # else concealed fields would be written back masked


def test_write_to_section_and_new_field(fake: FakeOp) -> None:
    fake.add_item("Infra", "svc", {"token": "old"}, section="api")
    op.write("op://Infra/svc/api/token", b"new-token")
    assert op.read("op://Infra/svc/api/token") == b"new-token"
    op.write("op://Infra/svc/api/secondary", b"second")
    assert op.read("op://Infra/svc/api/secondary") == b"second"
    op.write("op://Infra/svc/fresh", b"top")
    assert op.read("op://Infra/svc/fresh") == b"top"
    fields = next(it for v in fake.data()["vaults"] for it in v["items"])["fields"]
    assert next(f for f in fields if f["label"] == "secondary")["type"] == "CONCEALED"


def test_write_to_missing_item(fake: FakeOp) -> None:
    fake.add_item("Infra", "grafana", {"password": "old"})
    with pytest.raises(OpError) as caught:
        op.write("op://Infra/nothere/password", b"v")
    assert str(caught.value).startswith("op item get nothere (for op://Infra/nothere/password): ")
    assert "isn't an item" in str(caught.value)


def test_write_refuses_query_and_binary(fake: FakeOp) -> None:
    with pytest.raises(OpError, match="cannot write through a reference"):
        op.write("op://Infra/k/private key?ssh-format=openssh", b"v")
    with pytest.raises(OpError, match="binary"):
        op.write("op://Infra/k/password", b"\xff\xfe")
    assert fake.calls() == []


def test_set_field_ambiguous() -> None:
    item = {
        "fields": [
            {"id": "a", "label": "token", "value": "1", "section": {"id": "s1", "label": "one"}},
            {"id": "b", "label": "token", "value": "2", "section": {"id": "s2", "label": "two"}},
        ]
    }
    with pytest.raises(OpError, match=r"2 fields named 'token'.*name the section"):
        op.set_field(item, op.parse_reference("op://V/i/token"), "x")
    op.set_field(item, op.parse_reference("op://V/i/two/token"), "x")
    assert [f["value"] for f in item["fields"]] == ["1", "x"]


# --- admin identity kept in 1Password (identity.py calls op.read_identity)


def _repo_with_op_admin(tmp_path: Path, fake: FakeOp) -> tuple[Repo, bytes]:
    repo = make_repo(tmp_path)
    seed = secrets.token_bytes(32)
    private, public = generators.openssh_ed25519(seed, "nixseal-admin")
    fake.add_ssh_key_item("Infra", "nixseal-admin", seed, private)
    repo.write_rules({"db": ["web1"]}, extra=f'bob = "{public}"')
    value = b"db-" + secrets.token_hex(12).encode()
    repo.encrypt("db", value)
    return repo, value


def test_decrypt_with_identity_from_1password(tmp_path: Path, fake: FakeOp) -> None:
    repo, value = _repo_with_op_admin(tmp_path, fake)
    r = run_cli("-i", "op://Infra/nixseal-admin/private key", "decrypt", "db", cwd=repo.root)
    assert r.code == 0, r.err
    assert r.out == value
    # The SSH Key item hands out PKCS#8 by default: the OpenSSH form was asked for.
    assert ["read", "--no-newline", "op://Infra/nixseal-admin/private key?ssh-format=openssh"] in (
        fake.calls()
    )
    assert files_containing(value, repo.root) == []


def test_identity_from_1password_not_signed_in(tmp_path: Path, fake: FakeOp) -> None:
    repo, _ = _repo_with_op_admin(tmp_path, fake)
    fake.sign_out()
    r = run_cli("-i", "op://Infra/nixseal-admin/private key", "decrypt", "db", cwd=repo.root)
    assert r.code == 1
    lines = r.err.strip().splitlines()
    assert len(lines) == 1, r.err
    assert lines[0].startswith(
        "nixseal decrypt: error: op read op://Infra/nixseal-admin/private key:"
    )
    assert "eval $(op signin)" in lines[0]
    assert r.out == b""


def test_identity_from_1password_item_missing(tmp_path: Path, fake: FakeOp) -> None:
    repo, _ = _repo_with_op_admin(tmp_path, fake)
    r = run_cli("-i", "op://Infra/nixseal-adm/private key", "decrypt", "db", cwd=repo.root)
    assert r.code == 1
    assert "op://Infra/nixseal-adm/private key" in r.err
    assert "isn't an item" in r.err
    assert len(r.err.strip().splitlines()) == 1


def test_age_identity_kept_in_a_1password_field(tmp_path: Path, fake: FakeOp) -> None:
    repo = make_repo(tmp_path)
    fake.add_item("Infra", "age-admin", {"identity": repo.admin.path.read_text()})
    repo.write_rules({"api": []})
    repo.encrypt("api", b"api-token")
    r = run_cli("-i", "op://Infra/age-admin/identity", "decrypt", "api", cwd=repo.root)
    assert (r.code, r.out) == (0, b"api-token"), r.err


def test_fake_op_speaks_json(fake: FakeOp) -> None:
    # The stand-in's item JSON has the shape op write() relies on.
    fake.add_item("Infra", "x", {"password": "v"})
    import subprocess

    out = subprocess.run(
        ["op", "item", "get", "x", "--vault", "Infra", "--format", "json", "--reveal"],
        check=True,
        capture_output=True,
    ).stdout
    item = json.loads(out)
    assert item["fields"][0]["reference"] == "op://Infra/x/password"
    assert item["vault"]["name"] == "Infra"
