"""The home-manager module modules/home-manager/secrets.nix, evaluated offline.

Per-user secrets: encrypted to the user's key in the rules, installed by a
systemd user unit running `nixseal install` in user mode into
$XDG_RUNTIME_DIR. The last test runs an evaluated manifest through the
helper as that unit would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from _nixeval import BASE_HOME as BASE_HOME_EXPR
from _nixeval import NixEvalError, evaluate, home, nix_string
from conftest import make_age_key, needs_nix, on_disk

from nixseal.age import crypto
from nixseal.engine import manifest as manifest_mod

pytestmark = needs_nix

TOKEN = 'nixseal.secrets."carol/token".file = "/var/lib/s/token.age";'


def mod(body: str) -> str:
    return "{ " + body + " }"


def failed(*modules: str) -> list[str]:
    messages: list[str] = home(*modules, select="failedAssertions")
    return messages


def test_manifest_is_user_mode_under_the_runtime_dir() -> None:
    m = home(mod(TOKEN))
    assert m["userMode"] is True
    assert (m["mountPoint"], m["symlinkPath"]) == ("%r/secrets.d", "%r/secrets")
    assert m["identityPaths"] == ["/home/carol/.ssh/id_ed25519"]
    assert (m["restartListPath"], m["reloadListPath"]) == (None, None)
    (s,) = m["secrets"]
    assert s["path"] == "%r/secrets/carol/token"
    # no chown in user mode: the user's own files, primary group
    assert (s["owner"], s["group"]) == ("carol", None)
    parsed = manifest_mod.parse(json.dumps(m), "evaluated manifest")
    assert parsed.user_mode
    expanded = manifest_mod.expand_runtime_dir(parsed, "/run/user/1000")
    assert expanded.secrets[0].path == "/run/user/1000/secrets/carol/token"


def test_user_unit_runs_the_helper_on_login_and_on_a_new_manifest() -> None:
    unit = home(mod(TOKEN), select="config.systemd.user.services.nixseal")
    manifest = home(mod(TOKEN), select="config.nixseal.manifestFile.outPath")
    assert unit["Service"]["Type"] == "oneshot"
    assert unit["Service"]["RemainAfterExit"] is True
    assert unit["Service"]["ExecStart"].endswith(f"/libexec/nixseal-install --manifest {manifest}")
    assert unit["Install"]["WantedBy"] == ["default.target"]
    assert unit["Unit"]["X-Restart-Triggers"] == [manifest]
    other = home(
        mod(TOKEN + ' nixseal.secrets."carol/token".mode = "0440";'),
        select="config.nixseal.manifestFile.outPath",
    )
    assert other != manifest


def test_no_secrets_no_unit() -> None:
    assert home(mod(""), select="config.systemd.user.services") == {}


def test_templates_render_into_the_runtime_dir() -> None:
    m = home(
        "{ config, ... }: { "
        + TOKEN
        + ' nixseal.templates.netrc.content = "password ${config.nixseal.placeholder."carol/token"}"; }'
    )
    (t,) = m["templates"]
    assert t["path"] == "%r/secrets/rendered/netrc"
    assert t["content"] == "password <nixseal:carol/token>"


def test_paths_must_be_absolute_or_under_the_runtime_dir() -> None:
    messages = failed(
        mod(
            'nixseal.secrets.a = { file = "/a.age"; path = "%r/../x"; };'
            ' nixseal.secrets.b = { file = "/b.age"; path = "/home/carol/.config/b"; };'
        )
    )
    assert any(
        m.startswith('nixseal.secrets."a".path: "%r/../x" is not a safe path') for m in messages
    )
    assert not any('"b"' in m for m in messages)


def test_empty_identity_paths_names_the_option() -> None:
    messages = failed(mod(TOKEN + " nixseal.identityPaths = [ ];"))
    assert any(m.startswith("nixseal.identityPaths is empty") for m in messages)


def test_templates_naming_unknown_secrets() -> None:
    messages = failed(mod('nixseal.templates.t.content = "<nixseal:ghost>";'))
    assert any(m.startswith('nixseal.templates."t": placeholder for "ghost"') for m in messages)


def test_typed_placeholders_in_user_templates() -> None:
    body = (
        "{ config, ... }: { "
        + TOKEN
        + ' nixseal.templates.env.content = "T=${config.nixseal.placeholders.dotenv."carol/token"}"; }'
    )
    assert home(body, select="config.nixseal.placeholders.shell") == {
        "carol/token": "<nixseal:shell:carol/token>"
    }
    (t,) = home(body)["templates"]
    assert t["content"] == "T=<nixseal:dotenv:carol/token>"
    assert failed(body) == []
    messages = failed(mod(TOKEN + ' nixseal.templates.t.content = "<nixseal:env:carol/token>";'))
    assert any(
        m.startswith('nixseal.templates."t": placeholder <nixseal:env:carol/token> has an unknown')
        for m in messages
    )


def write_rules(directory: Path, key: str) -> Path:
    rules = directory / "secrets.toml"
    rules.write_text(
        textwrap.dedent(
            f"""\
            version = 1
            [admins]
            alice = "{key}"
            [users.carol]
            key = "{key}"
            [users.dave]
            key = "{key}"
            [secrets."carol/token"]
            users = ["carol"]
            [secrets."dave/token"]
            users = ["dave"]
            """
        )
    )
    return rules


def test_rules_give_file_defaults_and_the_users_secrets(tmp_path: Path) -> None:
    rules = write_rules(tmp_path, "age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq")
    r = home(
        mod(f"nixseal.rules = {nix_string(rules)}; nixseal.declareRulesSecrets = true;"),
        select="{ given = config.nixseal.rulesSecrets; m = config.nixseal.manifest; f = failedAssertions; }",
    )
    assert r["given"] == ["carol/token"]
    assert [s["file"] for s in r["m"]["secrets"]] == [str(tmp_path / "carol/token.age")]
    assert r["f"] == []


def test_secret_of_another_user_fails_naming_secret_user_and_fix(tmp_path: Path) -> None:
    rules = write_rules(tmp_path, "age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq")
    messages = failed(
        mod(f'nixseal.rules = {nix_string(rules)}; nixseal.secrets."dave/token" = {{ }};')
    )
    assert (
        f'nixseal.secrets."dave/token": the rules file {rules} does not give secret "dave/token" '
        'to user "carol": add "carol" to users of [secrets."dave/token"] and run nixseal rekey, '
        'or remove nixseal.secrets."dave/token"'
    ) in messages
    unknown = failed(
        mod(
            f'nixseal.rules = {nix_string(rules)}; nixseal.userName = "erin";'
            ' nixseal.secrets."carol/token" = { };'
        )
    )
    assert any(m.startswith('nixseal.userName: user "erin" is not in [users]') for m in unknown)


def test_an_entry_takes_a_key_of_the_users_document(tmp_path: Path) -> None:
    rules = write_rules(tmp_path, "age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq")
    with rules.open("a") as f:
        f.write('[secrets."carol/app"]\nusers = ["carol"]\nformat = "toml"\n')
    r = home(
        mod(
            f"nixseal.rules = {nix_string(rules)};"
            ' nixseal.secrets.api = { document = "carol/app"; key = "api/token"; };'
            ' nixseal.secrets.bad = { document = "dave/token"; key = "x"; format = "json"; };'
        ),
        select="{ m = config.nixseal.manifest; f = failedAssertions; }",
    )
    api = next(s for s in r["m"]["secrets"] if s["name"] == "api")
    assert api["file"] == str(tmp_path / "carol/app.age")
    assert (api["format"], api["key"]) == ("toml", ["api", "token"])
    assert [m.split(":")[0] for m in r["f"]] == ['nixseal.secrets."bad"']
    assert 'does not give secret "dave/token" to user "carol"' in r["f"][0]


def test_package_missing_names_the_fix() -> None:
    with pytest.raises(NixEvalError) as err:
        evaluate(
            '(h.evalHome { pkgs = builtins.removeAttrs (h.fakePkgs { }) [ "nixseal" ];'
            ' modules = [ { home.username = "c"; home.homeDirectory = "/home/c";'
            ' nixseal.secrets.s.file = "/x.age"; } ]; }).config.systemd.user.services.nixseal'
        )
    assert "set nixseal.package" in str(err.value)


def test_every_option_has_a_description() -> None:
    docs = home(
        mod(""),
        select='lib.optionAttrSetToDocList (builtins.removeAttrs options [ "_module" ]).nixseal',
    )
    names = {d["name"] for d in docs if d["visible"] and not d["internal"]}
    assert {"nixseal.secrets.<name>.path", "nixseal.userName", "nixseal.manifestFile"} <= names
    for d in docs:
        if d["visible"] and not d["internal"]:
            assert d.get("description"), d["name"]


def test_user_unit_installs_with_the_users_own_key(tmp_path: Path) -> None:
    """What the user unit does: the helper in user mode, no root, no mount."""
    key = make_age_key(tmp_path, "carol.txt")
    repo = tmp_path / "repo"
    repo.mkdir()
    rules = write_rules(repo, key.public)
    enc = repo / "carol/token.age"
    enc.parent.mkdir()
    enc.write_bytes(crypto.encrypt(b"ghp_123", [crypto.parse_recipient(key.public, "test")]))
    m = home(
        "{ config, ... }: { "
        f"nixseal.rules = {rules}; nixseal.identityPaths = [ {nix_string(key.path)} ];"
        ' nixseal.secrets."carol/token" = { };'
        ' nixseal.templates.netrc.content = "password ${config.nixseal.placeholder."carol/token"}\\n"; }',
        readonly=False,  # copy the encrypted file into the store, as a real build does
    )
    manifest = tmp_path / "manifest.json"
    manifest.write_text(on_disk(json.dumps(m)))
    runtime = tmp_path / "run-user"
    runtime.mkdir(mode=0o700)
    env = dict(os.environ, XDG_RUNTIME_DIR=str(runtime))
    proc = subprocess.run(
        [sys.executable, "-m", "nixseal", "install", "--manifest", str(manifest)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    token = runtime / "secrets/carol/token"
    assert token.read_bytes() == b"ghp_123"
    assert oct(token.stat().st_mode & 0o777) == "0o400"
    assert (runtime / "secrets/rendered/netrc").read_text() == "password ghp_123\n"
    assert (runtime / "secrets").is_symlink()


def test_no_user_unit_off_linux_and_macos_and_a_warning_names_the_secrets() -> None:
    # (macOS gets a launchd agent: tests/test_darwin_module.py)
    expr = (
        'let r = h.evalHome { pkgsArgs = { system = "x86_64-freebsd"; };'
        f" modules = [ ({BASE_HOME_EXPR}) ({mod(TOKEN)}) ]; }};"
        " in { units = builtins.attrNames r.config.systemd.user.services;"
        " agents = r.config.launchd.agents; inherit (r) warnings; }"
    )
    r = evaluate(expr)
    assert r["units"] == [] and r["agents"] == {}
    assert any("carol/token" in w and "systemd" in w for w in r["warnings"]), r["warnings"]


def test_activation_restarts_the_unit_without_start_services() -> None:
    entry = home(mod(TOKEN), select="config.home.activation.nixseal")
    assert "reloadSystemd" in entry["after"]
    assert "--user restart nixseal.service" in entry["data"]
