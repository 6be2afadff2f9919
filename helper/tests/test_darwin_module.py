"""The nix-darwin module modules/darwin, evaluated offline against the
nix-darwin stubs (checks/eval/stubs/darwin.nix), and the home-manager
module's macOS branch: the options, the launchd daemon and agent, the
activation text, the manifest the helper reads, and the assertions.
"""

from __future__ import annotations

import json
import subprocess
import textwrap

import pytest
from _nixeval import NixEvalError, darwin, evaluate, home
from conftest import REPO_ROOT, needs_nix

from nixseal.engine import manifest as manifest_mod

pytestmark = needs_nix

TOKEN = 'nixseal.secrets."web1/app-token".file = "/var/lib/s/token.age";'
NO_CHECK = "nixseal.checkManifest = false;"


def mod(body: str) -> str:
    return "{ " + NO_CHECK + " " + body + " }"


def failed(*modules: str) -> list[str]:
    messages: list[str] = darwin(*modules, select="failedAssertions")
    return messages


def test_manifest_is_darwin_s_and_parses() -> None:
    m = darwin(mod(TOKEN + ' nixseal.secrets."web1/app-token".restartUnits = [ "org.nixos.app" ];'))
    assert set(m) == manifest_mod.TOP_KEYS
    assert m["platform"] == "darwin"
    assert (m["mountPoint"], m["symlinkPath"]) == ("/run/secrets.d", "/run/secrets")
    assert (m["useTmpfs"], m["userMode"], m["systemdCreds"]) == (False, False, None)
    assert m["identityPaths"] == ["/etc/ssh/ssh_host_ed25519_key", "/etc/ssh/ssh_host_rsa_key"]
    (s,) = m["secrets"]
    assert s["path"] == "/run/secrets/web1/app-token"
    # the owner's primary group, resolved on the Mac when installing
    assert (s["owner"], s["group"], s["seal"]) == ("root", None, None)
    parsed = manifest_mod.parse(json.dumps(m), "evaluated manifest")
    assert parsed.platform == "darwin"
    assert parsed.secrets[0].restart_units == ("org.nixos.app",)


def test_what_macos_lacks_is_not_declared() -> None:
    declared = darwin(mod(""), select="builtins.attrNames options.nixseal")
    for absent in (
        "activation",
        "useTmpfs",
        "manifestForUsers",
        "inferRestarts",
        "inferredRestartUnits",
    ):
        assert absent not in declared, absent
    fields = darwin(
        mod(TOKEN),
        select='builtins.attrNames config.nixseal.secrets."web1/app-token"',
    )
    assert "neededForUsers" not in fields and "credentialFor" not in fields
    for same in ("secrets", "templates", "placeholder", "placeholders", "rules", "keepGenerations"):
        assert same in declared, same


def test_setting_neededForUsers_fails_the_build() -> None:
    with pytest.raises(NixEvalError, match="neededForUsers"):
        darwin(mod(TOKEN + ' nixseal.secrets."web1/app-token".neededForUsers = true;'))


def test_the_daemon_installs_at_boot() -> None:
    daemon = darwin(mod(TOKEN), select="config.launchd.daemons.nixseal-install.serviceConfig")
    manifest = darwin(mod(TOKEN), select="config.system.build.nixsealManifest.outPath")
    package = darwin(mod(TOKEN), select="config.nixseal.package.outPath")
    assert daemon["Label"] == "org.nixos.nixseal-install"
    assert daemon["RunAtLoad"] is True
    assert daemon["KeepAlive"] is None  # a failed secret is not retried in a loop
    assert daemon["ProgramArguments"] == [
        "/bin/sh",
        "-c",
        f"/bin/wait4path /nix/store && exec {package}/libexec/nixseal-install --manifest {manifest}",
    ]
    assert (
        daemon["StandardErrorPath"] == daemon["StandardOutPath"] == "/var/log/nixseal-install.log"
    )


def test_activation_installs_after_users_and_goes_on_when_a_secret_fails() -> None:
    scripts = darwin(
        mod(
            TOKEN
            + ' users.users.alice.uid = 501; system.activationScripts.users.text = "make-users";'
        ),
        select="lib.mapAttrs (_: s: s.text) config.system.activationScripts",
    )
    users = scripts["users"]
    assert users.startswith("make-users\n"), "after the users are made"
    assert "libexec/nixseal-install --manifest" in users
    for step in ("preActivation", "extraActivation", "groups", "launchd", "postActivation"):
        assert "nixseal" not in scripts[step], step
    # nix-darwin's activation runs with `set -e`: a failed install (exit 1)
    # must not stop the rest of it.
    command = users.split("if ! ", 1)[1].split("; then", 1)[0]
    script = (
        "set -e\n" + users.replace("make-users\n", "").replace(command, "false") + "echo went on\n"
    )
    proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=False)
    assert proc.returncode == 0
    assert proc.stdout == "went on\n"
    assert "nixseal: some secrets were not installed (see above)" in proc.stderr


def test_no_secrets_no_daemon_and_no_activation() -> None:
    r = darwin(
        mod(""),
        select="{ d = config.launchd.daemons; u = config.system.activationScripts.users.text; }",
    )
    assert r == {"d": {}, "u": ""}


def test_restart_units_are_launchd_labels() -> None:
    with pytest.raises(NixEvalError, match="launchd label"):
        darwin(mod(TOKEN + ' nixseal.secrets."web1/app-token".restartUnits = [ "nginx/x" ];'))
    labels = darwin(
        mod(
            TOKEN + ' nixseal.secrets."web1/app-token".reloadUnits = [ "nginx.service" "a_b-c.d" ];'
        ),
        select="(builtins.head config.nixseal.manifest.secrets).reloadUnits",
    )
    assert labels == ["nginx.service", "a_b-c.d"]


def test_templates_and_placeholders() -> None:
    m = darwin(
        "{ config, ... }: { "
        + NO_CHECK
        + TOKEN
        + ' nixseal.templates."app.env" = { content = "TOKEN=${config.nixseal.placeholders.dotenv."web1/app-token"}"; owner = "_www"; restartUnits = [ "org.nixos.app" ]; }; }'
    )
    (t,) = m["templates"]
    assert t["path"] == "/run/secrets/rendered/app.env"
    assert t["content"] == "TOKEN=<nixseal:dotenv:web1/app-token>"
    assert (t["owner"], t["group"], t["restartUnits"]) == ("_www", None, ["org.nixos.app"])


def test_assertions_name_the_option() -> None:
    messages = failed(
        mod(
            'nixseal.secrets."../x".file = "/x.age"; nixseal.identityPaths = [ ];'
            ' nixseal.templates.t.content = "<nixseal:nope>";'
        )
    )
    assert any(m.startswith('nixseal.secrets."../x".name:') for m in messages), messages
    assert any(m.startswith("nixseal.identityPaths is empty:") for m in messages)
    assert any('placeholder for "nope" names no secret' in m for m in messages)


def test_rules_give_the_mac_its_secrets() -> None:
    rules = REPO_ROOT / "secrets" / "secrets.toml"
    given = darwin(
        mod(f"nixseal.rules = {rules}; nixseal.declareRulesSecrets = true;"),
        select="builtins.attrNames config.nixseal.secrets",
    )
    assert given and all(n.startswith(("web1/", "shared/")) for n in given), given
    messages = failed(mod(f'nixseal.rules = {rules}; nixseal.secrets."db1/db-password" = {{ }};'))
    assert any('does not give secret "db1/db-password" to host "web1"' in m for m in messages)
    empty = failed(mod(f"nixseal.rules = {rules}; networking.hostName = lib.mkForce null;" + TOKEN))
    assert any(m.startswith("nixseal.hostName is empty:") for m in empty), empty


def test_the_flake_output_sets_the_package() -> None:
    flake = REPO_ROOT / "flake.nix"
    text = flake.read_text()
    assert "darwinModules.nixseal = " in text and "./modules/darwin" in text


HM_DARWIN = 'pkgsArgs = { system = "aarch64-darwin"; };'


def hm_darwin(
    select: str, body: str = 'nixseal.secrets."carol/token".file = "/s/token.age";'
) -> object:
    expr = textwrap.dedent(
        f"""
        let r = h.evalHome {{
          {HM_DARWIN}
          modules = [ {{ home.username = "carol"; home.homeDirectory = "/Users/carol"; {body} }} ];
        }}; in with r; ({select})
        """
    )
    return evaluate(expr)


def test_home_manager_on_macos_runs_a_launchd_agent() -> None:
    agent = hm_darwin("config.launchd.agents.nixseal")
    manifest = hm_darwin("config.nixseal.manifestFile.outPath")
    assert isinstance(agent, dict)
    assert agent["enable"] is True
    assert agent["config"]["RunAtLoad"] is True
    args = agent["config"]["ProgramArguments"]
    assert args[:2] == ["/bin/sh", "-c"]
    assert args[2].startswith('XDG_RUNTIME_DIR="$(/usr/bin/getconf DARWIN_USER_TEMP_DIR)" exec ')
    assert args[2].endswith(f"/libexec/nixseal-install --manifest {manifest}")
    assert hm_darwin("config.systemd.user.services") == {}
    assert hm_darwin("warnings") == []


def test_home_manager_on_macos_names_launchd_labels() -> None:
    m = hm_darwin(
        "config.nixseal.manifest",
        'nixseal.secrets."carol/token" = { file = "/s/token.age"; restartUnits = [ "org.nix-community.home.app" ]; };',
    )
    assert isinstance(m, dict)
    # platform darwin and userMode: the helper mounts a RAM disk of the
    # user's on mountPoint (tests/test_darwin.py), inside %r, the temporary
    # directory; symlinkPath beside it only points into it.
    assert (m["platform"], m["userMode"]) == ("darwin", True)
    assert (m["mountPoint"], m["symlinkPath"]) == ("%r/secrets.d", "%r/secrets")
    assert m["secrets"][0]["path"] == "%r/secrets/carol/token"
    parsed = manifest_mod.expand_runtime_dir(
        manifest_mod.parse(json.dumps(m)), "/var/folders/xy/abc/T/"
    )
    assert parsed.secrets[0].path == "/var/folders/xy/abc/T/secrets/carol/token"
    assert parsed.secrets[0].restart_units == ("org.nix-community.home.app",)


def test_home_manager_on_linux_is_unchanged() -> None:
    m = home('{ nixseal.secrets."carol/token".file = "/s/token.age"; }')
    assert m["platform"] == "linux"
    assert home("{ }", select="config.launchd.agents") == {}
