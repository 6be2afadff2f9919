from __future__ import annotations

from pathlib import Path

import pytest
from _admin import Repo, make_repo, run_cli
from conftest import make_age_key, make_ssh_key, needs_nix

from nixseal.age import crypto
from nixseal.repo.rules import load_rules

pytestmark = needs_nix


def encrypt_to(path: Path, keys: list[str], value: bytes, armor: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    recipients = [crypto.parse_recipient(k, "t") for k in keys]
    path.write_bytes(crypto.encrypt(value, recipients, armor))


@pytest.fixture
def agenix(tmp_path: Path) -> tuple[Repo, dict[str, str]]:
    repo = make_repo(tmp_path)
    keys = repo.root / "keys"
    bob = make_ssh_key(keys, name="bob")
    web1 = make_ssh_key(keys, name="web1")  # comment test-ed25519, renamed below
    web1_pub = " ".join(web1.public.split()[:2]) + " root@web1"
    db1 = make_ssh_key(keys, name="db1")
    carol = make_age_key(keys, "carol.txt")
    pubs = {
        "alice": repo.admin.public,
        "bob": bob.public,
        "web1": web1_pub,
        "db1": " ".join(db1.public.split()[:2]),
        "carol": carol.public,
    }
    (repo.secrets / "secrets.nix").write_text(
        f"""
let
  alice = "{pubs["alice"]}";
  bob = "{pubs["bob"]}";
  server = "{pubs["web1"]}";
  database = "{pubs["db1"]}";
  admins = [ alice bob ];
in {{
  "grafana.age".publicKeys = admins ++ [ server ];
  "db/password.age".publicKeys = admins ++ [ database ];
  "tls.age" = {{ publicKeys = admins ++ [ server database "{pubs["carol"]}" ]; armor = true; }};
}}
"""
    )
    encrypt_to(repo.age_file("grafana"), [pubs["alice"], pubs["bob"], pubs["web1"]], b"g")
    encrypt_to(repo.age_file("db/password"), [pubs["alice"], pubs["bob"], pubs["db1"]], b"d")
    tls_keys = [pubs["alice"], pubs["bob"], pubs["web1"], pubs["db1"], pubs["carol"]]
    encrypt_to(repo.age_file("tls"), tls_keys, b"t", armor=True)
    return repo, pubs


def test_import_guesses_roles_and_keeps_files(agenix: tuple[Repo, dict[str, str]]) -> None:
    repo, pubs = agenix
    before = {n: repo.age_file(n).read_bytes() for n in ("grafana", "db/password", "tls")}
    r = run_cli("import-agenix", "secrets/secrets.nix", cwd=repo.root)
    assert r.code == 0, r.err
    assert "3 secrets (3 files verified)" in r.text
    rules = load_rules(repo.rules)
    assert rules.admins == {"alice": pubs["alice"], "bob": pubs["bob"]}
    assert {h: rules.hosts[h].key for h in rules.hosts} == {
        "server": pubs["web1"],
        "database": pubs["db1"],
    }
    assert list(rules.users) == ["user1"]  # inline key, no binding, no comment
    assert rules.secrets["tls"].armor is True
    assert rules.secrets["tls"].users == ("user1",)
    assert rules.secrets["grafana"].hosts == ("server",)
    assert rules.secrets["db/password"].hosts == ("database",)
    after = {n: repo.age_file(n).read_bytes() for n in before}
    assert after == before
    assert repo.run("check").code == 0
    assert repo.decrypt("db/password") == b"d"


def test_mismatched_file_is_left_for_rekey(agenix: tuple[Repo, dict[str, str]]) -> None:
    repo, pubs = agenix
    encrypt_to(repo.age_file("grafana"), [pubs["alice"], pubs["bob"]], b"g")
    r = run_cli("import-agenix", "secrets/secrets.nix", cwd=repo.root)
    assert r.code == 0
    assert "warning: grafana: file missing or its header differs from publicKeys" in r.text
    check = repo.run("check")
    assert check.code == 1 and "grafana: not encrypted to host server" in check.text
    assert repo.run("rekey").code == 0
    assert repo.run("check").code == 0


def test_never_overwrites_and_reports_nix_errors(agenix: tuple[Repo, dict[str, str]]) -> None:
    repo, _ = agenix
    repo.rules.write_text("version = 1\n")
    r = run_cli("import-agenix", "secrets/secrets.nix", cwd=repo.root)
    assert r.code == 2 and "already exists; not overwritten" in r.err
    repo.rules.unlink()
    (repo.secrets / "secrets.nix").write_text("{ broken = ; }")
    r = run_cli("import-agenix", "secrets/secrets.nix", cwd=repo.root)
    assert r.code == 1 and "secrets/secrets.nix: nix-instantiate failed: error:" in r.err
    assert not repo.rules.exists()


def test_bad_key_is_named_in_secrets_nix(agenix: tuple[Repo, dict[str, str]]) -> None:
    repo, _ = agenix
    (repo.secrets / "secrets.nix").write_text('{ "x.age".publicKeys = [ "age1nope" ]; }')
    r = run_cli("import-agenix", "secrets/secrets.nix", cwd=repo.root)
    assert r.code == 1 and len(r.err.splitlines()) == 1
    assert "secrets/secrets.nix: x.age: publicKeys: bad recipient 'age1nope'" in r.err
    assert not repo.rules.exists()


def test_output_that_cannot_be_written_is_one_line(agenix: tuple[Repo, dict[str, str]]) -> None:
    repo, _ = agenix
    (repo.root / "afile").write_text("x")
    r = run_cli("import-agenix", "secrets/secrets.nix", "-o", "afile/rules.toml", cwd=repo.root)
    assert r.code == 1
    assert (
        r.err == "nixseal import-agenix: error: afile/rules.toml: cannot write: "
        "a file is in the way of its directory\n"
    )


def test_readme_layout_people_and_systems_lists(tmp_path: Path) -> None:
    """agenix's README layout: `users` and `systems` lists of let-bound keys."""
    repo = make_repo(tmp_path)
    keys = repo.root / "keys"
    user1, user2 = make_ssh_key(keys, name="user1"), make_ssh_key(keys, name="user2")
    sys1, sys2 = make_ssh_key(keys, name="sys1"), make_ssh_key(keys, name="sys2")
    bare = {k: " ".join(v.public.split()[:2]) for k, v in
            {"user1": user1, "user2": user2, "system1": sys1, "system2": sys2}.items()}  # fmt: skip
    dave = make_age_key(keys, "dave.txt").public
    pubs = {**bare, "user2": bare["user2"] + " user2@laptop"}
    (repo.secrets / "secrets.nix").write_text(
        f"""
let
  user1 = "{pubs["user1"]}";
  user2 = "{pubs["user2"]}";
  users = [ user1 user2 ];

  system1 = "{pubs["system1"]}";
  system2 = "{pubs["system2"]}";
  systems = [ system1 system2 ];
in
{{
  "secret1.age".publicKeys = [ user1 system1 ];
  "secret2.age".publicKeys = users ++ systems ++ [ "{dave}" ];
  "armored-secret.age" = {{ publicKeys = [ user1 system2 ]; armor = true; }};
}}
"""
    )
    r = run_cli("import-agenix", "secrets/secrets.nix", cwd=repo.root)
    assert r.code == 0, r.err
    assert "warning: the rules expect" not in r.text and "note:" not in r.text
    rules = load_rules(repo.rules)
    assert rules.admins == {"user1": pubs["user1"]}
    assert set(rules.hosts) == {"system1", "system2"}
    assert rules.users["user2"].key == pubs["user2"]
    assert rules.users["user3"].key == dave  # no binding, no comment: the first free userN
    assert rules.secrets["secret2"].users == ("user2", "user3")
    assert rules.secrets["secret2"].hosts == ("system1", "system2")
    assert rules.secrets["armored-secret"].hosts == ("system2",)


def test_person_key_by_comment_is_a_user(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    keys = repo.root / "keys"
    alice = make_ssh_key(keys, name="alice")
    web1 = make_ssh_key(keys, name="web1")
    carol = " ".join(make_ssh_key(keys, name="carol").public.split()[:2]) + " carol@desk"
    a = " ".join(alice.public.split()[:2]) + " alice@laptop"
    w = " ".join(web1.public.split()[:2]) + " root@web1"
    (repo.secrets / "secrets.nix").write_text(
        f'{{ "x.age".publicKeys = [ "{a}" "{w}" "{carol}" ];\n'
        f'   "y.age".publicKeys = [ "{a}" "{w}" ]; }}\n'
    )
    assert run_cli("import-agenix", "secrets/secrets.nix", cwd=repo.root).code == 0
    rules = load_rules(repo.rules)
    assert list(rules.admins) == ["alice"] and list(rules.hosts) == ["web1"]
    assert list(rules.users) == ["carol"] and rules.secrets["x"].users == ("carol",)


def test_rules_elsewhere_than_the_files_are_warned_about(
    agenix: tuple[Repo, dict[str, str]],
) -> None:
    repo, _ = agenix
    r = run_cli("import-agenix", "secrets/secrets.nix", "-o", "rules.toml", cwd=repo.root)
    assert r.code == 0, r.err
    assert (
        "warning: the rules expect the .age files beside rules.toml; move them there from secrets"
        in r.text
    )
    assert "note: nixseal looks for secrets/secrets.toml; pass --rules rules.toml" in r.text
