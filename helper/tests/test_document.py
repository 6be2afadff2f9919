"""Secrets taking one key of a document (nixseal.util.document), installed
with real age encryption: each format, one decryption per file however
many entries take keys of it, failures that cost only the entries taking
the key, and changes noticed per entry."""

from __future__ import annotations

import configparser
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import tomlkit
import yaml
from _activation import IMPORTED, Scene, make_scene
from conftest import HELPER_DIR
from hypothesis import given, settings
from hypothesis import strategies as st

from nixseal.age import crypto
from nixseal.engine import decryption
from nixseal.util import document, pool
from nixseal.util.dotenv import parse as parse_dotenv
from nixseal.util.dotenv import quote


@pytest.fixture
def scene(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Scene:
    return make_scene(tmp_path, capsys)


@pytest.fixture
def decrypted(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The age files decrypted, one item per decryption."""
    seen: list[str] = []
    real = crypto.decrypt

    def counting(data: bytes, identities: Any, source: str) -> bytes:
        seen.append(source)
        return real(data, identities, source)

    monkeypatch.setattr(crypto, "decrypt", counting)
    return seen


# Each format's document: db/password, db/port, a flag, a list, a nested table.
DOCUMENTS = {
    "json": b'{"db": {"password": "hunter2", "port": 5432}, "debug": true,'
    b' "hosts": ["a", "b"], "ratio": 1.5}',
    "yaml": b"db:\n  password: hunter2\n  port: 5432\ndebug: true\nhosts: [a, b]\nratio: 1.5\n",
    "toml": b'debug = true\nhosts = ["a", "b"]\nratio = 1.5\n[db]\npassword = "hunter2"\n'
    b"port = 5432\n",
}
TAKEN = {
    ("db", "password"): b"hunter2",
    ("db", "port"): b"5432",
    ("debug",): b"true",
    ("hosts", "1"): b"b",
    ("ratio",): b"1.5",
}


def _add_document(
    scene: Scene, name: str, fmt: str, data: bytes, keys: dict[str, list[str]]
) -> Path:
    """One age file holding data, and an entry per key (name: key segments)."""
    file = scene.src / f"{name}.age"
    scene.encrypt(file, data)
    for entry, key in keys.items():
        scene.secrets.append({"name": entry, "file": str(file), "format": fmt, "key": key})
    return file


@pytest.mark.parametrize("fmt", sorted(DOCUMENTS))
def test_each_key_is_installed_from_one_decryption(
    scene: Scene, decrypted: list[str], fmt: str
) -> None:
    keys = {f"k{i}": list(key) for i, key in enumerate(TAKEN)}
    file = _add_document(scene, "app", fmt, DOCUMENTS[fmt], keys)
    # the whole file, as sops-nix's key = ""
    scene.secrets.append({"name": "whole", "file": str(file), "format": fmt, "key": []})
    scene.add("plain", b"binary\n")
    r = scene.install()
    assert r.code == 0, r.err
    for i, value in enumerate(TAKEN.values()):
        assert scene.live(f"k{i}").read_bytes() == value
    assert scene.live("whole").read_bytes() == DOCUMENTS[fmt]
    assert scene.live("plain").read_bytes() == b"binary\n"
    assert sorted(decrypted) == sorted([str(file), scene.secrets[-1]["file"]])


def test_dotenv_and_ini_documents(scene: Scene, decrypted: list[str]) -> None:
    env = b'# the app\nDB_PASSWORD=\'hun ter2\'\nexport_not=1\nTOKEN="a\\"b\\\\c"\n'
    ini = b"[db]\npassword = hunter2\nPort = 5432\n[DEFAULT]\nregion = eu\n"
    _add_document(scene, "env", "dotenv", env, {"pw": ["DB_PASSWORD"], "tok": ["TOKEN"]})
    _add_document(
        scene,
        "ini",
        "ini",
        ini,
        {"ini-pw": ["db", "password"], "port": ["db", "Port"], "region": ["db", "region"]},
    )
    r = scene.install()
    assert r.code == 0, r.err
    assert scene.live("pw").read_bytes() == b"hun ter2"
    assert scene.live("tok").read_bytes() == b'a"b\\c'
    assert scene.live("ini-pw").read_bytes() == b"hunter2"
    assert scene.live("port").read_bytes() == b"5432"  # option names as written
    assert scene.live("region").read_bytes() == b"eu"  # [DEFAULT] holds for every section
    assert len(decrypted) == 2


def test_missing_keys_bad_documents_and_non_scalars_fail_only_their_entries(
    scene: Scene,
) -> None:
    good = _add_document(
        scene,
        "app",
        "json",
        b'{"a": "1", "m": {"x": "2"}, "l": [1], "n": null, "b": "3"}',
        {"a": ["a"], "m": ["m"], "l": ["l"], "n": ["n"], "gone": ["nope"], "b": ["b"]},
    )
    _add_document(scene, "broken", "yaml", b"k: v\n", {"k": ["k"]})
    assert scene.install().code == 1  # m, l, n and gone fail from the start
    # the previous values stay: change the good keys, break the other document
    scene.encrypt(good, b'{"a": "1", "m": {"x": "2"}, "l": [1], "n": null, "b": "4"}')
    broken = Path(next(s["file"] for s in scene.secrets if s["name"] == "k"))
    scene.encrypt(broken, b"k: [unclosed\n  secret-text: here\n")
    r = scene.install(fmt="console")
    assert r.code == 1
    assert scene.live("a").read_bytes() == b"1" and scene.live("b").read_bytes() == b"4"
    assert scene.live("k").read_bytes() == b"v"  # kept
    lines = [line for line in r.err.splitlines() if line.startswith("[error")]
    assert len(lines) == 5, r.err
    text = "\n".join(lines)
    assert f'{good}: key "m": holds a mapping, not a string, number or boolean' in text
    assert f'{good}: key "l": holds a list' in text
    assert f'{good}: key "n": holds null' in text
    assert f'{good}: key "nope": not found in the document' in text
    assert f'{broken}: key "k": the document is not valid yaml (line ' in text
    assert "secret-text" not in r.err and "unclosed" not in r.err and "here" not in r.err


def test_a_change_to_another_key_restarts_nothing_of_this_one(scene: Scene) -> None:
    file = _add_document(scene, "app", "yaml", b"a: 1\nb: 2\n", {"a": ["a"], "b": ["b"]})
    scene.secrets[0]["restartUnits"] = ["a.service"]
    scene.secrets[1]["restartUnits"] = ["b.service"]
    assert scene.install().code == 0
    scene.encrypt(file, b"a: 1\nb: 3\n")
    r = scene.install()
    assert r.code == 0, r.err
    assert [e["name"] for e in r.events_named("changed")] == ["b"]
    assert scene.read_list("restart") == ["b.service"]
    # a key changed over the same file takes the new key's value
    scene.clear_lists()
    scene.secrets[0]["key"] = ["b"]
    assert scene.install().code == 0
    assert scene.live("a").read_bytes() == b"3"
    assert scene.read_list("restart") == ["a.service"]


def test_the_worker_pool_decrypts_each_document_once(
    scene: Scene, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(6):
        _add_document(
            scene,
            f"d{i}",
            "json",
            json.dumps({"x": i, "y": -i}).encode(),
            {f"x{i}": ["x"], f"y{i}": ["y"]},
        )
    used: list[int] = []
    real = pool.workers_for
    monkeypatch.setattr(pool, "workers_for", lambda *a: used.append(real(*a)) or used[-1])
    monkeypatch.setattr(decryption, "FILES_PER_WORKER", 1)
    r = scene.install()
    assert r.code == 0, r.err
    assert used and used[0] >= 1
    for i in range(6):
        assert scene.live(f"x{i}").read_bytes() == str(i).encode()
        assert scene.live(f"y{i}").read_bytes() == str(-i).encode()


@pytest.mark.parametrize("with_yaml", [False, True], ids=["json", "yaml"])
def test_yaml_is_imported_only_for_a_yaml_document(scene: Scene, with_yaml: bool) -> None:
    fmt = "yaml" if with_yaml else "json"
    data = b"k: v\n" if with_yaml else b'{"k": "v"}'
    _add_document(scene, "app", fmt, data, {"k": ["k"]})
    argv = ["install", "--manifest", str(scene.write()), "--root", str(scene.root), "--no-mount"]
    path = [str(HELPER_DIR), *(p for p in sys.path if p and Path(p).is_dir())]
    proc = subprocess.run(
        [sys.executable, "-S", "-c", IMPORTED, *argv],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(path)},
        capture_output=True,
        text=True,
        check=True,
    )
    modules = set(proc.stdout.split())
    assert ("yaml" in modules) is with_yaml
    assert "nixseal.util.document" in modules
    assert scene.live("k").read_bytes() == b"v"


# --- the parsers alone -------------------------------------------------------------


def test_key_text_escapes_what_the_option_escapes() -> None:
    assert document.key_text(("a/b", "c\\d", "0")) == "a\\/b/c\\\\d/0"


def test_scalars_are_written_as_their_text() -> None:
    doc = document.parse(
        "yaml", b"t: yes\nf: false\ni: -3\nx: 1.0e+3\nd: 2024-01-02\nb: !!binary AAE=\n"
    )
    assert [document.take(doc, (k,)) for k in "tfixdb"] == [
        b"true",
        b"false",
        b"-3",
        b"1000.0",
        b"2024-01-02",
        b"\0\1",
    ]
    assert document.take(document.parse("yaml", b"1: one\n"), ("1",)) == b"one"


@pytest.mark.parametrize(
    ("fmt", "data", "where"),
    [
        ("json", b'{"a": 1,\n "b": }', "(line 2, column 7)"),
        ("toml", b"a = 1\nb = \n", "(line 2, column 5)"),
        ("ini", b"no section = 1\n", "(line 1)"),
        ("yaml", b"a: [1\n", "(line 2, column 1)"),
        ("json", b"\xff", "not UTF-8"),
    ],
)
def test_a_bad_document_says_where_and_nothing_of_it(fmt: str, data: bytes, where: str) -> None:
    with pytest.raises(document.DocumentError) as err:
        document.parse(fmt, data)
    assert where in str(err.value)
    assert "section" not in str(err.value)


def test_dotenv_follows_systemds_environment_file() -> None:
    text = (
        "A=1\n# comment\n; also\n  B = spaced out  \nC='single # kept'\n"
        'D="x\\"y\\$z\\q"\nE=un\\\nwrapped\nno assignment\nF=\nG="multi\nline"\nA=last'
    )
    assert parse_dotenv(text) == {
        "A": "last",
        "B": "spaced out",
        "C": "single # kept",
        "D": 'x"y$z\\q',
        "E": "unwrapped",
        "F": "",
        "G": "multi\nline",
    }


_TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)


@settings(max_examples=60, deadline=None)
@given(value=_TEXT)
def test_any_string_a_writer_puts_in_is_taken_out_exactly(value: str) -> None:
    expected = value.encode()
    docs = {
        "json": json.dumps({"k": {"v": value}}).encode(),
        "yaml": yaml.safe_dump({"k": {"v": value}}).encode(),
        "toml": tomlkit.dumps({"k": {"v": value}}).encode(),
    }
    for fmt, data in docs.items():
        assert document.take(document.parse(fmt, data), ("k", "v")) == expected, fmt
    if "\0" in value:
        return  # no environment holds a NUL
    # dotenv: as the typed placeholder quotes it (systemd's double quotes)
    env = b"V=" + quote(value).encode() + b"\n"
    assert document.take(document.parse("dotenv", env), ("V",)) == expected


@settings(max_examples=40, deadline=None)
@given(value=st.text(st.characters(exclude_categories=("Cs", "Cc", "Zl", "Zp")), max_size=30))
def test_ini_values_configparser_writes_are_taken_out(value: str) -> None:
    value = value.strip()
    parser = configparser.RawConfigParser(interpolation=None)
    parser["s"] = {"o": value}
    out = io.StringIO()
    parser.write(out)
    assert document.take(document.parse("ini", out.getvalue().encode()), ("s", "o")) == (
        value.encode()
    )
