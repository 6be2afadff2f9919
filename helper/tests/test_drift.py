"""drift.Inspector: staleness from headers and the state file, without keys."""

from __future__ import annotations

from pathlib import Path

import pytest
from _admin import Repo, make_repo
from conftest import make_age_key

from nixseal.age import crypto
from nixseal.repo import drift
from nixseal.repo.rules import load_rules
from nixseal.repo.state import State


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    r = make_repo(tmp_path)
    r.write_rules({"a": ["web1"]})
    return r


def inspect(repo: Repo, keys: list[str]) -> drift.Drift:
    """Inspect secret a after another tool encrypted it to keys (nothing recorded)."""
    data = crypto.encrypt(b"v", [crypto.parse_recipient(k, "t") for k in keys])
    rules = load_rules(repo.rules)
    return drift.Inspector(rules, State.load(rules)).inspect("a", data)


def test_unrecorded_file_with_matching_counts_is_unverified(repo: Repo) -> None:
    d = inspect(repo, [repo.admin.public, repo.hosts["web1"].public])
    assert d.status == drift.UNVERIFIED and d.needs_rekey
    assert [(r.ref.name, r.present) for r in d.readers] == [("alice", None), ("web1", True)]


def test_no_x25519_stanza_means_age_readers_are_missing(repo: Repo) -> None:
    d = inspect(repo, [repo.hosts["web1"].public])
    assert d.status == drift.STALE
    assert [r.label for r in d.missing] == ["admin alice"]


def test_fewer_x25519_stanzas_than_age_readers_is_stale(repo: Repo, tmp_path: Path) -> None:
    bob = make_age_key(tmp_path, "bob.txt")
    repo.rules.write_text(
        repo.rules.read_text().replace("[admins]\n", f'[admins]\nbob = "{bob.public}"\n')
    )
    d = inspect(repo, [bob.public, repo.hosts["web1"].public])
    assert d.status == drift.STALE and d.needs_rekey
    assert d.missing == ()  # which of the two is not knowable from the header
    assert "encrypted to 1 age key(s), the rules list 2" in d.detail


def test_more_x25519_stanzas_than_age_readers_is_an_extra_reader(
    repo: Repo, tmp_path: Path
) -> None:
    mallory = make_age_key(tmp_path, "m.txt")
    d = inspect(repo, [repo.admin.public, mallory.public, repo.hosts["web1"].public])
    assert d.status == drift.STALE
    assert d.extra == ("1 unidentified age key(s)",)
