"""The generation record: validated field by field, and values taken back
from the previous generation only when their content is verified.

A secret's owner can rewrite their own copy of it; whoever damages a record
(another version, a disk error, a hand edit) must not make the install copy
any file into a secret. Both are attacked: the owner by a second user
(alice, uid 1234) rewriting her copy, in a loop while installs run; the
record by hundreds of mutations of a valid one.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import time
from pathlib import Path
from typing import Any

import pytest
from _activation import Scene, make_scene, tree
from _attacker import ALICE, as_user, attacker
from conftest import needs_root

VALUE = b"the real value"
EVIL = b"alice's value!"  # same length as VALUE


@pytest.fixture
def scene(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Scene:
    s = make_scene(tmp_path, capsys)
    s.add("a", VALUE, owner="alice", mode="0400", restartUnits=["a.service"])
    s.add("b", b"bee")
    s.template("t", "token=@A@", mode="0400")  # root's, rendered from alice's secret
    s.doc["placeholders"] = {"a": "@A@"}
    return s


def _rewrite(value: bytes) -> None:
    """As alice, in the generation's directory: her copy gets value."""
    os.chmod("a", 0o600)
    with open("a", "r+b") as f:
        f.write(value)
        f.truncate()


@needs_root
@pytest.mark.parametrize("tamper", [EVIL, EVIL + b" longer", b"", VALUE[:-1] + b"X"])
def test_a_copy_rewritten_by_its_owner_is_not_taken_back(scene: Scene, tamper: bytes) -> None:
    assert scene.install().code == 0
    as_user(ALICE, scene.root / "run/secrets.d/1", lambda: _rewrite(tamper))
    r = scene.install()
    assert r.code == 0, r.err
    assert scene.live("a").read_bytes() == VALUE
    assert scene.live("rendered/t").read_bytes() == b"token=" + VALUE
    (warning,) = r.events_named("previous copy altered; decrypted again")
    assert warning["name"] == "a" and warning["level"] == "warning"
    # a new owner gets the verified value, never the rewritten one
    as_user(ALICE, scene.root / "run/secrets.d/2", lambda: _rewrite(tamper))
    scene.secrets[0]["owner"] = "bob"
    assert scene.install().code == 0
    assert scene.live("a").read_bytes() == VALUE and scene.live("a").stat().st_uid == 1300


@needs_root
def test_an_owner_rewriting_her_copy_in_a_loop_never_reaches_root_files(scene: Scene) -> None:
    assert scene.install().code == 0
    mp = scene.root / "run/secrets.d"
    runs = rounds = 0
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:
        live = mp / str(scene.current())
        with attacker(ALICE, live, lambda i: _rewrite(EVIL)) as tally:
            time.sleep(0.005)
            scene.set_value("b", f"bee{runs}".encode())
            r = scene.install()
        assert r.code == 0, r.err
        rendered = scene.live("rendered/t").read_bytes()
        assert rendered == b"token=" + VALUE, rendered
        runs += 1
        rounds += tally.rounds
    print(f"{runs} installs against {rounds} rewrites")
    assert rounds > 0


def _record_path(scene: Scene) -> Path:
    return scene.root / f"run/secrets.d/{scene.current()}.json"


def test_a_record_pointing_outside_the_generation_copies_nothing(scene: Scene) -> None:
    scene.secrets[0].pop("owner")  # also without root
    assert scene.install().code == 0
    secret_file = scene.tmp / "root-only"
    secret_file.write_bytes(b"ROOT ONLY")
    secret_file.chmod(0o600)
    path = _record_path(scene)
    doc = json.loads(path.read_text())
    digest = hashlib.sha256(Path(scene.secrets[0]["file"]).read_bytes()).hexdigest()
    depth = len(path.parent.relative_to("/").parts) + 1
    doc["entries"]["secret:a"]["rel"] = "../" * depth + str(secret_file).lstrip("/")
    doc["entries"]["secret:a"]["source"] = digest
    path.write_text(json.dumps(doc))
    r = scene.install()
    assert r.code == 0, r.err
    assert scene.live("a").read_bytes() == VALUE
    assert b"ROOT ONLY" not in scene.live("rendered/t").read_bytes()


JUNK: list[Any] = [None, 0, -1, 2**70, True, "", "x", "../../../etc/shadow", "/etc/shadow"]
JUNK += [[], {}, ["a"], {"x": 1}, "a" * 300, "\u0000", "0" * 64, "secret:a", 1.5]


def _mutate(doc: Any, rng: random.Random) -> Any:
    """doc with one random node replaced, removed or extended."""
    doc = json.loads(json.dumps(doc))
    paths: list[list[Any]] = []

    def walk(node: Any, at: list[Any]) -> None:
        paths.append(at)
        items = (
            node.items()
            if isinstance(node, dict)
            else enumerate(node)
            if isinstance(node, list)
            else []
        )
        for k, v in items:
            walk(v, [*at, k])

    walk(doc, [])
    at = rng.choice(paths)
    if not at:
        return rng.choice(JUNK)
    parent = doc
    for k in at[:-1]:
        parent = parent[k]
    what = rng.randrange(4)
    if what == 0 and isinstance(parent, dict):
        del parent[at[-1]]
    elif what == 1 and isinstance(parent, dict):
        parent[rng.choice(["unknown", "rel", "path", "secret:zz", "key"])] = rng.choice(JUNK)
    else:
        parent[at[-1]] = rng.choice(JUNK)
    return doc


def test_every_mutation_of_a_record_is_untrusted_or_harmless(scene: Scene) -> None:
    scene.secrets[0].pop("owner")
    scene.add("n/c", b"nested", path="/etc/app/c.conf")
    assert scene.install().code == 0
    values = {"a": VALUE, "b": b"bee", "n/c": b"nested"}
    rng = random.Random("records")
    outside = {p: tree(p) for p in (scene.root / "etc", scene.tmp / "src")}
    mutations = accepted = 0
    deadline = time.monotonic() + 4.0
    while time.monotonic() < deadline:
        path = _record_path(scene)
        doc = json.loads(path.read_text())
        bad = _mutate(doc, rng)
        for _ in range(rng.randrange(3)):
            bad = _mutate(bad, rng) if isinstance(bad, dict) else bad
        path.write_text(json.dumps(bad))
        from nixseal.engine import record as record_mod

        accepted += (
            record_mod.Record.from_json(json.dumps(bad).encode(), "/run/secrets") is not None
        )
        r = scene.install()
        assert r.code == 0, (bad, r.err)
        assert "Traceback" not in r.err and "internal error" not in r.err
        assert {n: scene.live(n).read_bytes() for n in values} == values, bad
        assert scene.live("rendered/t").read_bytes() == b"token=" + VALUE
        assert (scene.root / "etc/app/c.conf").read_bytes() == b"nested"
        for p, before in outside.items():
            now = tree(p)
            now.pop("app/c.conf", None)
            before.pop("app/c.conf", None)
            assert now == before, bad
        mutations += 1
    print(f"{mutations} record mutations, {accepted} still valid records")
    assert mutations > 50


def test_parse_takes_only_what_this_version_writes() -> None:
    from nixseal.engine import record as record_mod

    good = {
        "version": record_mod.VERSION,
        "key": "00" * 32,
        "entries": {
            "secret:a": {
                "rel": "a",
                "path": "/run/secrets/a",
                "source": "ab" * 32,
                "mac": "cd" * 32,
                "size": 3,
                "restartUnits": ["a.service"],
                "reloadUnits": [],
            },
            "template:t": {
                "rel": "rendered/t",
                "path": "/etc/t.conf",
                "source": None,
                "mac": "cd" * 32,
                "size": 1,
                "restartUnits": [],
                "reloadUnits": [],
            },
        },
        "pending": {"restart": [], "reload": ["x.service"]},
        "unlink": [["/etc/old.conf", "old"]],
    }
    rec = record_mod.Record.from_json(json.dumps(good).encode(), "/run/secrets")
    assert rec is not None
    assert rec.entries["secret:a"].mac == bytes.fromhex("cd" * 32)
    assert rec.pending_reload == ("x.service",) and rec.unlink == (("/etc/old.conf", "old"),)
    bad_entries = [
        {"rel": "../a"},
        {"rel": "/a"},
        {"rel": "b"},  # not where the manifest's rules put secret "a"
        {"path": "/run/secrets/b"},  # rel "a" is not that path's place
        {"path": "relative"},
        {"source": "zz"},
        {"mac": "00"},
        {"size": -1},
        {"size": True},
        {"restartUnits": ["not a unit"]},
        {"extra": 1},
    ]
    for change in bad_entries:
        doc = json.loads(json.dumps(good))
        doc["entries"]["secret:a"].update(change)
        assert record_mod.Record.from_json(json.dumps(doc).encode(), "/run/secrets") is None, change
    for key, value in [("version", 1), ("key", "00"), ("unlink", [["/run/secrets/x", "x"]])]:
        doc = json.loads(json.dumps(good))
        doc[key] = value
        assert record_mod.Record.from_json(json.dumps(doc).encode(), "/run/secrets") is None, key
    assert record_mod.Record.from_json(b"\xff", "/run/secrets") is None
    assert record_mod.Record.from_json(b"[]", "/run/secrets") is None


@needs_root
def test_a_record_others_could_have_written_is_untrusted(scene: Scene) -> None:
    scene.secrets[0].pop("owner")
    assert scene.install().code == 0
    path = _record_path(scene)
    os.chown(path, ALICE, ALICE)
    scene.doc["identityPaths"] = [str(scene.tmp / "no-key")]  # reuse only from a trusted record
    r = scene.install()
    assert r.code == 1  # nothing reused: every secret needs a key
    assert {e["name"] for e in r.events_named("failed")} >= {"a", "b"}


def test_a_sealed_entry_keeps_its_files_digest_and_older_records_stay_trusted() -> None:
    from nixseal.engine import record as rec

    plain = rec.Entry("a", "/run/secrets/a", "0" * 64, bytes(32), 3, ("a.service",), ())
    sealed = plain._replace(sealed=bytes(range(32)))
    data = rec.Record(
        bytes(32), {"secret:a": sealed, "secret:b": plain._replace(rel="b", path="/run/secrets/b")}
    ).to_json()
    back = rec.Record.from_json(data, "/run/secrets")
    assert back is not None
    assert back.entries["secret:a"].sealed == bytes(range(32))
    assert back.entries["secret:b"].sealed is None
    # Written only for sealed entries: a record of an earlier version has no such field.
    doc = json.loads(data)
    assert "sealed" not in doc["entries"]["secret:b"]
    # ...and none this version would not write.
    for bad in (None, "00", 5):
        doc["entries"]["secret:b"]["sealed"] = bad
        assert rec.Record.from_json(json.dumps(doc).encode(), "/run/secrets") is None


def test_a_sealed_copy_altered_is_not_kept(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    creds = tmp_path / "creds"
    creds.write_text("#!/bin/sh\necho sealed-$(cat | wc -c)-$$\n")
    creds.chmod(0o755)
    s = make_scene(tmp_path, capsys, systemdCreds=str(creds))
    s.add("c", b"value", seal="c")
    assert s.install().code == 0
    (s.root / "run/secrets.d/1/c").chmod(0o600)
    (s.root / "run/secrets.d/1/c").write_bytes(b"forged")
    s.doc["identityPaths"] = [str(tmp_path / "nope")]  # it fails: the previous would be kept
    r = s.install()
    assert r.code == 1
    (warning,) = r.events_named("previous copy altered; not kept")
    assert warning["name"] == "c"
    assert not s.live("c").exists()
