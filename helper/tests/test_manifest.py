from __future__ import annotations

import json
import re
import string
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nixseal.engine import manifest
from nixseal.engine.manifest import Secret, Template
from nixseal.errors import ManifestError


def doc(**top: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "version": 1,
        "secrets": [{"name": "db/password", "file": "/nix/store/x-db.age"}],
    }
    base.update(top)
    return base


def parse(d: Any) -> manifest.Manifest:
    return manifest.parse(json.dumps(d), "m.json")


def error_of(d: Any) -> str:
    with pytest.raises(ManifestError) as info:
        parse(d)
    assert info.value.exit_code == 2
    return str(info.value)


def test_defaults_fill_what_the_module_may_leave_out() -> None:
    m = parse(doc())
    assert (m.mount_point, m.symlink_path) == ("/run/secrets.d", "/run/secrets")
    assert m.keep_generations == 1
    assert (m.use_tmpfs, m.user_mode) == (False, False)
    assert m.restart_list_path is None
    (s,) = m.secrets
    assert s == Secret(
        name="db/password",
        path="/run/secrets/db/password",
        rel="db/password",
        mode=0o400,
        owner=None,
        group=None,
        restart_units=(),
        reload_units=(),
        file="/nix/store/x-db.age",
        seal=None,
        document="db/password",  # the rules secret: its own name
    )
    assert m.systemd_creds is None


def test_full_manifest() -> None:
    m = parse(
        doc(
            mountPoint="/run/s.d",
            symlinkPath="/run/s",
            keepGenerations=3,
            useTmpfs=True,
            identityPaths=["/etc/ssh/ssh_host_ed25519_key"],
            secrets=[
                {
                    "name": "a",
                    "file": "/f/a.age",
                    "path": "/run/s/custom/a",
                    "mode": "0640",
                    "owner": "nginx",
                    "group": 100,
                    "restartUnits": ["nginx.service"],
                    "reloadUnits": ["x@y.socket"],
                },
                {
                    "name": "b",
                    "file": "/f/b.age",
                    "path": "/etc/b.conf",
                    "owner": "1000",
                    "seal": "b",
                },
            ],
            templates=[{"name": "t.env", "content": "A=@A@\n", "mode": "440"}],
            placeholders={"a": "@A@"},
            restartListPath="/run/nixos/activation-restart-list",
            reloadListPath=None,
            systemdCreds="/nix/store/x-systemd/bin/systemd-creds",
        )
    )
    a, b = m.secrets
    assert (a.seal, b.seal) == (None, "b")
    assert m.systemd_creds == "/nix/store/x-systemd/bin/systemd-creds"
    assert (a.rel, a.mode, a.owner, a.group) == ("custom/a", 0o640, "nginx", "100")
    assert a.restart_units == ("nginx.service",) and a.reload_units == ("x@y.socket",)
    assert (b.path, b.rel, b.owner) == ("/etc/b.conf", "b", "1000")
    (t,) = m.templates
    assert t == Template(
        name="t.env",
        path="/run/s/rendered/t.env",
        rel="rendered/t.env",
        mode=0o440,
        owner=None,
        group=None,
        restart_units=(),
        reload_units=(),
        content="A=@A@\n",
    )
    assert m.placeholders == {"a": "@A@"}
    assert (m.keep_generations, m.use_tmpfs) == (3, True)
    assert m.restart_list_path == "/run/nixos/activation-restart-list"
    assert [e.key for e in m.entries] == ["secret:a", "secret:b", "template:t.env"]


HOSTILE = ["../../etc/shadow", "/etc/shadow", "a//b", ".", "a/./b", "a/..", "a b", "a/", "é"]


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_are_rejected_naming_the_field(name: str) -> None:
    d = doc()
    d["secrets"].append({"name": "ok", "file": "/f"})
    d["secrets"].append({"name": "ok2", "file": "/f"})
    d["secrets"].append({"name": name, "file": "/f"})
    assert error_of(d) == f'm.json: secrets[3].name: hostile name "{name}"'


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.pop("version"), "version: missing"),
        (lambda d: d.update(version=2), "version: unsupported 2"),
        (lambda d: d.update(version=True), "version: unsupported True"),
        (lambda d: d.pop("secrets"), "secrets: missing"),
        (lambda d: d.update(secrets={}), "secrets: expected a list, got an object"),
        (lambda d: d["secrets"][0].pop("name"), "secrets[0].name: missing"),
        (lambda d: d["secrets"][0].pop("file"), "secrets[0].file: missing"),
        (lambda d: d["secrets"][0].update(file=""), "secrets[0].file: expected a non-empty"),
        (lambda d: d["secrets"][0].update(mode="0o400"), 'secrets[0].mode: bad mode "0o400"'),
        (lambda d: d["secrets"][0].update(mode="4755"), 'secrets[0].mode: bad mode "4755"'),
        (lambda d: d["secrets"][0].update(mode="999"), 'secrets[0].mode: bad mode "999"'),
        (lambda d: d["secrets"][0].update(mode=256), "secrets[0].mode: expected a non-empty"),
        (lambda d: d["secrets"][0].update(owner="a:b"), "secrets[0].owner: bad user or group"),
        (lambda d: d["secrets"][0].update(group=-1), "secrets[0].group: bad user or group"),
        (lambda d: d["secrets"][0].update(sopsFile="x"), "secrets[0]: unknown field 'sopsFile'"),
        (
            lambda d: d["secrets"][0].update(restartUnits=["nginx"]),
            "secrets[0].restartUnits[0]: bad unit name 'nginx'",
        ),
        (
            lambda d: d["secrets"][0].update(path="etc/x"),
            "secrets[0].path: 'etc/x' is not a normalized absolute path",
        ),
        (
            lambda d: d["secrets"][0].update(path="/etc/../shadow"),
            "secrets[0].path: '/etc/../shadow' is not a normalized",
        ),
        (
            lambda d: d["secrets"][0].update(path="/run/secrets.d/1/x"),
            "secrets[0].path: '/run/secrets.d/1/x' is inside mountPoint",
        ),
        (
            lambda d: d["secrets"][0].update(path="/run/secrets"),
            "secrets[0].path: '/run/secrets' is symlinkPath itself",
        ),
        (
            lambda d: d["secrets"][0].update(path="%r/x"),
            "secrets[0].path: %r is only meaningful with userMode",
        ),
        (lambda d: d.update(keepGenerations=-1), "keepGenerations: expected an integer >= 0"),
        (lambda d: d.update(keepGenerations=True), "keepGenerations: expected an integer >= 0"),
        (lambda d: d.update(useTmpfs="yes"), "useTmpfs: expected true or false, got a string"),
        (lambda d: d.update(identityPaths="/k"), "identityPaths: expected a list"),
        (lambda d: d.update(extra=1), "manifest: unknown field 'extra'"),
        (
            lambda d: d.update(symlinkPath="/run/secrets.d/live"),
            "symlinkPath: '/run/secrets.d/live' and mountPoint",
        ),
        (
            lambda d: d.update(placeholders={"nope": "@X@"}),
            'placeholders["nope"]: no secret of that name',
        ),
        (
            lambda d: d.update(templates=[{"name": "t"}]),
            "templates[0].content: missing",
        ),
        (
            lambda d: d["secrets"].append({"name": "db/password", "file": "/f"}),
            "secrets[1].path: '/run/secrets/db/password' collides with secrets[0]",
        ),
        (
            lambda d: d["secrets"].append({"name": "db", "file": "/f"}),
            "needs 'db' to be a directory, but secrets[1] (db) is a file",
        ),
        (
            lambda d: d["secrets"].append({"name": "x", "file": "/f", "path": "/etc/a\nb"}),
            "secrets[1].path: unprintable characters are not allowed",
        ),
    ],
)
def test_malformed_manifests_name_the_field(mutate: Any, message: str) -> None:
    d = doc()
    mutate(d)
    assert message in error_of(d)


def _sealed(seal: Any, creds: Any = "/bin/systemd-creds") -> dict[str, Any]:
    return doc(secrets=[{"name": "db/pw", "file": "/f", "seal": seal}], systemdCreds=creds)


@pytest.mark.parametrize(
    ("d", "message"),
    [
        (_sealed("db-pw", None), 'secrets[0].seal: "db-pw" needs systemdCreds, which is null'),
        (
            _sealed("db-pw", "bin/systemd-creds"),
            "systemdCreds: 'bin/systemd-creds' is not a normalized absolute path",
        ),
        (_sealed("db-pw", 3), "systemdCreds: expected a non-empty string, got the number 3"),
        (_sealed("db/pw"), "secrets[0].seal: bad credential name 'db/pw'"),
        (_sealed("id:x"), "secrets[0].seal: bad credential name 'id:x'"),
        (_sealed(".."), "secrets[0].seal: bad credential name '..'"),
        (_sealed("x" * 256), "secrets[0].seal: bad credential name 'xxxx"),
        (_sealed(""), "secrets[0].seal: expected a non-empty string, got an empty string"),
        (_sealed(True), "secrets[0].seal: expected a non-empty string, got a boolean"),
    ],
)
def test_bad_seals_name_the_field(d: dict[str, Any], message: str) -> None:
    assert message in error_of(d)


def _taking(fmt: Any, key: Any) -> dict[str, Any]:
    return doc(secrets=[{"name": "db/pw", "file": "/f", "format": fmt, "key": key}])


def test_a_secret_takes_a_key_of_its_document() -> None:
    (s,) = parse(_taking("yaml", ["db", "a/b", "0"])).secrets
    assert (s.format, s.key_path) == ("yaml", ("db", "a/b", "0"))
    (s,) = parse(doc()).secrets
    assert (s.format, s.key_path) == ("binary", ())
    (s,) = parse(_taking("json", [])).secrets  # the whole file
    assert (s.format, s.key_path) == ("json", ())


@pytest.mark.parametrize(
    ("d", "message"),
    [
        (
            _taking("xml", ["a"]),
            "secrets[0].format: unknown format 'xml' (expected one of binary, json, yaml, "
            "toml, dotenv, ini)",
        ),
        (_taking(["json"], ["a"]), "secrets[0].format: unknown format ['json']"),
        (_taking("binary", ["a"]), "secrets[0].key: a binary file has no keys"),
        (_taking("json", "db/pw"), "secrets[0].key: expected a list, got a string"),
        (_taking("json", ["db", ""]), "secrets[0].key[1]: expected a non-empty string"),
        (_taking("json", ["db", 3]), "secrets[0].key[1]: expected a non-empty string, got the"),
        (_taking("json", ["a\nb"]), "secrets[0].key[0]: unprintable characters"),
        (_taking("ini", ["pw"]), "secrets[0].key: a key of a ini document has 2 segments, not 1"),
        (_taking("dotenv", ["a", "b"]), "a key of a dotenv document has 1 segments, not 2"),
    ],
)
def test_bad_formats_and_keys_name_the_entry(d: dict[str, Any], message: str) -> None:
    assert message in error_of(d)


def test_systemd_creds_may_be_given_when_nothing_is_sealed() -> None:
    m = parse(_sealed(None))
    assert m.secrets[0].seal is None and m.systemd_creds == "/bin/systemd-creds"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"{", "m.json: bad JSON at line 1 column 2"),
        (b'{"version": "\xff"}', "m.json: not UTF-8 JSON"),
        (b"[]", "m.json: manifest: expected an object, got a list"),
        (b"null", "m.json: manifest: expected an object, got null"),
    ],
)
def test_not_a_manifest(data: bytes, message: str) -> None:
    with pytest.raises(ManifestError) as info:
        manifest.parse(data, "m.json")
    assert str(info.value).startswith(message)


def test_load_names_an_unreadable_file(tmp_path: Any) -> None:
    with pytest.raises(ManifestError, match=r"missing\.json: cannot read manifest"):
        manifest.load(str(tmp_path / "missing.json"))


def test_user_mode_paths_expand_runtime_dir() -> None:
    m = parse(
        doc(
            userMode=True,
            mountPoint="%r/secrets.d",
            symlinkPath="%r/secrets",
            secrets=[{"name": "a", "file": "/f", "path": "%r/elsewhere/a"}],
        )
    )
    assert m.mount_point == "%r/secrets.d"
    e = manifest.expand_runtime_dir(m, "/run/user/1000")
    assert (e.mount_point, e.symlink_path) == ("/run/user/1000/secrets.d", "/run/user/1000/secrets")
    assert e.secrets[0].path == "/run/user/1000/elsewhere/a"
    with pytest.raises(ManifestError, match="XDG_RUNTIME_DIR is not set"):
        manifest.expand_runtime_dir(m, None)


# -- properties -------------------------------------------------------------

SEGMENT = st.text(string.ascii_letters + string.digits + "._-", min_size=1, max_size=12).filter(
    lambda s: s not in {".", ".."}
)
NAMES = st.lists(SEGMENT, min_size=1, max_size=4).map("/".join)
UNITS = st.lists(
    st.from_regex(r"[a-z][a-z0-9@_-]{0,10}\.(service|socket|timer)", fullmatch=True), max_size=3
)
ACCOUNTS = st.one_of(
    st.none(),
    st.from_regex(r"[a-z_][a-z0-9_-]{0,15}", fullmatch=True),
    st.integers(0, 2**31),
)
MODES = st.integers(0, 0o777).flatmap(
    lambda m: st.sampled_from([f"{m:03o}", f"0{m:03o}"]).map(lambda t: (t, m))
)


@st.composite
def manifests(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    """A valid manifest document, and what parsing must make of it."""
    names = draw(st.lists(NAMES, max_size=6, unique_by=lambda n: n.split("/")[0]))
    secrets = []
    expect = []
    for name in names:
        mode_text, mode = draw(MODES)
        owner, group = draw(ACCOUNTS), draw(ACCOUNTS)
        restart, reload = draw(UNITS), draw(UNITS)
        secrets.append(
            {
                "name": name,
                "file": f"/nix/store/{name.replace('/', '-')}.age",
                "mode": mode_text,
                "owner": owner,
                "group": group,
                "restartUnits": restart,
                "reloadUnits": reload,
            }
        )
        expect.append(
            {
                "name": name,
                "mode": mode,
                "owner": None if owner is None else str(owner),
                "group": None if group is None else str(group),
                "restart_units": tuple(restart),
                "reload_units": tuple(reload),
            }
        )
    top = {"version": 1, "secrets": secrets, "keepGenerations": draw(st.integers(0, 50))}
    return top, {"secrets": expect, "keep": top["keepGenerations"]}


@settings(max_examples=150, deadline=None)
@given(manifests())
def test_valid_manifests_parse_to_what_they_say(case: tuple[dict[str, Any], Any]) -> None:
    d, expect = case
    m = parse(d)
    assert m.keep_generations == expect["keep"]
    assert len(m.secrets) == len(expect["secrets"])
    for s, e in zip(m.secrets, expect["secrets"], strict=True):
        got = {k: getattr(s, k) for k in e}
        assert got == e
        assert s.path == f"/run/secrets/{s.name}" and s.rel == s.name


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(JSON)
def test_any_json_is_a_manifest_or_one_manifest_error(value: Any) -> None:
    try:
        parse(value)
    except ManifestError as err:
        assert "\n" not in str(err) and str(err).startswith("m.json: ")


@settings(max_examples=200, deadline=None)
@given(
    st.fixed_dictionaries(
        {
            "name": st.text(max_size=20),
            "mode": st.text(max_size=6),
        }
    )
)
def test_fuzzed_entries_follow_the_name_and_mode_rules(entry: dict[str, str]) -> None:
    d = doc(secrets=[{**entry, "file": "/f"}])
    name_ok = bool(entry["name"]) and all(
        re.fullmatch(r"[A-Za-z0-9._-]+", seg) and seg not in {".", ".."}
        for seg in entry["name"].split("/")
    )
    mode_ok = re.fullmatch(r"0?[0-7]{3}", entry["mode"]) is not None
    if name_ok and mode_ok:
        (s,) = parse(d).secrets
        assert (s.name, s.mode) == (entry["name"], int(entry["mode"], 8))
    else:
        message = error_of(d)
        field = "name" if not name_ok else "mode"
        assert f"secrets[0].{field}:" in message


@settings(max_examples=100, deadline=None)
@given(st.lists(SEGMENT, min_size=1, max_size=4), st.integers(0, 3))
def test_dot_dot_anywhere_is_hostile(segments: list[str], at: int) -> None:
    segments.insert(min(at, len(segments)), "..")
    name = "/".join(segments)
    assert not manifest.is_name(name)
    assert f'hostile name "{name}"' in error_of(doc(secrets=[{"name": name, "file": "/f"}]))


@pytest.mark.parametrize("field", ["owner", "group"])
@pytest.mark.parametrize("value", [2**32 - 1, 2**40, "4294967295", "99999999999999"])
def test_ids_beyond_32_bits_are_manifest_errors(field: str, value: Any) -> None:
    # chown would raise OverflowError (or read -1 as "unchanged") mid-install.
    d = doc()
    d["secrets"][0][field] = value
    assert f"secrets[0].{field}: bad user or group" in error_of(d)


def test_largest_id_is_accepted() -> None:
    d = doc()
    d["secrets"][0].update(owner=2**32 - 2, group="4294967294")
    s = parse(d).secrets[0]
    assert (s.owner, s.group) == ("4294967294", "4294967294")


def test_number_too_long_for_python_is_bad_json() -> None:
    with pytest.raises(ManifestError) as info:
        manifest.parse(b'{"version": ' + b"1" * 5000 + b"}", "m.json")
    assert str(info.value).startswith("m.json: bad JSON: Exceeds the limit (4300 digits)")


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        # JSON may spell a lone surrogate; no file name or file can hold one
        (lambda d: d["secrets"][0].update(file="/f\ud800.age"), "secrets[0].file: unprintable"),
        (lambda d: d.update(identityPaths=["/k\udfff"]), "identityPaths[0]: unprintable"),
        (
            lambda d: d.update(templates=[{"name": "t", "content": "x=\ud800"}]),
            "templates[0].content: not valid Unicode",
        ),
        (
            lambda d: d.update(placeholders={"db/password": "@\ud800@"}),
            'placeholders["db/password"]: not valid Unicode',
        ),
        # a carriage return or an escape sequence would garble the one-line error
        (lambda d: d["secrets"][0].update(file="/f\r.age"), "secrets[0].file: unprintable"),
        (lambda d: d.update(mountPoint="/run/\x1b[2Jx"), "mountPoint: unprintable"),
        (lambda d: d.update(placeholders={"a\rb": "@A@"}), 'placeholders["a\\rb"]: no secret'),
    ],
)
def test_strings_no_file_or_line_can_hold_are_rejected(mutate: Any, message: str) -> None:
    d = doc()
    mutate(d)
    error = error_of(d)
    assert message in error
    assert not re.search("[\x00-\x1f\x7f\ud800-\udfff]", error)


@pytest.mark.parametrize("runtime_dir", ["", "relative/dir", "/", "//"])
def test_user_mode_needs_an_absolute_runtime_dir(runtime_dir: str) -> None:
    # "" once made %r/secrets.d into /secrets.d; "rel" into the working directory
    m = parse(doc(userMode=True, mountPoint="%r/secrets.d", symlinkPath="%r/secrets"))
    with pytest.raises(ManifestError, match="XDG_RUNTIME_DIR"):
        manifest.expand_runtime_dir(m, runtime_dir)
    # paths without %r need no runtime dir at all
    plain = parse(doc(userMode=True, mountPoint="/home/u/.s.d", symlinkPath="/home/u/.s"))
    assert manifest.expand_runtime_dir(plain, runtime_dir).mount_point == "/home/u/.s.d"


# Any code point, lone surrogates and control characters included.
ANY_TEXT = st.text(
    st.characters(exclude_categories=[]) | st.sampled_from(["\ud800", "\udfff", "\r", "\x1b"]),
    max_size=12,
)


@settings(max_examples=200, deadline=None)
@given(ANY_TEXT, ANY_TEXT)
def test_any_text_in_a_path_or_content_parses_or_is_one_manifest_error(
    path_text: str, content: str
) -> None:
    d = doc(
        secrets=[{"name": "a", "file": "/f/" + path_text}],
        templates=[{"name": "t", "content": content}],
        placeholders={"a": "@" + path_text},
    )
    try:
        m = parse(d)
    except ManifestError as err:
        assert not re.search("[\x00-\x1f\x7f\ud800-\udfff]", str(err))
        return
    # what parses can be used as a file name and rendered as bytes
    m.secrets[0].file.encode()
    m.templates[0].content.encode()
    m.placeholders["a"].encode()


# -- paths the file system cannot hold, or that one link would lead through ---


def _secret(name: str, path: str | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": name, "file": f"/nix/store/x-{name.replace('/', '-')}.age"}
    if path is not None:
        entry["path"] = path
    return entry


@pytest.mark.parametrize(
    ("outer", "inner"),
    [
        ("/etc/app/a", "/etc/app/a/b"),  # b's directory would be a's symlink
        ("/etc/app", "/etc/app/deep/b"),
        ("/etc/app/a", "/run/secrets/x"),  # control: not nested
    ],
)
def test_a_custom_path_inside_another_entrys_path_is_refused(outer: str, inner: str) -> None:
    d = doc(secrets=[_secret("a", outer), _secret("b", inner)])
    if inner.startswith(outer + "/"):
        message = error_of(d)
        assert message == (
            f"m.json: secrets[1].path: {inner!r} is inside the path of secrets[0] (a), "
            "which is a symlink"
        )
        d["secrets"].reverse()  # the same whichever comes first
        assert "is inside the path of secrets[1] (a)" in error_of(d)
    else:
        parse(d)
    templ = doc(
        secrets=[_secret("a", outer)], templates=[{"name": "t", "content": "", "path": inner}]
    )
    if inner.startswith(outer + "/"):
        assert "templates[0].path" in error_of(templ)


def test_parts_too_long_for_a_file_system_are_refused() -> None:
    long = "x" * 256
    assert error_of(doc(secrets=[_secret(f"a/{long}")])) == (
        f"m.json: secrets[0].name: a part of {('a/' + long)[:40]!r}... is longer than 255 bytes"
    )
    message = error_of(doc(secrets=[_secret("a", f"/etc/{long}/a")]))
    assert (
        message
        == f"m.json: secrets[0].path: a part of '/etc/{long[:35]}'... is longer than 255 bytes"
    )
    assert "is longer than 255 bytes" in error_of(doc(secrets=[_secret("a", f"/etc/{'é' * 128}")]))
    parse(doc(secrets=[_secret("a", f"/etc/{'x' * 255}")]))


def test_paths_too_long_or_too_deep_for_a_link_are_refused() -> None:
    too_long = "/etc" + "/" + "/".join(["y" * 200] * 21)  # 4,225 bytes
    assert error_of(doc(secrets=[_secret("a", too_long)])) == (
        f"m.json: secrets[0].path: {too_long[:40]!r}... is longer than 4095 bytes"
    )
    deep = "/" + "/".join(["d"] * 1400) + "/a"  # short, but its link's target is not
    message = error_of(doc(secrets=[_secret("a", deep)]))
    assert message.startswith(f"m.json: secrets[0].path: {deep[:40]!r}... is too deep: ")
    assert message.endswith("its symlink's target would be longer than 4095 bytes")
    parse(doc(secrets=[_secret("a", "/" + "/".join(["d"] * 500) + "/a")]))


def test_a_document_names_a_secret() -> None:
    d = doc()
    d["secrets"][0].update(document="app", format="yaml", key=["db", "password"])
    assert parse(d).secrets[0].document == "app"
    d["secrets"][0]["document"] = "../x"
    assert error_of(d) == "m.json: secrets[0].document: not a secret name: '../x'"
