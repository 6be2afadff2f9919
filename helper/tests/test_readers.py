"""host remove, admin add/remove, user add/remove, group set/remove: the
rules file edited with its comments kept, and what to rekey and rotate."""

from __future__ import annotations

from pathlib import Path

import pytest
from _admin import Repo, make_repo
from conftest import make_age_key, make_ssh_key

from nixseal.age import crypto
from nixseal.errors import DecryptError
from nixseal.repo.rules import load_rules

RULES = """\
# Fleet rules. Keep this comment.
version = 1

[admins]
alice = "{admin}"  # alice's laptop

[hosts.web1]
key = "{web1}"

[hosts.db1]
# the database server
key = "{db1}"

[groups]
servers = ["web1", "db1"]  # every server

[secrets."web/token"]
hosts = ["web1"]
generator = "password"

[secrets.db]
hosts = [
  "db1", # primary
]

[secrets.smtp]
hosts = ["@servers"]
"""


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    r = make_repo(tmp_path)
    keys = {"admin": r.admin.public, "web1": r.host("web1").public, "db1": r.host("db1").public}
    r.rules.write_text(RULES.format(**keys))
    for name in ("web/token", "db", "smtp"):
        r.encrypt(name, f"value of {name}".encode())
    return r


def _can_decrypt(identity: Path, file: Path) -> bool:
    try:
        crypto.decrypt(file.read_bytes(), crypto.load_identity_file(identity), str(file))
    except DecryptError:
        return False
    return True


def test_host_remove_keeps_the_rest_and_names_what_to_rekey_and_rotate(repo: Repo) -> None:
    before = repo.rules.read_text()
    r = repo.run("host", "remove", "db1", "--no-rekey")
    assert r.code == 0, r.err
    text = repo.rules.read_text()
    rules = load_rules(repo.rules)
    assert "db1" not in rules.hosts and rules.groups["servers"] == ("web1",)
    assert rules.secrets["db"].hosts == () and rules.secrets["smtp"].hosts == ("web1",)
    # everything not about db1 is as it was, comments included
    assert "# Fleet rules. Keep this comment." in text and "# alice's laptop" in text
    assert 'servers = ["web1"]  # every server' in text
    assert "# the database server" not in text and "# primary" not in text
    assert before.split("[hosts.db1]")[0] == text.split("[groups]")[0]
    lines = r.text.splitlines()
    assert (
        lines[0] == "removed host db1 (and from group servers and 1 secret) in secrets/secrets.toml"
    )
    assert lines[1] == "2 secrets are encrypted to the old recipients; run: nixseal rekey db smtp"
    assert lines[2].startswith("host db1 could read 2 secrets; if a copy may have been kept")
    assert lines[3:5] == ["  nixseal edit db", "  nixseal edit smtp"]
    assert "no host or user reads db any more" in lines[5]


def test_host_remove_with_rekey_locks_the_host_out(repo: Repo) -> None:
    db1 = repo.hosts["db1"].private_path
    assert _can_decrypt(db1, repo.age_file("smtp"))
    r = repo.run("host", "remove", "db1", "--rekey")
    assert r.code == 0, r.err
    assert "rekeyed 2 of 2 secrets" in r.text
    assert not _can_decrypt(db1, repo.age_file("smtp"))
    assert not _can_decrypt(db1, repo.age_file("db"))
    assert _can_decrypt(repo.hosts["web1"].private_path, repo.age_file("smtp"))
    assert repo.decrypt("db") == b"value of db"
    assert repo.run("check").code == 0


def test_generated_secrets_are_rotated_the_rest_edited(repo: Repo) -> None:
    r = repo.run("host", "remove", "web1", "--no-rekey")
    assert r.code == 0, r.err
    assert "  nixseal rotate web/token" in r.text.splitlines()
    assert "  nixseal edit smtp" in r.text.splitlines()


def test_admin_add_then_the_new_admin_reads_everything(repo: Repo, tmp_path: Path) -> None:
    bob = make_age_key(tmp_path, "bob.txt")
    r = repo.run("admin", "add", "bob", bob.public, "--rekey")
    assert r.code == 0, r.err
    assert r.text.splitlines()[0] == "added admin bob in secrets/secrets.toml"
    assert "rekeyed 3 of 3 secrets" in r.text
    assert load_rules(repo.rules).admins["bob"] == bob.public
    assert 'alice = "' in repo.rules.read_text() and "# alice's laptop" in repo.rules.read_text()
    for name in ("web/token", "db", "smtp"):
        assert _can_decrypt(bob.path, repo.age_file(name))


def test_admin_remove_advises_rotating_everything(repo: Repo, tmp_path: Path) -> None:
    bob = make_age_key(tmp_path, "bob.txt")
    assert repo.run("admin", "add", "bob", bob.public, "--rekey").code == 0
    r = repo.run("admin", "remove", "bob", "--rekey")
    assert r.code == 0, r.err
    assert "admin bob could read 3 secrets" in r.text
    assert not _can_decrypt(bob.path, repo.age_file("db"))
    assert "no host or user reads" not in r.text  # hosts still read them


def test_the_last_admin_cannot_be_removed(repo: Repo) -> None:
    before = repo.rules.read_text()
    r = repo.run("admin", "remove", "alice")
    assert r.code == 2
    assert "alice is the last admin, and only admins can rekey" in r.err
    assert repo.rules.read_text() == before


def test_a_key_already_held_by_another_reader_is_refused(repo: Repo) -> None:
    before = repo.rules.read_text()
    r = repo.run("admin", "add", "mallory", repo.hosts["web1"].public)
    assert r.code == 2 and "that key is already host web1's" in r.err
    r = repo.run("host", "add", "web2", repo.admin.public)
    assert r.code == 2 and "that key is already admin alice's" in r.err
    assert repo.rules.read_text() == before


def test_user_add_and_remove(repo: Repo, tmp_path: Path) -> None:
    carol = make_age_key(tmp_path, "carol.txt")
    r = repo.run("user", "add", "carol", carol.public)
    assert r.code == 0, r.err
    assert 'next: list "carol" in the users of its secrets' in r.text
    repo.rules.write_text(repo.rules.read_text() + '\n[secrets."carol/token"]\nusers = ["carol"]\n')
    repo.encrypt("carol/token", b"t")
    assert _can_decrypt(carol.path, repo.age_file("carol/token"))
    r = repo.run("user", "remove", "carol", "--rekey")
    assert r.code == 0, r.err
    assert "removed user carol (and from 1 secret)" in r.text
    assert "user carol could read 1 secret" in r.text and "  nixseal edit carol/token" in r.text
    assert not _can_decrypt(carol.path, repo.age_file("carol/token"))
    assert "carol" not in load_rules(repo.rules).users


def test_user_replace_changes_the_key(repo: Repo, tmp_path: Path) -> None:
    old, new = make_age_key(tmp_path, "old.txt"), make_age_key(tmp_path, "new.txt")
    assert repo.run("user", "add", "carol", old.public).code == 0
    repo.rules.write_text(repo.rules.read_text() + '\n[secrets."carol/token"]\nusers = ["carol"]\n')
    repo.encrypt("carol/token", b"t")
    r = repo.run("user", "add", "carol", new.public, "--replace", "--no-rekey")
    assert r.code == 0, r.err
    assert "1 secret is encrypted to the old key; run: nixseal rekey carol/token" in r.text
    assert repo.run("user", "add", "dave", new.public, "--replace").code == 2


def test_group_set_changes_who_reads_its_secrets(repo: Repo, tmp_path: Path) -> None:
    web2 = make_ssh_key(tmp_path, name="web2")
    assert repo.run("host", "add", "web2", web2.public).code == 0
    r = repo.run("group", "set", "servers", "web1", "web2", "--rekey")
    assert r.code == 0, r.err
    assert r.text.splitlines()[0] == "set group servers in secrets/secrets.toml"
    assert "rekeyed 1 of 1 secrets" in r.text
    assert "host db1 could read 1 secret" in r.text
    assert _can_decrypt(web2.private_path, repo.age_file("smtp"))
    assert not _can_decrypt(repo.hosts["db1"].private_path, repo.age_file("smtp"))
    assert 'servers = ["web1", "web2"]  # every server' in repo.rules.read_text()
    again = repo.run("group", "set", "servers", "web1", "web2")
    assert again.code == 0 and again.text == "group servers: members unchanged\n"


def test_a_new_group_and_its_removal(repo: Repo) -> None:
    r = repo.run("group", "set", "web", "web1")
    assert r.code == 0 and r.text == "added group web in secrets/secrets.toml\n"
    assert load_rules(repo.rules).groups["web"] == ("web1",)
    r = repo.run("group", "remove", "web")
    assert r.code == 0 and "web" not in load_rules(repo.rules).groups


def test_a_group_in_use_is_not_removed(repo: Repo) -> None:
    before = repo.rules.read_text()
    r = repo.run("group", "remove", "servers")
    assert r.code == 2
    assert "group servers is used by secret smtp; list their hosts instead first" in r.err
    assert repo.rules.read_text() == before


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["host", "remove", "db2"], "no host 'db2'; did you mean 'db1'?"),
        (["user", "remove", "carol"], "no user 'carol'; known: none"),
        (["group", "set", "servers", "web9"], "no host 'web9' for group servers; did you mean"),
        (["group", "set", "all", "@server"], "no group 'server' for group all; did you mean"),
        (["group", "set", "../x", "web1"], "[groups] ../x: bad name"),
        (["admin", "add", "../x", "age1x"], "[admins] ../x: bad name"),
    ],
)
def test_mistakes_are_one_line_and_change_nothing(
    repo: Repo, argv: list[str], message: str
) -> None:
    before = repo.rules.read_text()
    r = repo.run(*argv)
    assert r.code in (1, 2)
    assert message in r.err and len(r.err.splitlines()) == 1, r.err
    assert repo.rules.read_text() == before


def test_entries_written_inline_get_an_inline_neighbour(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    web1 = repo.host("web1").public
    repo.rules.write_text(
        f'version = 1\n[admins]\nalice = "{repo.admin.public}"\n\n[hosts]\nweb1 = {{ key = "{web1}" }}\n'
    )
    web2 = make_ssh_key(tmp_path, name="web2")
    assert repo.run("host", "add", "web2", web2.public).code == 0
    text = repo.rules.read_text()
    assert (
        f'web2 = {{key = "{web2.public}"}}' in text or f'web2 = {{ key = "{web2.public}" }}' in text
    )
    assert "[hosts.web2]" not in text
    assert load_rules(repo.rules).hosts["web2"].key == web2.public


def test_what_to_rekey_and_rotate_comes_from_the_files(repo: Repo, tmp_path: Path) -> None:
    """An admin added and removed before any file was re-encrypted to them
    never could read anything: nothing to rotate, nothing left to rekey."""
    bob = make_age_key(tmp_path, "bob.txt")
    added = repo.run("admin", "add", "bob", bob.public, "--no-rekey")
    assert "3 secrets are encrypted to the old recipients" in added.text
    removed = repo.run("admin", "remove", "bob", "--no-rekey")
    assert removed.code == 0, removed.err
    assert removed.text == "removed admin bob in secrets/secrets.toml\n"
    assert repo.run("check").code == 0


def test_without_tomlkit_the_verbs_say_so(repo: Repo, monkeypatch: pytest.MonkeyPatch) -> None:
    from nixseal.repo import readers

    monkeypatch.setattr(readers, "MISSING", True)
    before = repo.rules.read_text()
    r = repo.run("host", "remove", "db1")
    assert r.code == 2
    assert "needs the Python package 'tomlkit', which is not installed" in r.err
    assert repo.rules.read_text() == before
