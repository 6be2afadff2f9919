from __future__ import annotations

import datetime
import re
from pathlib import Path

import pytest
from _admin import make_repo
from conftest import make_age_key, make_ssh_key
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nixseal.errors import RulesError
from nixseal.models.repo import Generator, GeneratorKind
from nixseal.repo.rules import (
    check_secret_name,
    display_path,
    find_rules,
    load_rules,
    parse_rules,
)

AGE1 = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"
AGE2 = "age1lggyhqrw2nlhcxprm67z43rta597azn8gknawjehu9d9dl0jq3yqqvfafg"
SSH1 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKV1n6zQ9nPH5u0fP1S3G8ZcNfUuxnNk3mZPkvF4fJgV root@web1"
SSH2 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl root@web2"

FULL = f"""
version = 1
[admins]
alice = "{AGE1}"
[hosts.web1]
key = "{SSH1}"
[hosts.web2]
key = "{SSH2}"
[users.carol]
key = "{AGE2}"
[groups]
web = ["web1", "web2"]
all = ["@web"]
[secrets."grafana/admin-password"]
hosts = ["@web", "web1"]
users = ["carol"]
generator = {{ kind = "password", length = 40 }}
rotate_after = "90d"
[secrets.tls]
hosts = ["web2"]
source = "op://Infra/tls/key"
armor = true
"""


def rules_at(tmp_path: Path, text: str) -> Path:
    d = tmp_path / "secrets"
    d.mkdir(exist_ok=True)
    (d / "secrets.toml").write_text(text)
    return d / "secrets.toml"


def error_of(tmp_path: Path, text: str) -> str:
    with pytest.raises(RulesError) as err:
        load_rules(rules_at(tmp_path, text))
    return str(err.value)


def test_full_example_loads(tmp_path: Path) -> None:
    rules = load_rules(rules_at(tmp_path, FULL))
    s = rules.secrets["grafana/admin-password"]
    assert s.hosts == ("web1", "web2")
    assert s.users == ("carol",)
    assert s.generator == Generator(GeneratorKind.PASSWORD, 40)
    assert s.rotate_after == datetime.timedelta(days=90)
    assert rules.groups["all"] == ("web1", "web2")
    refs = rules.recipients_for("grafana/admin-password")
    assert [(r.kind, r.name) for r in refs] == [
        ("admin", "alice"),
        ("host", "web1"),
        ("host", "web2"),
        ("user", "carol"),
    ]
    tls = rules.secrets["tls"]
    assert tls.source == "op://Infra/tls/key" and tls.armor and tls.generator is None
    assert rules.file_for("grafana/admin-password") == rules.dir / "grafana/admin-password.age"


def test_malformed_toml_names_line_and_column(tmp_path: Path) -> None:
    msg = error_of(tmp_path, "version = 1\n[admins]\nalice = = 3\n")
    assert "secrets/secrets.toml: malformed TOML" in msg
    assert "line 3, column" in msg


@pytest.mark.parametrize(
    ("snippet", "expected"),
    [
        ('colour = "x"', "unknown top-level key 'colour'"),
        (f'[hosts.web1]\nkey = "{SSH1}"\nport = 22', "[hosts.web1] port: unknown key"),
        (
            '[secrets.a]\nhosts = ["web9"]',
            "[secrets.\"a\"] hosts: unknown host 'web9'; add [hosts.web9]",
        ),
        ('[secrets.a]\nhosts = ["@db"]', "[secrets.\"a\"] hosts: unknown group '@db'"),
        ('[secrets.a]\nusers = ["dave"]', "[secrets.\"a\"] users: unknown user 'dave'"),
        ("[secrets.a]\ncolour = 1", '[secrets."a"] colour: unknown key'),
        ('[groups]\ndb = ["nohost"]', "[groups] db: unknown host 'nohost'"),
        ('[groups]\na = ["@b"]\nb = ["@a"]', "group cycle"),
        ('[hosts.web1]\nkey = "ssh-ed25519 AAAAnotbase64!"', "[hosts.web1] key: bad recipient"),
        ('[users.bob]\nkey = "age1xyz"', "[users.bob] key: bad recipient"),
        ('[secrets.a]\ngenerator = "uuid"', "[secrets.\"a\"] generator: unknown kind 'uuid'"),
        (
            '[secrets.a]\ngenerator = { kind = "age", length = 3 }',
            "generator.length: age keys have a fixed size",
        ),
        (
            '[secrets.a]\ngenerator = "hex"\nsource = "op://v/i/f"',
            "generator or a source, not both",
        ),
        ('[secrets.a]\nsource = "op://v"', "source: bad 1Password reference"),
        ('[secrets.a]\nsource = "op://v/-i/f"', "source: bad 1Password reference"),
        (
            '[secrets.a]\ngenerator = "hex"\npush = "op://v/i/f?attribute=otp"',
            "push: cannot write through a reference with ?attribute=otp; remove it",
        ),
        ('[users.bob]\nkey = "age1xyz"', "; give the whole public key: age1..."),
        ('[secrets.a]\npush = "op://v/i/f"', "push: only a secret with a generator"),
        ('[secrets.a]\ngenerator = "hex"\npush = "op:/x"', "push: must be a 1Password reference"),
        ('[secrets.a]\nrotate_after = "soon"', "rotate_after: bad duration 'soon'"),
        ('[secrets.a]\narmor = "yes"', "armor: must be true or false"),
        (
            '[secrets.a]\nformat = "xml"',
            '[secrets."a"] format: must be one of binary, json, yaml, toml, dotenv, ini',
        ),
        ("version = 2", "only version 1 is known"),
        (
            '[secrets.a]\ngenerator = { kind = "hex", command = "x" }',
            "generator.command: unknown key for a hex generator (kind, length)",
        ),
        (
            '[secrets.a]\ngenerator = { command = "../gen.sh", outputs = ["v"] }',
            "generator.command: '../gen.sh' must be a path relative to the rules file's "
            "directory, without '..'",
        ),
        (
            '[secrets.a]\ngenerator = { command = "/bin/gen", outputs = ["v"] }',
            "generator.command: '/bin/gen' must be a path relative",
        ),
        ('[secrets.a]\ngenerator = { command = "g.sh" }', "generator.outputs: missing"),
        (
            '[secrets.a]\ngenerator = { command = "g.sh", outputs = ["v", "p"], public = ["q"] }',
            "generator.public: 'q' is not one of outputs",
        ),
        (
            '[secrets.a]\ngenerator = { command = "g.sh", outputs = ["p"], public = ["p"] }',
            "generator.outputs: needs a secret output (one not in public)",
        ),
        (
            '[secrets.a]\ngenerator = { command = "g.sh", outputs = ["a b"] }',
            "generator.outputs: bad name 'a b'",
        ),
        (
            '[secrets.a]\ngenerator = { command = "g.sh", outputs = ["v"], inputs = ["nope"] }',
            "[secrets.\"a\"] generator.inputs: unknown secret 'nope'",
        ),
        (
            '[secrets.a]\ngenerator = { command = "g.sh", outputs = ["v", "x"] }\n[secrets."a.x"]',
            "generator.outputs: output 'x' would be secret 'a.x', which the rules already have",
        ),
        (
            '[secrets.pw]\n[secrets.a]\ngenerator = { kind = "htpasswd", password = "pw" }',
            "generator.user: must be a user name without ':'",
        ),
        (
            '[secrets.a]\ngenerator = { kind = "htpasswd", user = "u" }',
            "generator.password: missing",
        ),
        (
            '[secrets.ca]\n[secrets.a]\ngenerator = { kind = "cert", ca = "ca", names = ["x.org"] }',
            '[secrets."a"] generator.ca: \'ca\' has no generator = { kind = "ca" }',
        ),
        (
            '[secrets.ca]\ngenerator = "ca"\n[secrets.a]\n'
            'generator = { kind = "cert", ca = "ca", names = ["bad name"] }',
            "generator.names: must be a list of DNS names",
        ),
        (
            '[secrets.a]\ngenerator = { kind = "ca", days = 0 }',
            "generator.days: must be an integer",
        ),
        (
            '[secrets.a]\ngenerator = { command = "g.sh", outputs = ["v"], inputs = ["b"] }\n'
            '[secrets.b]\ngenerator = { command = "g.sh", outputs = ["v", "w"], inputs = ["a"] }',
            '[secrets."a"] generator: made from itself: a -> b -> a',
        ),
        (
            '[secrets.a]\ngenerator = { command = "g.sh", outputs = ["v"], inputs = ["a"] }',
            '[secrets."a"] generator: made from itself: a -> a',
        ),
    ],
)
def test_bad_rules_name_file_table_and_key(tmp_path: Path, snippet: str, expected: str) -> None:
    admins = f'[admins]\nalice = "{AGE1}"\n'
    # top-level keys must come before the first table
    text = admins + snippet if snippet.startswith("[") else snippet + "\n" + admins
    msg = error_of(tmp_path, text + "\n")
    # The file is named as the user would type it, relative to where they are.
    assert msg.startswith(display_path(tmp_path / "secrets" / "secrets.toml") + ": ")
    assert expected in msg


@pytest.mark.parametrize("name", ["../x", "/abs", "a//b", "a/./b", "a/../../b", "", "sp ace", "a/"])
def test_hostile_secret_names_are_rejected(tmp_path: Path, name: str) -> None:
    text = f'[admins]\nalice = "{AGE1}"\n[secrets."{name}"]\n'
    assert "bad secret name" in error_of(tmp_path, text)


def test_real_keys_are_accepted(tmp_path: Path) -> None:
    age = make_age_key(tmp_path)
    rsa = make_ssh_key(tmp_path, "rsa")
    text = f'[admins]\na = "{age.public}"\nb = "{rsa.public}"\n[secrets.x]\n'
    rules = load_rules(rules_at(tmp_path, text))
    assert len(rules.recipients_for("x")) == 2


def test_find_rules_from_subdirectories(tmp_path: Path) -> None:
    path = rules_at(tmp_path, FULL)
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    assert find_rules(deep) == path
    assert find_rules(path.parent) == path
    with pytest.raises(RulesError, match="nixseal init"):
        find_rules(tmp_path.parent.parent / "nonexistent-dir-for-test")


def test_unknown_secret_is_named_with_fix(tmp_path: Path) -> None:
    rules = load_rules(rules_at(tmp_path, FULL))
    with pytest.raises(RulesError, match=r'no secret .db.; add a \[secrets."db"\]'):
        rules.file_for("db")


# --- property-based tests -------------------------------------------------

_segment = st.from_regex(r"[A-Za-z0-9._-]{1,12}", fullmatch=True).filter(
    lambda s: s not in (".", "..")
)
_names = st.lists(_segment, min_size=1, max_size=4).map("/".join)
_host_names = st.lists(
    st.from_regex(r"[a-z][a-z0-9-]{0,8}", fullmatch=True), min_size=1, max_size=4, unique=True
)
_KEYS = [SSH1, SSH2, AGE2]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    names=st.lists(_names, min_size=1, max_size=5, unique=True), hosts=_host_names, data=st.data()
)
def test_generated_rules_round_trip(
    tmp_path: Path, names: list[str], hosts: list[str], data: st.DataObject
) -> None:
    lines = ["version = 1", "[admins]", f'alice = "{AGE1}"']
    for i, h in enumerate(hosts):
        lines += [f"[hosts.{h}]", f'key = "{_KEYS[i % len(_KEYS)]}"']
    group = data.draw(st.lists(st.sampled_from(hosts), unique=True), label="group")
    lines += ["[groups]", "g = [" + ", ".join(f'"{h}"' for h in group) + "]"]
    expected: dict[str, set[str]] = {}
    for n in names:
        chosen = data.draw(st.lists(st.sampled_from([*hosts, "@g"]), unique=True), label=n)
        lines += [f'[secrets."{n}"]', "hosts = [" + ", ".join(f'"{h}"' for h in chosen) + "]"]
        expected[n] = {x for h in chosen for x in (group if h == "@g" else [h])}
    rules = parse_rules("\n".join(lines) + "\n", tmp_path / "secrets.toml")
    assert set(rules.secrets) == set(names)
    for n in names:
        assert set(rules.secrets[n].hosts) == expected[n]
        assert rules.file_for(n).resolve().is_relative_to(tmp_path.resolve())
        keys = {r.key for r in rules.recipients_for(n)}
        assert AGE1 in keys
        assert len(keys) == len(rules.recipients_for(n))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_any_text_is_rules_or_a_rules_error(text: str) -> None:
    try:
        parse_rules(text, Path("/r/secrets/secrets.toml"))
    except RulesError as err:
        assert "\n" not in str(err)
        assert "secrets.toml" in str(err)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ab./-_ \x00\\", max_size=20))
def test_secret_names_accepted_only_when_inside_the_dir(name: str) -> None:
    ok = re.fullmatch(r"[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*", name) is not None and all(
        seg not in (".", "..") for seg in name.split("/")
    )
    try:
        check_secret_name(name, "t")
    except RulesError:
        assert not ok
    else:
        assert ok
        base = Path("/base")
        assert (base / f"{name}.age").resolve().is_relative_to(base)


# --- hostile input found by adversarial QA --------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a = " + "[" * 3000 + "]" * 3000, "malformed TOML: arrays or tables nested too deeply"),
        ("a = " + "1" * 5000, "malformed TOML: Exceeds the limit (4300 digits)"),
        ("version = true", "version = True: only version 1 is known"),
        ('[secrets.x]\nrotate_after = "99999999999y"', "rotate_after: duration '99999999999y' is"),
        (f'[secrets.x]\nrotate_after = "{"9" * 5000}d"', "rotate_after: duration '999"),
        ('[secrets.x]\nrotate_after = "000d"', "rotate_after: bad duration '000d'"),
        (f'[secrets."{"a" * 252}"]', "a segment is longer than 251 characters"),
        (f'[secrets."d/{"a" * 300}/x"]', "a segment is longer than 251 characters"),
    ],
)
def test_pathological_rules_are_one_rules_error(tmp_path: Path, text: str, expected: str) -> None:
    msg = error_of(tmp_path, text + "\n")
    assert msg.startswith("secrets/secrets.toml: ") or msg.startswith(str(tmp_path))
    assert expected in msg and "\n" not in msg


def test_longest_secret_name_still_fits_a_file_name(tmp_path: Path) -> None:
    rules = parse_rules(f'[secrets."{"a" * 251}"]\n', tmp_path / "secrets.toml")
    assert len(rules.file_for("a" * 251).name) == 255


@pytest.mark.parametrize("name", ["../x", "/etc/passwd", 'a"b', ""])
def test_hostile_name_on_the_command_line_is_called_that(tmp_path: Path, name: str) -> None:
    rules = load_rules(rules_at(tmp_path, FULL))
    with pytest.raises(RulesError, match=r"^bad secret name") as err:
        rules.file_for(name)
    assert "add a [secrets" not in str(err.value)  # no advice to add a name that cannot be


_BAD_RULES = {
    "malformed": "version = 1\n[admins\n",
    "hosts = 3": "hosts = 3\n",
    "key = 5": "[admins]\nalice = 5\n",
    "host without key": f'[admins]\nalice = "{AGE1}"\n[hosts.web1]\n',
    "hosts as string": f'[admins]\nalice = "{AGE1}"\n[hosts.web1]\nkey = "{SSH1}"\n'
    '[secrets.db]\nhosts = "web1"\n',
    "rotate_after banana": '[secrets.db]\nrotate_after = "banana"\n',
    "generator kind": '[secrets.db]\ngenerator = { kind = "x" }\n',
    "unknown host": '[secrets.db]\nhosts = ["web9"]\n',
    "hostile name": '[secrets."../x"]\n',
    "deep": "a = " + "[" * 3000 + "]" * 3000 + "\n",
    "huge int": "a = " + "1" * 5000 + "\n",
}
_VERBS = [
    ("check",),
    ("audit", "--json"),
    ("rekey", "--force"),
    ("decrypt", "db"),
    ("encrypt", "db"),
    ("edit", "db"),
    ("rotate", "db"),
    ("pull",),
    ("host", "add", "web2", AGE2),
]


@pytest.mark.parametrize("verb", _VERBS, ids=lambda v: v[0])
@pytest.mark.parametrize("rules_text", _BAD_RULES.values(), ids=list(_BAD_RULES))
def test_every_verb_reports_bad_rules_in_one_line_and_changes_nothing(
    tmp_path: Path, rules_text: str, verb: tuple[str, ...]
) -> None:
    from _admin import run_cli

    path = rules_at(tmp_path, rules_text)
    (path.parent / "db.age").write_bytes(b"age-encryption.org/v1\n-> X25519 x\nbody\n--- mac\n")
    (path.parent / "secrets.state.json").write_text('{"version": 1, "secrets": {}}\n')
    before = {p: p.read_bytes() for p in path.parent.iterdir()}
    key = make_age_key(tmp_path)
    r = run_cli("-i", str(key.path), *verb, stdin=b"plaintext-value", cwd=tmp_path)
    assert r.code == 1
    assert len(r.err.splitlines()) == 1
    assert r.err.startswith(f"nixseal {verb[0]}: error: secrets/secrets.toml: ")
    assert "plaintext-value" not in r.err and r.out == b""
    assert {p: p.read_bytes() for p in path.parent.iterdir()} == before


def test_a_mistyped_name_gets_the_nearest_names(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    repo.write_rules({"grafana/admin-password": ["web1"], "grafana/db": ["web1"]})
    r = repo.run("decrypt", "grafana/admin-pasword")
    assert r.code == 1
    assert r.err == (
        "nixseal decrypt: error: secrets/secrets.toml: no secret 'grafana/admin-pasword'; "
        "did you mean 'grafana/admin-password'?\n"
    )
    r = repo.run("decrypt", "nothing-like-it")
    assert 'add a [secrets."nothing-like-it"] table to the rules' in r.err
    with repo.rules.open("a") as f:
        f.write('[secrets.typo]\nhosts = ["web01"]\n[secrets.group]\nhosts = ["@webs"]\n')
    r = repo.run("check")
    assert r.code == 1
    assert "[secrets.\"typo\"] hosts: unknown host 'web01'; did you mean 'web1'?" in r.err


def test_generator_outputs_and_dependencies(tmp_path: Path) -> None:
    text = f"""
    [admins]
    alice = "{AGE1}"
    [hosts.web1]
    key = "{SSH1}"
    [secrets."wg/psk"]
    generator = "base64"
    [secrets."wg/web1"]
    hosts = ["web1"]
    generator = {{ command = "gen/wg.sh", inputs = ["wg/psk"], prompts = ["note"], outputs = ["private", "conf", "public", "peer"], public = ["public", "peer"] }}
    [secrets."pki/ca"]
    generator = {{ kind = "ca" }}
    [secrets."pki/web1"]
    generator = {{ kind = "cert", ca = "pki/ca", names = ["web1.example", "web1.example"] }}
    [secrets."web/admin"]
    generator = "password"
    [secrets."web/htpasswd"]
    generator = {{ kind = "htpasswd", password = "web/admin", user = "admin", public = true }}
    [secrets.tunnel]
    generator = "wireguard"
    """
    rules = parse_rules(text.replace("\n    ", "\n"), tmp_path / "secrets.toml")
    gen = rules.secret("wg/web1").generator
    assert gen == Generator(
        GeneratorKind.COMMAND,
        inputs=("wg/psk",),
        command="gen/wg.sh",
        prompts=("note",),
        outputs=("private", "conf", "public", "peer"),
        public=("public", "peer"),
    )
    # The first secret output is the secret; the others secrets of their own
    # with the same readers, given their value by the secret's generator.
    assert rules.outputs_of("wg/web1") == (
        {"private": "wg/web1", "conf": "wg/web1.conf"},
        {"public": "wg/web1", "peer": "wg/web1.peer"},
    )
    conf = rules.secret("wg/web1.conf")
    assert (conf.hosts, conf.part_of, conf.output) == (("web1",), "wg/web1", "conf")
    assert rules.file_for("wg/web1.conf") == tmp_path / "wg/web1.conf.age"
    assert rules.public_names() == [
        "pki/ca", "pki/web1", "tunnel", "web/htpasswd", "wg/web1", "wg/web1.peer",
    ]  # fmt: skip
    assert rules.secret("pki/web1").generator.names == ("web1.example",)  # type: ignore[union-attr]
    assert rules.derived_from("wg/web1.conf") == ("wg/psk",)
    assert rules.dependents("pki/ca") == ["pki/web1"]
    assert rules.dependents("web/admin") == ["web/htpasswd"]
    assert rules.in_order(["pki/web1", "wg/web1", "pki/ca", "wg/psk"]) == [
        "pki/ca", "pki/web1", "wg/psk", "wg/web1",
    ]  # fmt: skip


def test_dependents_come_in_dependency_order(tmp_path: Path) -> None:
    text = f"""
[admins]
alice = "{AGE1}"
[secrets.root]
generator = "hex"
[secrets.c]
generator = {{ command = "g.sh", outputs = ["v"], inputs = ["b", "root"] }}
[secrets.b]
generator = {{ command = "g.sh", outputs = ["v", "extra"], inputs = ["root"] }}
[secrets.d]
generator = {{ command = "g.sh", outputs = ["v"], inputs = ["b.extra"] }}
"""
    rules = parse_rules(text, tmp_path / "secrets.toml")
    assert rules.dependents("root") == ["b", "c", "d"]
    assert rules.dependents("b.extra") == ["c", "d"]
