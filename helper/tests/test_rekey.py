from __future__ import annotations

from pathlib import Path

import pytest
from _admin import Repo, age_decrypt, make_repo, run_cli
from conftest import make_age_key, needs_age

from nixseal.age import crypto
from nixseal.age.header import parse_header, ssh_key_tag


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    r = make_repo(tmp_path)
    r.write_rules({"a": ["web1"], "b": ["web1"], "c": []})
    for n in "abc":
        r.encrypt(n, f"value {n}".encode())
    return r


def snapshot(repo: Repo) -> dict[str, bytes]:
    return {n: repo.age_file(n).read_bytes() for n in "abc"}


def test_nothing_stale_touches_nothing(repo: Repo) -> None:
    before = snapshot(repo)
    r = repo.run("rekey")
    assert r.code == 0 and "rekeyed 0 of 3 secrets, 3 already up to date" in r.err
    assert snapshot(repo) == before


def test_only_stale_files_are_reencrypted(repo: Repo) -> None:
    before = snapshot(repo)
    repo.host("web2")
    repo.write_rules({"a": ["web1", "web2"], "b": ["web1"], "c": []})
    assert repo.run("rekey", "-n").out == b"a\n"
    r = repo.run("rekey")
    assert r.code == 0, r.err
    after = snapshot(repo)
    assert after["a"] != before["a"]
    assert after["b"] == before["b"] and after["c"] == before["c"]
    tags = parse_header(after["a"], "a").ssh_tags
    assert ssh_key_tag(repo.hosts["web2"].public) in tags
    assert repo.run("check").code == 0


def test_force_reencrypts_everything(repo: Repo) -> None:
    before = snapshot(repo)
    r = repo.run("rekey", "--force")
    assert r.code == 0 and "rekeyed 3 of 3" in r.err
    after = snapshot(repo)
    assert all(after[n] != before[n] for n in "abc")
    assert [repo.decrypt(n) for n in "abc"] == [b"value a", b"value b", b"value c"]


def test_removed_host_loses_access(repo: Repo) -> None:
    repo.write_rules({"a": [], "b": ["web1"], "c": []})
    assert repo.run("rekey").code == 0
    data = repo.age_file("a").read_bytes()
    assert parse_header(data, "a").ssh_tags == frozenset()
    host_ids = crypto.load_identity_file(repo.hosts["web1"].private_path)
    with pytest.raises(crypto.DecryptError):
        crypto.decrypt(data, host_ids, "a")


def test_new_admin_key_detected_through_state_and_added(repo: Repo, tmp_path: Path) -> None:
    bob = make_age_key(tmp_path, "bob.txt")
    text = repo.rules.read_text().replace("[admins]\n", f'[admins]\nbob = "{bob.public}"\n')
    repo.rules.write_text(text)
    assert repo.run("check").code == 1
    r = repo.run("rekey")
    assert "rekeyed 3 of 3" in r.err
    assert run_cli("-i", str(bob.path), "decrypt", "b", cwd=repo.root).out == b"value b"


def _break_three_of_four(repo: Repo, tmp_path: Path) -> None:
    """a: not encrypted to the admin, b: truncated, c: not an age file; all four stale."""
    stranger = make_age_key(tmp_path, "stranger.txt")
    repo.age_file("a").write_bytes(
        crypto.encrypt(b"foreign", [crypto.parse_recipient(stranger.public, "t")])
    )
    good = repo.age_file("b").read_bytes()
    repo.age_file("b").write_bytes(good[:-30])  # truncated payload, header intact
    repo.age_file("c").write_bytes(b"garbage")
    repo.write_rules({"a": ["web1"], "b": ["web1"], "c": [], "d": ["web1"]})
    repo.encrypt("d", b"value d")
    repo.host("web2")
    repo.write_rules({n: ["web1", "web2"] for n in "abcd"})


def not_yours(repo: Repo) -> str:
    return (
        f"nixseal rekey: error: secrets/a.age: no identity matches (tried {repo.admin.path}): "
        "this file is not encrypted to your keys; ask an admin whose key it is encrypted to, "
        "or re-create it with `nixseal encrypt a`; skipped"
    )


def test_undecryptable_files_are_skipped_and_the_rest_proceed(repo: Repo, tmp_path: Path) -> None:
    _break_three_of_four(repo, tmp_path)
    r = repo.run("rekey")
    assert r.code == 1
    assert not_yours(repo) in r.err.splitlines()
    assert "rekey needed" not in r.err  # rekey cannot fix a file the admin cannot read
    assert "secrets/b.age: truncated or corrupt" in r.err
    assert "secrets/c.age: not an age file" in r.err
    assert "rekeyed 1 of 4 secrets, 3 failed" in r.err
    assert repo.age_file("c").read_bytes() == b"garbage"
    assert (
        ssh_key_tag(repo.hosts["web2"].public)
        in parse_header(repo.age_file("d").read_bytes(), "d").ssh_tags
    )


def test_dry_run_reports_what_would_fail_and_writes_nothing(repo: Repo, tmp_path: Path) -> None:
    _break_three_of_four(repo, tmp_path)
    files = {n: repo.age_file(n).read_bytes() for n in "abcd"}
    state = (repo.secrets / "secrets.state.json").read_bytes()
    dry = repo.run("rekey", "--dry-run")
    assert dry.code == 1
    assert dry.out == b"d\n"  # only what a real run would re-encrypt
    errors = [line for line in dry.err.splitlines() if line.startswith("nixseal rekey: error:")]
    assert len(errors) == 3
    assert not_yours(repo).replace("; skipped", "; would be skipped") in errors
    assert any("secrets/b.age: truncated or corrupt" in line for line in errors)
    assert any("secrets/c.age: not an age file" in line for line in errors)
    assert "would rekey 1 of 4 secrets, 3 would fail" in dry.err
    assert {n: repo.age_file(n).read_bytes() for n in "abcd"} == files
    assert (repo.secrets / "secrets.state.json").read_bytes() == state
    real = repo.run("rekey")
    # The real run fails the same files with the same messages.
    real_errors = [line for line in real.err.splitlines() if line.startswith("nixseal rekey:")]
    assert real_errors == [e.replace("; would be skipped", "; skipped") for e in errors]


def test_dry_run_with_nothing_broken_exits_0(repo: Repo) -> None:
    repo.host("web2")
    repo.write_rules({"a": ["web1", "web2"], "b": ["web1"], "c": []})
    r = repo.run("rekey", "-n")
    assert r.code == 0 and r.out == b"a\n"
    assert "would rekey 1 of 3 secrets, 2 already up to date" in r.err


def test_progress_on_stderr_for_many_files(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    names = [f"s{i:02}" for i in range(30)]
    repo.write_rules({n: [] for n in names})
    for n in names:
        repo.encrypt(n, n.encode())
    r = repo.run("rekey", "--force")
    assert "rekey: 30/30" in r.err
    assert "rekey: 3/30" in r.err


def test_unknown_name_is_an_error(repo: Repo) -> None:
    r = repo.run("rekey", "zzz")
    assert r.code == 1 and "no secret 'zzz'" in r.err


@needs_age
def test_age_cli_reads_rekeyed_files_with_the_new_host_key(repo: Repo) -> None:
    repo.host("web2")
    repo.write_rules({"a": ["web2"], "b": ["web1"], "c": []})
    assert repo.run("rekey").code == 0
    assert age_decrypt(repo.hosts["web2"].private_path, repo.age_file("a")) == b"value a"


def test_many_files_are_rekeyed_by_workers_with_failures_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nixseal.repo import rekey
    from nixseal.util import pool

    monkeypatch.setattr(rekey, "FILES_PER_WORKER", 4)  # workers from a few files on
    monkeypatch.setattr(pool, "cpus", lambda: 3)
    repo = make_repo(tmp_path)
    names = [f"s{i:02}" for i in range(24)]
    repo.write_rules({n: ["web1"] for n in names})
    for n in names:
        repo.encrypt(n, n.encode())
    repo.age_file("s13").write_bytes(repo.age_file("s13").read_bytes()[:-30])
    repo.host("web2")
    repo.write_rules({n: ["web1", "web2"] for n in names})
    before = {n: repo.age_file(n).read_bytes() for n in names}
    dry = repo.run("rekey", "--dry-run")
    assert dry.code == 1
    assert dry.out.decode().split() == [n for n in names if n != "s13"]
    assert "secrets/s13.age: truncated or corrupt" in dry.err
    assert {n: repo.age_file(n).read_bytes() for n in names} == before
    r = repo.run("rekey")
    assert r.code == 1
    assert "secrets/s13.age: truncated or corrupt" in r.err
    assert "rekeyed 23 of 24 secrets, 1 failed" in r.err
    web2 = crypto.load_identity_file(repo.hosts["web2"].private_path)
    for n in names:
        if n != "s13":
            assert crypto.decrypt(repo.age_file(n).read_bytes(), web2, n) == n.encode()


def test_a_missing_file_fails_the_rekey_naming_the_command_that_creates_it(repo: Repo) -> None:
    # A generated secret gets its first value from rotate, as `check` says too.
    repo.write_rules({"a": ["web1"], "b": ["web1"], "c": []})
    with repo.rules.open("a") as f:
        f.write('[secrets.gen]\ngenerator = "hex"\n[secrets.manual]\n')
    r = repo.run("rekey")
    assert r.code == 1  # CI must not pass a secret the hosts cannot get
    assert (
        "nixseal rekey: error: secrets/gen.age is missing; nothing to rekey "
        "(create it: nixseal rotate gen)"
    ) in r.err.splitlines()
    assert "(create it: nixseal edit manual)" in r.err
    assert r.err.splitlines()[-1].endswith(", 2 missing")
    assert "fix: nixseal rotate gen" in repo.run("check").text
