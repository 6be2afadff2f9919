"""nixseal/util/names.py and modules/lib/names.nix accept and refuse the same names.

The build checks secret names and unit names with the modules' patterns,
the helper with its own when it reads a rules file or a manifest. Each
string here, hostile ones included, goes through both (the modules' checks
as the modules call them, in one evaluation per list) and the verdicts
must agree, with each other and with the expected one.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from _nixeval import evaluate, nix_string
from conftest import REPO_ROOT, needs_nix
from hypothesis import given, settings
from hypothesis import strategies as st

from nixseal.engine import manifest
from nixseal.errors import RulesError
from nixseal.repo import rules
from nixseal.util.names import is_launchd_label, is_secret_name, is_unit_name

pytestmark = needs_nix

GOOD_NAMES = [
    "a",
    "db/password",
    "web1/app-token",
    "a.b",
    ".hidden",
    "..a",
    "...",
    "a..b",
    "a/.b/c",
    "x/y/z/w",
    "A-Z_0-9.",
    "-",
    "_",
    "a" * 251,
    "/".join(["ab"] * 3000),
]
BAD_NAMES = [
    "",
    ".",
    "..",
    "a/..",
    "../x",
    "a/../b",
    "./a",
    "a/.",
    "a//b",
    "/abs",
    "a/",
    "/",
    "//",
    "é",
    "naïve/x",
    "a\nb",
    "a\n",
    "\na",
    "a b",
    " a",
    "a\tb",
    "a\\b",
    "a:b",
    "a*",
    "$x",
    "${x}",
    "a" * 10_000 + "/",
    "a" * 10_000 + "/..",
]
GOOD_UNITS = [
    "x.service",
    "foo@bar.service",
    "foo@.service",
    "nginx.service",
    "sysinit.target",
    "run-secrets.mount",
    "a-b_c:d%e.socket",
    "a.b.timer",
    "dev-sda1.device",
    "x.automount",
    "x.swap",
    "x.path",
    "x.scope",
    "x.slice",
    "a\\x2db.service",
    ".service.service",
    "a" * 10_000 + ".service",
]
BAD_UNITS = [
    "",
    ".service",
    "x",
    "x.",
    "service",
    "x.servic",
    "x.services",
    "x.SERVICE",
    "x.service.d",
    "a b.service",
    "x.service\n",
    "\nx.service",
    "é.service",
    "x/y.service",
    "x.service ",
    "x.target.wants",
    "[x].service",
]

# launchd labels (macOS): restartUnits of the darwin module.
GOOD_LABELS = [
    "org.nixos.nginx",
    "com.example.app",
    "a",
    "_x",
    "0",
    "a.b-c_d",
    "x.service",
    "org.nix-community.home.nixseal",
    "a..b",
    "a.",
    "a" * 10_000,
    "homebrew.mxcl.postgresql@16",
]
BAD_LABELS = ["", ".x", "-x", "@x", "a/b", "system/a", "a b", "é", "a\n", "a:b", "a%b", "$x", " a"]


def nix_verdicts(check: str, strings: list[str]) -> list[bool]:
    """`check` (a Nix function of a string, in scope: manifestLib, optionsLib) on each string."""
    modules = REPO_ROOT / "modules" / "lib"
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "strings.json"
        data.write_text(json.dumps(strings))
        verdicts: list[bool] = evaluate(
            f"let manifestLib = import {modules / 'manifest.nix'} {{ inherit lib; }};"
            f" optionsLib = import {modules / 'options.nix'} {{ inherit lib; }};"
            f" check = {check};"
            f" in map check (builtins.fromJSON (builtins.readFile {nix_string(data)}))"
        )
    return verdicts


def nix_names(strings: list[str]) -> list[bool]:
    return nix_verdicts("manifestLib.goodName", strings)


def nix_units(strings: list[str]) -> list[bool]:
    return nix_verdicts("optionsLib.unitNameType.check", strings)


def nix_labels(strings: list[str]) -> list[bool]:
    return nix_verdicts("optionsLib.launchdLabelType.check", strings)


def python_name(name: str) -> bool:
    verdict = is_secret_name(name)
    assert manifest.is_name(name) == verdict, name
    return verdict


def python_unit(unit: str) -> bool:
    return is_unit_name(unit)


def rules_accept(name: str) -> bool:
    try:
        rules.check_secret_name(name, "secrets.toml")
    except RulesError:
        return False
    return True


def test_fixed_names_agree() -> None:
    strings = GOOD_NAMES + BAD_NAMES
    expected = [True] * len(GOOD_NAMES) + [False] * len(BAD_NAMES)
    assert [python_name(s) for s in strings] == expected
    assert nix_names(strings) == expected


def test_the_rules_file_refuses_what_the_pattern_refuses() -> None:
    # Its one rule more: a segment must leave room for ".age" in a file name.
    for name in GOOD_NAMES:
        long_segment = any(len(seg) > 251 for seg in name.split("/"))
        assert rules_accept(name) == (not long_segment), name
    assert not rules_accept("a" * 252)
    for name in BAD_NAMES:
        assert not rules_accept(name), name


def test_fixed_units_agree() -> None:
    strings = GOOD_UNITS + BAD_UNITS
    expected = [True] * len(GOOD_UNITS) + [False] * len(BAD_UNITS)
    assert [python_unit(s) for s in strings] == expected
    assert nix_units(strings) == expected


def test_fixed_labels_agree() -> None:
    strings = GOOD_LABELS + BAD_LABELS
    expected = [True] * len(GOOD_LABELS) + [False] * len(BAD_LABELS)
    assert [is_launchd_label(s) for s in strings] == expected
    assert nix_labels(strings) == expected


def test_nul_is_refused_by_the_helper() -> None:
    # A Nix string cannot hold NUL (it ends there), so no module writes one;
    # a manifest or rules file written by hand can.
    assert not python_name("a\0b")
    assert not python_unit("a\0.service")
    assert not rules_accept("a\0b")


# Names from segments, hostile ones among them ("", ".", "..", unicode,
# white space), from loose characters, and from any text (no NUL, which
# Nix strings cannot hold; no lone surrogates, which JSON cannot carry).
_CHARS = st.sampled_from([*"aZ09._-/", "..", " ", "\n", "\t", "\\", "é", "ß", "@", ":", "%"])
_SEGMENTS = st.sampled_from(
    ["", ".", "..", "...", ".a", "..a", "a.", "a", "a.b", "-", "é", " ", "a\nb"]
)
_NAME_LIKE = (
    st.lists(_SEGMENTS | st.lists(_CHARS, max_size=4).map("".join), min_size=1, max_size=4).map(
        "/".join
    )
    | st.lists(_CHARS, max_size=12).map("".join)
    | st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"), max_size=12)
)
_SUFFIXES = [".service", ".socket", ".target", ".mount", ".SERVICE", ".servic", "service", ""]
_UNIT_LIKE = st.builds(
    lambda stem, suffix: stem + suffix,
    st.lists(st.sampled_from([*"aZ09@%:_.-\\", " ", "/", "\n", "é"]), max_size=8).map("".join),
    st.sampled_from(_SUFFIXES),
)


@settings(max_examples=15, deadline=None)
@given(st.lists(_NAME_LIKE, min_size=30, max_size=100))
def test_generated_names_agree(names: list[str]) -> None:
    assert nix_names(names) == [python_name(n) for n in names]


@settings(max_examples=15, deadline=None)
@given(st.lists(_UNIT_LIKE, min_size=30, max_size=100))
def test_generated_units_agree(units: list[str]) -> None:
    assert nix_units(units) == [python_unit(u) for u in units]


@settings(max_examples=10, deadline=None)
@given(st.lists(_NAME_LIKE, min_size=30, max_size=100))
def test_generated_labels_agree(labels: list[str]) -> None:
    assert nix_labels(labels) == [is_launchd_label(u) for u in labels]
