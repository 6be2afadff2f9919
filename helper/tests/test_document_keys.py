"""Keys of a document that `nixseal rotate` fills from generators
(`[secrets.X.keys."a/b"] generator = ...`), every other key kept."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import tomllib
import yaml
from _admin import Repo, make_repo

from nixseal.repo.document_keys import fill
from nixseal.util import document


def _rules(repo: Repo, fmt: str, keys: str) -> None:
    repo.write_rules({"app": ["web1"]})
    with repo.rules.open("a") as f:
        f.write(f'format = "{fmt}"\n{keys}')


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    return make_repo(tmp_path)


def test_rotate_fills_the_keys_with_generators_and_keeps_the_others(repo: Repo) -> None:
    _rules(
        repo,
        "yaml",
        '[secrets."app".keys."db/password"]\ngenerator = "password"\n'
        '[secrets."app".keys."session"]\ngenerator = { kind = "hex", length = 8 }\n',
    )
    repo.encrypt("app", b"db:\n  user: app\n  password: old\nurl: https://x\n")
    r = repo.run("rotate", "app")
    assert r.code == 0, r.err
    doc = yaml.safe_load(repo.decrypt("app"))
    assert doc["db"]["user"] == "app" and doc["url"] == "https://x"
    assert doc["db"]["password"] != "old" and len(doc["db"]["password"]) >= 16
    assert len(doc["session"]) == 16 and int(doc["session"], 16) >= 0
    again = repo.run("rotate", "app")
    assert again.code == 0
    assert yaml.safe_load(repo.decrypt("app"))["db"]["password"] != doc["db"]["password"]


def test_a_document_without_a_file_yet_is_made_of_its_keys(repo: Repo) -> None:
    _rules(repo, "json", '[secrets."app".keys."api/token"]\ngenerator = "base64"\n')
    assert repo.run("rotate", "app").code == 0
    assert set(json.loads(repo.decrypt("app"))["api"]) == {"token"}


def test_rotate_refuses_a_document_that_does_not_parse(repo: Repo) -> None:
    # written while the secret was still binary
    repo.write_rules({"app": ["web1"]})
    repo.encrypt("app", b"pw = \n")
    before = repo.age_file("app").read_bytes()
    _rules(repo, "toml", '[secrets."app".keys."pw"]\ngenerator = "password"\n')
    r = repo.run("rotate", "app")
    assert r.code == 1
    assert (
        "app.age: the document is not valid toml (line 1, column 6); fix it with `nixseal edit app`"
    ) in r.err
    assert repo.age_file("app").read_bytes() == before


@pytest.mark.parametrize(
    ("fmt", "data", "check"),
    [
        ("toml", b'# kept\n[db]\nuser = "app"\npassword = "old"\n', "# kept"),
        ("dotenv", b"# kept\nUSER=app\nPW=old\n", "# kept"),
        ("ini", b"[db]\nuser = app\npassword = old\n", "user = app"),
        ("json", b'{"db": {"user": "app", "password": "old"}}', '"user": "app"'),
    ],
)
def test_fill_keeps_every_other_key(fmt: str, data: bytes, check: str) -> None:
    key = ("PW",) if fmt == "dotenv" else ("db", "password")
    out = fill(fmt, data, {key: 'n"e\\w'}, "app.age")
    assert check in out.decode()
    assert document.take(document.parse(fmt, out), key) == b'n"e\\w'
    if fmt == "toml":
        assert tomllib.loads(out.decode())["db"]["user"] == "app"


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ('[secrets."app".keys."a//b"]\ngenerator = "hex"\n', 'keys."a//b"]: not a key'),
        ('[secrets."app".keys."a"]\ngenerator = "age"\n', "generator: must be one of password"),
        ('[secrets."app".keys."a"]\nlength = 3\n', "must hold generator alone"),
        ("keys = 3\n", "keys: must be a table of keys"),
    ],
)
def test_bad_key_generators_are_rules_errors(repo: Repo, keys: str, message: str) -> None:
    _rules(repo, "json", keys)
    r = repo.run("check")
    assert r.code != 0 and message in r.err, r.err


def test_key_generators_need_a_document(repo: Repo) -> None:
    _rules(repo, "binary", '[secrets."app".keys."a"]\ngenerator = "hex"\n')
    r = repo.run("check")
    assert 'keys: needs a document: set format (e.g. "yaml")' in r.err
