from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from _admin import Repo, make_repo, run_cli
from conftest import make_age_key, make_ssh_key, needs_nix, needs_root

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
    moves = r.text.split("move them (or pass --move):\n")[1].splitlines()[:3]
    assert sorted(moves) == [
        "  git mv secrets/db/password.age db/password.age",
        "  git mv secrets/grafana.age grafana.age",
        "  git mv secrets/tls.age tls.age",
    ]
    assert "note: nixseal looks for secrets/secrets.toml; pass --rules rules.toml" in r.text


def _root_layout(tmp_path: Path, attrs: dict[str, list[str]], extra: str = "") -> Repo:
    """agenix's most common layout: secrets.nix at the repository root."""
    repo = make_repo(tmp_path)
    web1 = " ".join(repo.host("web1").public.split()[:2]) + " root@web1"
    keys = {"alice": repo.admin.public, "web1": web1}
    lines = [f'"{a}".publicKeys = [ {" ".join(who)} ];' for a, who in attrs.items()]
    (repo.root / "secrets.nix").write_text(
        f'let\n  alice = "{keys["alice"]}";\n  web1 = "{keys["web1"]}";\n{extra}in {{\n'
        + "\n".join(lines)
        + "\n}\n"
    )
    for attr, who in attrs.items():
        encrypt_to(repo.root / attr, [keys[w] for w in who], f"value of {attr}".encode())
    return repo


def test_a_secrets_nix_at_the_root_imports_where_nixseal_finds_it(tmp_path: Path) -> None:
    repo = _root_layout(
        tmp_path, {"secrets/a.age": ["alice", "web1"], "secrets/b/c.age": ["alice", "web1"]}
    )
    r = run_cli("import-agenix", "secrets.nix", cwd=repo.root)
    assert r.code == 0, r.err
    assert r.text.splitlines()[0] == (
        "created secrets/secrets.toml: 1 admins, 1 hosts, 0 users, 2 secrets (2 files verified)"
    )
    assert "move" not in r.text and "note:" not in r.text and "edit" not in r.text
    assert r.text.splitlines()[-1] == "then run: nixseal check"
    assert set(load_rules(repo.rules).secrets) == {"a", "b/c"}
    # from the repository root, with no --rules
    assert run_cli("check", cwd=repo.root).code == 0
    assert repo.decrypt("b/c") == b"value of secrets/b/c.age"
    text = repo.rules.read_text().replace('hosts = ["web1"]', 'hosts = ["web1", "web2"]')
    repo.rules.write_text(text + f'\n[hosts.web2]\nkey = "{repo.host("web2").public}"\n')
    r = repo.run("rekey")
    assert r.code == 0 and "rekeyed 2 of 2" in r.err
    assert run_cli("check", cwd=repo.root).code == 0


def test_files_the_rules_expect_elsewhere_are_moved_with_git_mv(tmp_path: Path) -> None:
    repo = _root_layout(tmp_path, {"a.age": ["alice", "web1"], "secrets/b.age": ["alice", "web1"]})
    git = ["git", "-C", str(repo.root), "-c", "user.email=a@b", "-c", "user.name=a"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "a.age", "secrets/b.age", "secrets.nix"], check=True)
    subprocess.run([*git, "commit", "-qm", "agenix"], check=True)
    r = run_cli("import-agenix", "secrets.nix", cwd=repo.root)
    assert r.code == 0, r.err
    assert "  git mv a.age secrets/a.age" in r.text.splitlines()
    assert run_cli("check", cwd=repo.root).code == 1  # a.age is not where the rules look
    repo.rules.unlink()
    (repo.secrets / "secrets.state.json").unlink()
    r = run_cli("import-agenix", "secrets.nix", "--move", cwd=repo.root)
    assert r.code == 0, r.err
    assert "moved a.age to secrets/a.age" in r.text and "2 files verified" in r.text
    status = subprocess.run(
        [*git, "status", "--porcelain"], capture_output=True, text=True, check=True
    )
    assert "R  a.age -> secrets/a.age" in status.stdout.splitlines()
    assert run_cli("check", cwd=repo.root).code == 0
    assert repo.decrypt("a") == b"value of a.age"


def test_guesses_from_a_shared_list_are_marked_for_review(tmp_path: Path) -> None:
    """`all = users ++ systems`: every key is in every secret, so "listed for
    every secret" says nothing; the admin guesses must not pass silently."""
    repo = make_repo(tmp_path)
    keys = repo.root / "keys"
    bob = " ".join(make_ssh_key(keys, name="bob").public.split()[:2])
    web1 = " ".join(repo.host("web1").public.split()[:2]) + " root@web1"
    (repo.root / "secrets.nix").write_text(
        f'let\n  alice = "{repo.admin.public}";\n  bob = "{bob}";\n  web1 = "{web1}";\n'
        "  users = [ alice bob ];\n  systems = [ web1 ];\n  all = users ++ systems;\nin {\n"
        '  "secrets/a.age".publicKeys = all;\n  "secrets/b.age".publicKeys = all;\n}\n'
    )
    r = run_cli("import-agenix", "secrets.nix", cwd=repo.root)
    assert r.code == 0, r.err
    review = r.text.split("review these guesses (marked REVIEW in secrets/secrets.toml):\n")[1]
    assert review.splitlines()[:2] == [
        "  alice (admin: every secret has the same readers)",
        "  bob (admin: every secret has the same readers)",
    ]
    text = repo.rules.read_text()
    assert "# guessed: every secret has the same readers; REVIEW" in text
    assert "[hosts.web1]  # guessed: in a list named like hosts" in text
    assert load_rules(repo.rules).admins.keys() == {"alice", "bob"}


def test_a_secrets_nix_that_does_not_evaluate_keeps_nix_location(tmp_path: Path) -> None:
    (tmp_path / "secrets.nix").write_text('let a = "x"; in {\n  "a.age".publicKeys = [ b ];\n}\n')
    r = run_cli("import-agenix", "secrets.nix", cwd=tmp_path)
    assert r.code == 1
    assert r.err == (
        "nixseal import-agenix: error: secrets.nix: nix-instantiate failed: error: undefined "
        f"variable 'b' (at {tmp_path}/secrets.nix:2:26)\n"
    )


@needs_root
def test_evaluation_needs_no_store_as_a_normal_user_without_a_daemon(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Debian's nix-bin has no daemon: a normal user cannot open a store.
    nix-instantiate runs here as nobody, through a stand-in on PATH."""
    public = Path(tempfile.mkdtemp(prefix="nixseal-agenix-"))
    try:
        public.chmod(0o755)
        key = make_age_key(tmp_path).public
        (public / "secrets.nix").write_text(f'{{ "a.age".publicKeys = [ "{key}" ]; }}\n')
        (public / "secrets.nix").chmod(0o644)
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        wrapper = bin_dir / "nix-instantiate"
        real = shutil.which("nix-instantiate")
        wrapper.write_text(
            "#!/bin/sh\nexport HOME=/nonexistent\n"  # a normal user's own home, not root's
            f'exec setpriv --reuid=65534 --regid=65534 --clear-groups {real} "$@"\n'
        )
        wrapper.chmod(0o755)
        plain = subprocess.run(
            [str(wrapper), "--eval", "--strict", "--json", str(public / "secrets.nix")],
            capture_output=True, text=True, check=False, cwd="/",
        )  # fmt: skip
        assert plain.returncode != 0  # the store is what fails, not the file
        monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
        r = run_cli("import-agenix", str(public / "secrets.nix"), "-o", str(tmp_path / "r.toml"))
        assert r.code == 0, r.err
        assert list(load_rules(tmp_path / "r.toml").secrets) == ["a"]
    finally:
        shutil.rmtree(public)


def test_rules_without_an_admin_say_so(tmp_path: Path) -> None:
    """Every key in a list named like machines: all hosts, nobody to rekey."""
    a, b = make_age_key(tmp_path, "a.txt").public, make_age_key(tmp_path, "b.txt").public
    (tmp_path / "secrets.nix").write_text(
        f'let\n  pc = "{a}";\n  laptop = "{b}";\n  all-machines = [ pc laptop ];\nin {{\n'
        '  "secrets/x.age".publicKeys = all-machines;\n}\n'
    )
    r = run_cli("import-agenix", "secrets.nix", cwd=tmp_path)
    assert r.code == 0, r.err
    assert (
        "warning: no admin in secrets/secrets.toml: only hosts can decrypt these secrets; "
        "add your own key to [admins] before you rekey or edit"
    ) in r.text.splitlines()
