"""The NixOS module modules/security/secrets.nix, evaluated offline.

Every test evaluates a host through checks/eval (real nixpkgs lib, stubs
of the NixOS options, fake pkgs) and asserts on what NixOS would see:
options, the manifest, assertions, units, activation snippets. The last
tests hand an evaluated manifest to `nixseal install --root` and check the
files, so module and helper are known to agree end to end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from _nixeval import BASE_HOST as BASE_HOST_EXPR
from _nixeval import NixEvalError, evaluate, failed, host, host_many, nix_env, nix_string
from conftest import (
    HELPER_DIR,
    REPO_ROOT,
    SshKey,
    make_ssh_key,
    needs_nix,
    needs_root,
    on_disk,
    pyrage_site,
    write_launcher,
)

from nixseal.age import crypto
from nixseal.engine import manifest as manifest_mod
from nixseal.engine.manifest import TOP_KEYS

pytestmark = needs_nix

SECRET = 'nixseal.secrets."grafana/admin" = { file = "/var/lib/s/admin.age"; owner = "grafana"; };'


def mod(body: str) -> str:
    return "{ " + body + " }"


def one_secret(**fields: str) -> str:
    """A module declaring secret "s" with file set and the given Nix fields."""
    body = " ".join(f"{k} = {v};" for k, v in fields.items())
    return mod(f'nixseal.secrets.s = {{ file = "/var/lib/s/s.age"; {body} }};')


# --- defaults and the manifest -------------------------------------------------


def test_manifest_defaults_and_sshd_host_keys_as_identities() -> None:
    m = host(mod(SECRET))
    assert m["version"] == 1
    assert (m["mountPoint"], m["symlinkPath"]) == ("/run/secrets.d", "/run/secrets")
    assert m["keepGenerations"] == 1
    assert m["useTmpfs"] is False
    assert m["userMode"] is False
    # ed25519 first, then rsa, although sshd's list has rsa first
    assert m["identityPaths"] == ["/etc/ssh/ssh_host_ed25519_key", "/etc/ssh/ssh_host_rsa_key"]
    assert m["restartListPath"] is None
    assert m["reloadListPath"] is None
    # Exactly the fields the helper's manifest parser accepts.
    assert set(m) == TOP_KEYS


def test_secret_entry_defaults_and_primary_group() -> None:
    m = host(mod(SECRET + ' nixseal.secrets.plain.file = "/var/lib/s/plain.age";'))
    by_name = {s["name"]: s for s in m["secrets"]}
    assert by_name["grafana/admin"] == {
        "name": "grafana/admin",
        "file": "/var/lib/s/admin.age",
        "path": "/run/secrets/grafana/admin",
        "mode": "0400",
        "owner": "grafana",
        "group": "grafana",  # users.users.grafana.group
        "restartUnits": [],
        "reloadUnits": [],
        "seal": None,
        "format": "binary",
        "key": [],
        "document": "grafana/admin",  # the rules secret: its own name
    }
    assert (by_name["plain"]["owner"], by_name["plain"]["group"]) == ("root", "root")


def test_numeric_owner_is_accepted_with_root_group() -> None:
    m = host(one_secret(owner='"990"'))
    assert m["secrets"][0]["owner"] == "990"
    assert m["secrets"][0]["group"] == "root"
    assert failed(one_secret(owner='"990"')) == []


def test_options_change_the_manifest() -> None:
    m = host(
        one_secret(
            path='"/etc/app/token"',
            mode='"0440"',
            group='"keys"',
            restartUnits='[ "app.service" ]',
            reloadUnits='[ "nginx.service" ]',
        ),
        mod(
            'nixseal.mountPoint = "/run/s.d"; nixseal.symlinkPath = "/run/s";'
            " nixseal.keepGenerations = 0; nixseal.useTmpfs = true;"
            ' nixseal.identityPaths = [ "/persist/key.txt" ];'
        ),
    )
    assert (m["mountPoint"], m["symlinkPath"]) == ("/run/s.d", "/run/s")
    assert (m["keepGenerations"], m["useTmpfs"]) == (0, True)
    assert m["identityPaths"] == ["/persist/key.txt"]
    (s,) = m["secrets"]
    assert (s["path"], s["mode"], s["group"]) == ("/etc/app/token", "0440", "keys")
    assert (s["restartUnits"], s["reloadUnits"]) == (["app.service"], ["nginx.service"])


def test_symlink_path_moves_default_paths() -> None:
    m = host(one_secret(), mod('nixseal.symlinkPath = "/run/keys/app";'))
    assert m["secrets"][0]["path"] == "/run/keys/app/s"


def test_nix_path_file_is_copied_to_the_store_and_string_is_kept(tmp_path: Path) -> None:
    enc = tmp_path / ".env.age"  # a leading dot is not a valid store name
    enc.write_bytes(b"age-encryption.org/v1\n")
    m = host(mod(f"nixseal.secrets.a.file = {enc}; nixseal.secrets.b.file = {nix_string(enc)};"))
    files = {s["name"]: s["file"] for s in m["secrets"]}
    assert files["a"].startswith("/nix/store/")
    assert files["a"].endswith("-env.age")
    assert files["b"] == str(enc)


def test_identity_paths_are_never_copied_to_the_store(tmp_path: Path) -> None:
    key = tmp_path / "key.txt"
    key.write_text("AGE-SECRET-KEY-1...\n")
    m = host(one_secret(), mod(f"nixseal.identityPaths = [ {nix_string(key)} ];"))
    assert m["identityPaths"] == [str(key)]


def test_manifest_is_accepted_by_the_helper() -> None:
    m = host(
        mod(SECRET),
        one_secret(restartUnits='[ "grafana.service" ]'),
        mod('nixseal.templates."grafana.ini".content = "admin=<nixseal:grafana/admin>";'),
    )
    parsed = manifest_mod.parse(json.dumps(m), "evaluated manifest")
    assert {s.name for s in parsed.secrets} == {"grafana/admin", "s"}
    assert [t.name for t in parsed.templates] == ["grafana.ini"]


def test_templates_placeholders_and_default_path(tmp_path: Path) -> None:
    tpl = tmp_path / "app.conf"
    tpl.write_text("token=<nixseal:s>\n")
    r = host_many(
        one_secret(),
        mod(
            'nixseal.templates."app.env" = { content = "T=${config.nixseal.placeholder.s}"; owner = "grafana"; };'
            f" nixseal.templates.conf.file = {tpl};"
        ).replace("{ nix", "{ config, ... }: { nix", 1),
        manifest="config.nixseal.manifest",
        placeholder="config.nixseal.placeholder",
        failed="failedAssertions",
    )
    m = r["manifest"]
    assert r["failed"] == []
    assert r["placeholder"] == {"s": "<nixseal:s>"}
    assert m["placeholders"] == {"s": "<nixseal:s>"}
    templates = {t["name"]: t for t in m["templates"]}
    assert templates["app.env"]["content"] == "T=<nixseal:s>"
    assert templates["app.env"]["path"] == "/run/secrets/rendered/app.env"
    assert (templates["app.env"]["owner"], templates["app.env"]["group"]) == ("grafana", "grafana")
    assert templates["conf"]["content"] == "token=<nixseal:s>\n"


def test_no_secrets_no_units_no_scripts() -> None:
    r = host_many(
        mod(""),
        services="config.systemd.services",
        scripts="builtins.attrNames config.system.activationScripts",
        failed="failedAssertions",
    )
    assert r["services"] == {}
    assert "nixseal" not in r["scripts"]
    assert "nixsealForUsers" not in r["scripts"]
    assert r["failed"] == []


def test_package_missing_names_the_fix() -> None:
    with pytest.raises(NixEvalError) as err:
        evaluate(
            '(h.evalHost { pkgs = builtins.removeAttrs (h.fakePkgs { }) [ "nixseal" ];'
            ' modules = [ { nixseal.secrets.s.file = "/x.age"; nixseal.identityPaths = [ "/k" ]; } ]; }).config.systemd.services.nixseal-install.serviceConfig.ExecStart'
        )
    assert "set nixseal.package" in str(err.value)
    assert "overlays.default" in str(err.value)


def test_package_option_is_used_by_the_unit() -> None:
    exec_start = host(
        one_secret(),
        "{ pkgs, ... }: { nixseal.package = pkgs.systemd; }",
        select="config.systemd.services.nixseal-install.serviceConfig.ExecStart",
    )
    assert "-systemd-257/libexec/nixseal-install --manifest " in exec_start


# --- option documentation ---------------------------------------------------------


def test_every_option_has_a_description_and_computed_defaults_have_default_text() -> None:
    docs = host(
        mod(""),
        select='lib.optionAttrSetToDocList (builtins.removeAttrs options [ "_module" ]).nixseal',
    )
    by_name = {d["name"]: d for d in docs if d["visible"] and not d["internal"]}
    assert "nixseal.secrets.<name>.neededForUsers" in by_name
    for name, doc in by_name.items():
        assert doc.get("description"), f"{name} has no description"
        assert "default" in doc, f"{name}: no default or defaultText"
    computed = {
        "nixseal.hostName": "config.networking.hostName",
        "nixseal.package": "pkgs.nixseal",
        "nixseal.secrets.<name>.path": "config.nixseal.symlinkPath",
        "nixseal.secrets.<name>.name": "<name>",
    }
    for name, text in computed.items():
        assert by_name[name]["default"]["_type"] in {"literalExpression", "literalMD"}
        assert text in by_name[name]["default"]["text"], name
    assert by_name["nixseal.identityPaths"]["default"]["_type"] == "literalMD"
    assert by_name["nixseal.secrets.<name>.group"]["default"]["_type"] == "literalMD"


def test_read_only_options_cannot_be_set() -> None:
    with pytest.raises(NixEvalError) as err:
        host(mod("nixseal.manifest = { };"))
    assert "nixseal.manifest" in str(err.value)
    assert "read-only" in str(err.value)


def test_bad_mode_and_unit_names_are_type_errors() -> None:
    with pytest.raises(NixEvalError) as err:
        host(one_secret(mode='"rw-r--r--"'))
    assert "nixseal.secrets.s.mode" in str(err.value)
    with pytest.raises(NixEvalError) as err:
        host(one_secret(restartUnits='[ "nginx" ]'))
    assert "nixseal.secrets.s.restartUnits" in str(err.value)


# --- assertions -------------------------------------------------------------------


def test_unknown_owner_and_group_name_the_option() -> None:
    messages = failed(one_secret(owner='"nosuchuser"', group='"nosuchgroup"'))
    assert any(
        m.startswith('nixseal.secrets."s".owner: user "nosuchuser" is not in users.users')
        for m in messages
    )
    assert any(
        m.startswith('nixseal.secrets."s".group: group "nosuchgroup" is not in users.groups')
        for m in messages
    )


def test_unknown_template_owner_names_the_option() -> None:
    messages = failed(mod('nixseal.templates.t = { content = "x"; owner = "ghost"; };'))
    assert any(m.startswith('nixseal.templates."t".owner: user "ghost"') for m in messages)


def test_user_name_differing_from_attribute_name_is_found() -> None:
    messages = failed(
        mod('users.users.svc = { name = "svc-app"; isSystemUser = true; group = "grafana"; };'),
        one_secret(owner='"svc-app"'),
    )
    assert messages == []


def test_duplicate_paths_name_both_options() -> None:
    messages = failed(
        mod(
            'nixseal.secrets.a = { file = "/a.age"; path = "/etc/token"; };'
            ' nixseal.secrets.b = { file = "/b.age"; path = "/etc/token"; };'
            ' nixseal.templates.c = { content = "x"; path = "/run/secrets/rendered/c"; };'
            ' nixseal.templates.d = { content = "y"; path = "/run/secrets/rendered/c"; };'
        )
    )
    assert (
        'nixseal: path "/etc/token" is used by nixseal.secrets."a".path and '
        'nixseal.secrets."b".path: give each its own path'
    ) in messages
    assert any(
        "/run/secrets/rendered/c" in m and 'nixseal.templates."d".path' in m for m in messages
    )


def test_duplicate_names_name_the_option() -> None:
    messages = failed(
        mod(
            'nixseal.secrets.a = { file = "/a.age"; name = "db"; path = "/run/a"; };'
            ' nixseal.secrets.b = { file = "/b.age"; name = "db"; path = "/run/b"; };'
        )
    )
    assert (
        'nixseal.secrets: 2 entries are named "db": give each its own nixseal.secrets.<name>.name'
    ) in messages


@pytest.mark.parametrize("name", ["../x", "a/../../etc/shadow", "./a", "a//b", "with space"])
def test_hostile_names_are_refused(name: str) -> None:
    messages = failed(
        mod(f'nixseal.secrets.{nix_string(name)} = {{ file = "/a.age"; path = "/run/x/a"; }};')
    )
    assert any(
        m.startswith(f'nixseal.secrets."{name}".name: "{name}" is not a safe secret name')
        for m in messages
    ), messages


@pytest.mark.parametrize("path", ["/run/../etc/shadow", "relative/path", "/run/secrets/", "/a//b"])
def test_hostile_paths_are_refused(path: str) -> None:
    messages = failed(one_secret(path=nix_string(path)))
    assert any(
        m.startswith(f'nixseal.secrets."s".path: "{path}" is not a safe path') for m in messages
    ), messages


def test_needed_for_users_must_be_root_owned() -> None:
    messages = failed(one_secret(neededForUsers="true", owner='"grafana"'))
    assert any(
        m.startswith('nixseal.secrets."s".neededForUsers: secrets installed before users exist')
        and 'set owner and group to "root"' in m
        for m in messages
    )
    assert failed(one_secret(neededForUsers="true")) == []


def test_no_identity_paths_names_the_option() -> None:
    messages = failed(
        one_secret(), "{ lib, ... }: { services.openssh.enable = lib.mkForce false; }"
    )
    assert any(m.startswith("nixseal.identityPaths is empty") for m in messages)


def test_templates_naming_unknown_secrets() -> None:
    messages = failed(
        one_secret(neededForUsers="true"),
        mod('nixseal.templates.t.content = "a=<nixseal:nope> b=<nixseal:s>";'),
    )
    assert any(
        m.startswith('nixseal.templates."t": placeholder for "nope" names no secret')
        for m in messages
    )
    # a neededForUsers secret lives in another manifest: not usable either
    assert any('placeholder for "s" names no secret' in m for m in messages)


FORMATS = ["json", "yaml", "toml", "ini", "dotenv", "shell"]


def test_typed_placeholders_by_format_and_secret(tmp_path: Path) -> None:
    tpl = tmp_path / "app.yaml"
    tpl.write_text("password: <nixseal:yaml:s>\nraw: <nixseal:s>\n")
    r = host_many(
        one_secret(),
        mod(
            'nixseal.secrets.b = { file = "/var/lib/s/b.age"; name = "db/b"; };'
            ' nixseal.templates."app.json".content ='
            " ''{\"p\": ${config.nixseal.placeholders.json.s}, \"b\": <nixseal:json:db/b>}'';"
            f" nixseal.templates.yaml.file = {tpl};"
        ).replace("{ nix", "{ config, ... }: { nix", 1),
        manifest="config.nixseal.manifest",
        placeholders="config.nixseal.placeholders",
        failed="failedAssertions",
    )
    assert r["failed"] == []
    assert r["placeholders"] == {
        f: {"s": f"<nixseal:{f}:s>", "b": f"<nixseal:{f}:db/b>"} for f in FORMATS
    }
    # no manifest field of their own: the helper knows them for every secret
    assert r["manifest"]["placeholders"] == {"s": "<nixseal:s>", "db/b": "<nixseal:db/b>"}
    contents = {t["name"]: t["content"] for t in r["manifest"]["templates"]}
    assert contents["app.json"] == '{"p": <nixseal:json:s>, "b": <nixseal:json:db/b>}'


def test_typed_placeholders_of_unknown_formats_or_secrets() -> None:
    messages = failed(
        one_secret(),
        mod('nixseal.templates.t.content = "a=<nixseal:xml:s> b=<nixseal:json:nope>";'),
    )
    assert (
        'nixseal.templates."t": placeholder <nixseal:xml:s> has an unknown format "xml":'
        " use one of json, yaml, toml, ini, dotenv, shell, or <nixseal:s> for the value as it is"
    ) in messages
    assert any(
        m.startswith('nixseal.templates."t": placeholder for "nope" names no secret')
        for m in messages
    )
    assert len(messages) == 2


def test_template_needs_content_or_file() -> None:
    messages = failed(mod("nixseal.templates.t = { };"))
    assert 'nixseal.templates."t": set exactly one of content and file' in messages


def test_toplevel_fails_like_nixos_on_a_failed_assertion() -> None:
    with pytest.raises(NixEvalError) as err:
        host(one_secret(owner='"ghost"'), select="config.system.build.toplevel.drvPath")
    assert "Failed assertions" in str(err.value)
    assert "nixseal.secrets" in str(err.value)


# --- the rules file ---------------------------------------------------------------


def write_rules(
    directory: Path, host_key: str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB root@web1"
) -> Path:
    rules = directory / "secrets.toml"
    rules.write_text(
        textwrap.dedent(
            f"""\
            version = 1
            [admins]
            alice = "age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq"
            [hosts.web1]
            key = "{host_key}"
            [hosts.web2]
            key = "age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq"
            [groups]
            web = ["web1", "web2"]
            [secrets."grafana/admin"]
            hosts = ["web1"]
            [secrets.db]
            hosts = ["@web"]
            [secrets.other]
            hosts = ["web2"]
            """
        )
    )
    return rules


def test_rules_give_file_defaults_and_the_host_secrets(tmp_path: Path) -> None:
    rules = write_rules(tmp_path)
    r = host_many(
        mod(f'nixseal.rules = {nix_string(rules)}; nixseal.secrets."grafana/admin" = {{ }};'),
        files="map (s: s.file) config.nixseal.manifest.secrets",
        given="config.nixseal.rulesSecrets",
        failed="failedAssertions",
    )
    assert r["files"] == [str(tmp_path / "grafana/admin.age")]
    assert sorted(r["given"]) == ["db", "grafana/admin"]  # db through @web
    assert r["failed"] == []


def test_declare_rules_secrets_declares_every_given_secret(tmp_path: Path) -> None:
    rules = write_rules(tmp_path)
    names = host(
        mod(f"nixseal.rules = {nix_string(rules)}; nixseal.declareRulesSecrets = true;"),
        select="map (s: s.name) config.nixseal.manifest.secrets",
    )
    assert sorted(names) == ["db", "grafana/admin"]


def test_host_name_follows_networking_host_name(tmp_path: Path) -> None:
    rules = write_rules(tmp_path)
    given = host(
        mod(
            f'nixseal.rules = {nix_string(rules)}; networking.hostName = lib.mkForce "web2";'
        ).replace("{ nix", "{ lib, ... }: { nix", 1),
        select="config.nixseal.rulesSecrets",
    )
    assert sorted(given) == ["db", "other"]


def test_secret_not_given_to_this_host_fails_naming_secret_host_and_fix(tmp_path: Path) -> None:
    rules = write_rules(tmp_path)
    messages = failed(
        mod(
            f"nixseal.rules = {nix_string(rules)};"
            " nixseal.secrets.other = { }; nixseal.secrets.missing = { };"
        )
    )
    assert (
        f'nixseal.secrets."other": the rules file {rules} does not give secret "other" to host '
        '"web1": add "web1" to hosts of [secrets."other"] and run nixseal rekey, or remove '
        'nixseal.secrets."other"'
    ) in messages
    assert any(
        m.startswith(
            f'nixseal.secrets."missing": the rules file {rules} has no [secrets."missing"]'
        )
        for m in messages
    )


def test_unknown_host_in_rules_names_host_name_option(tmp_path: Path) -> None:
    rules = write_rules(tmp_path)
    messages = failed(
        mod(
            f'nixseal.rules = {nix_string(rules)}; nixseal.hostName = "db9"; nixseal.secrets.db = {{ }};'
        )
    )
    assert any(m.startswith('nixseal.hostName: host "db9" is not in [hosts]') for m in messages)


def test_secret_with_own_file_is_not_checked_against_rules(tmp_path: Path) -> None:
    rules = write_rules(tmp_path)
    messages = failed(
        mod(f'nixseal.rules = {nix_string(rules)}; nixseal.secrets.local.file = "/var/lib/x.age";')
    )
    assert messages == []


def test_unknown_group_in_rules_is_an_error(tmp_path: Path) -> None:
    rules = tmp_path / "secrets.toml"
    rules.write_text('version = 1\n[hosts.web1]\nkey = "age1x"\n[secrets.a]\nhosts = ["@nope"]\n')
    with pytest.raises(NixEvalError) as err:
        host(mod(f"nixseal.rules = {nix_string(rules)};"), select="config.nixseal.rulesSecrets")
    assert 'hosts names unknown group "@nope"' in str(err.value)


def test_manifest_build_checks_files_against_the_host_ssh_key(tmp_path: Path) -> None:
    rules = write_rules(tmp_path)
    drv = host(
        mod(f"nixseal.rules = {nix_string(rules)}; nixseal.secrets.db = {{ }};"),
        select="{ inherit (config.system.build.nixsealManifest) buildCommand name; }",
    )
    assert drv["name"] == "nixseal-manifest.json"
    assert (
        "/bin/nixseal check-manifest \"$manifestPath\" --host-key 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB root@web1'"
        in drv["buildCommand"]
    )


def test_manifest_build_without_host_key_or_check(tmp_path: Path) -> None:
    rules = write_rules(tmp_path)
    r = host_many(
        mod(
            f'nixseal.rules = {nix_string(rules)}; nixseal.hostName = "web2"; nixseal.secrets.db = {{ }};'
        ),
        command="config.system.build.nixsealManifest.buildCommand",
    )
    # web2's key is an age key: its files cannot be checked by header
    assert "check-manifest" in r["command"]
    assert "--host-key" not in r["command"]
    unchecked = host(
        one_secret(),
        mod("nixseal.checkManifest = false;"),
        select="config.system.build.nixsealManifest.buildCommand",
    )
    assert "check-manifest" not in unchecked


# --- activation: systemd units ------------------------------------------------------


def test_install_unit_is_ordered_before_sysinit_and_reruns_on_switch() -> None:
    r = host_many(
        mod(SECRET),
        unit="config.systemd.services.nixseal-install",
        manifest="config.system.build.nixsealManifest.outPath",
        scripts="builtins.attrNames config.system.activationScripts",
    )
    unit = r["unit"]
    assert unit["wantedBy"] == ["sysinit.target"]
    assert unit["requiredBy"] == ["sysinit-reactivation.target"]
    assert set(unit["before"]) == {"sysinit.target", "sysinit-reactivation.target"}
    assert unit["after"] == ["local-fs.target"]
    assert unit["unitConfig"]["DefaultDependencies"] is False
    assert unit["unitConfig"]["RequiresMountsFor"] == [
        "/etc/ssh/ssh_host_ed25519_key",
        "/etc/ssh/ssh_host_rsa_key",
    ]
    assert unit["serviceConfig"]["Type"] == "oneshot"
    assert unit["serviceConfig"]["RemainAfterExit"] is True
    assert unit["serviceConfig"]["ExecStart"].endswith(
        f"/libexec/nixseal-install --manifest {r['manifest']}"
    )
    assert unit["restartTriggers"] == [r["manifest"]]
    assert "nixseal" not in r["scripts"]


def test_new_manifest_changes_the_unit() -> None:
    a = host(one_secret(), select="config.systemd.services.nixseal-install.restartTriggers")
    b = host(
        one_secret(mode='"0440"'), select="config.systemd.services.nixseal-install.restartTriggers"
    )
    assert a != b


@pytest.mark.parametrize(
    ("switch", "unit"),
    [
        ("services.userborn.enable", "userborn.service"),
        ("systemd.sysusers.enable", "systemd-sysusers.service"),
    ],
)
def test_units_around_userborn_and_sysusers(switch: str, unit: str) -> None:
    r = host_many(
        mod(SECRET),
        one_secret(neededForUsers="true"),
        mod(f"{switch} = true;"),
        install="config.systemd.services.nixseal-install",
        users="config.systemd.services.nixseal-install-for-users",
        users_manifest="config.system.build.nixsealManifestForUsers.outPath",
        scripts="builtins.attrNames config.system.activationScripts",
        failed="failedAssertions",
    )
    assert r["failed"] == []
    assert unit in r["install"]["after"]
    users = r["users"]
    assert unit in users["before"]
    assert unit in users["wantedBy"]
    assert "sysinit.target" in users["before"]
    assert users["requiredBy"] == ["sysinit-reactivation.target"]
    # before local-fs.target (userborn is): keys on file systems of the initrd only
    assert "RequiresMountsFor" not in users["unitConfig"]
    assert "local-fs.target" not in users["after"]
    assert users["unitConfig"]["DefaultDependencies"] is False
    assert users["serviceConfig"]["ExecStart"].endswith(f"--manifest {r['users_manifest']}")
    assert "nixsealForUsers" not in r["scripts"]


def test_needed_for_users_manifest_is_separate_and_numeric() -> None:
    r = host_many(
        mod(SECRET),
        one_secret(neededForUsers="true"),
        main="map (s: s.name) config.nixseal.manifest.secrets",
        users="config.nixseal.manifestForUsers",
        hashed="config.nixseal.secrets.s.path",
    )
    assert r["main"] == ["grafana/admin"]
    users = r["users"]
    assert (users["mountPoint"], users["symlinkPath"]) == (
        "/run/secrets-for-users.d",
        "/run/secrets-for-users",
    )
    assert [(s["name"], s["owner"], s["group"]) for s in users["secrets"]] == [("s", "0", "0")]
    assert r["hashed"] == "/run/secrets-for-users/s"


def test_needed_for_users_with_script_created_users_runs_before_users() -> None:
    r = host_many(
        one_secret(neededForUsers="true"),
        snippet="config.system.activationScripts.nixsealForUsers",
        users_deps="config.system.activationScripts.users.deps",
        script="config.system.activationScripts.script",
        services="builtins.attrNames config.systemd.services",
    )
    assert r["users_deps"] == ["nixsealForUsers"]
    assert r["snippet"]["supportsDryActivation"] is True
    order = [
        line
        for line in r["script"].splitlines()
        if line.startswith("#### Activation script snippet")
    ]
    names = [line.split()[-1].rstrip(":") for line in order]
    assert names.index("nixsealForUsers") < names.index("users")
    assert "nixseal-install-for-users" not in r["services"]


ETC_KEY = 'environment.etc."ssh/ssh_host_ed25519_key".source = ./.; environment.etc."ssh/ssh_host_rsa_key".text = "k";'


def test_first_boot_key_gap_is_warned_about() -> None:
    """Users made by the activation script: password secrets are installed
    before /etc exists, so keys placed by environment.etc are missing at
    first boot."""
    warnings = host(one_secret(neededForUsers="true"), mod(ETC_KEY), select="warnings")
    (warning,) = [w for w in warnings if "first boot" in w]
    assert "neededForUsers secrets (s)" in warning
    assert "/etc/ssh/ssh_host_ed25519_key, /etc/ssh/ssh_host_rsa_key" in warning
    assert "nixseal.identityPaths" in warning and "services.userborn.enable" in warning


@pytest.mark.parametrize(
    "extra",
    [
        "",  # keys not placed by environment.etc (sshd's own, on disk)
        'nixseal.identityPaths = [ "/etc/ssh/ssh_host_ed25519_key" "/persist/key.txt" ];',
        "services.userborn.enable = true;",  # a unit installs them after /etc exists
        'environment.etc."ssh/ssh_host_ed25519_key".enable = false;',
    ],
)
def test_no_first_boot_warning_when_a_key_is_there(extra: str) -> None:
    etc = "" if extra == "" else ETC_KEY
    warnings = host(one_secret(neededForUsers="true"), mod(etc + " " + extra), select="warnings")
    assert not [w for w in warnings if "first boot" in w], warnings


@pytest.mark.parametrize(
    "switch",
    [
        "services.userborn.enable",
        "systemd.sysusers.enable",
        "system.nixos-init.enable",
        "system.etc.overlay.enable",
    ],
)
def test_script_mode_is_refused_without_activation_scripts(switch: str) -> None:
    messages = failed(one_secret(), mod(f'{switch} = true; nixseal.activation = "script";'))
    assert any(
        m.startswith('nixseal.activation = "script" cannot work with')
        and switch in m
        and 'set nixseal.activation = "systemd"' in m
        for m in messages
    ), messages


# --- activation: scripts ----------------------------------------------------------------


def test_script_mode_snippet_deps_dry_run_and_restart_lists() -> None:
    r = host_many(
        mod(SECRET),
        mod('nixseal.activation = "script";'),
        snippet="config.system.activationScripts.nixseal",
        script="config.system.activationScripts.script",
        dry="config.system.dryActivationScript",
        manifest="config.nixseal.manifest",
        manifest_file="config.system.build.nixsealManifest.outPath",
        services="builtins.attrNames config.systemd.services",
        failed="failedAssertions",
        warnings="warnings",
    )
    assert r["failed"] == []
    assert any(
        w.startswith('nixseal.activation = "script": activation scripts') for w in r["warnings"]
    )
    snippet = r["snippet"]
    # after etc too: keys that environment.etc places exist at first boot
    assert set(snippet["deps"]) == {"specialfs", "users", "groups", "etc"}
    assert snippet["supportsDryActivation"] is True
    text = snippet["text"]
    assert f"/libexec/nixseal-install --manifest {r['manifest_file']} --dry-run" in text
    assert 'if [ "${NIXOS_ACTION-}" = dry-activate ]' in text
    order = [
        line.split()[-1].rstrip(":")
        for line in r["script"].splitlines()
        if line.startswith("#### Activation")
    ]
    assert order.index("nixseal") > max(
        order.index(d) for d in ("specialfs", "users", "groups", "etc")
    )
    assert "snippet nixseal:" in r["dry"]
    # signalled with systemctl after the switch, not through NixOS's deprecated lists
    assert r["manifest"]["restartListPath"] is None
    assert r["manifest"]["reloadListPath"] is None
    assert "nixseal-install" not in r["services"]


def test_dry_activation_snippet_runs_the_helper_in_dry_run(tmp_path: Path) -> None:
    """The snippet's shell really chooses --dry-run under NIXOS_ACTION=dry-activate."""
    text = host(
        mod(SECRET),
        mod('nixseal.activation = "script";'),
        select="config.system.activationScripts.nixseal.text",
    )
    fake = tmp_path / "nixseal"
    fake.write_text('#!/bin/sh\necho "$@"\n')
    fake.chmod(0o755)
    (launcher,) = {w for w in text.split() if w.endswith("/libexec/nixseal-install")}
    script = text.replace(launcher, str(fake))
    for action, expect_dry in (("dry-activate", True), ("switch", False)):
        out = subprocess.run(
            ["bash", "-euc", script],
            env={"NIXOS_ACTION": action, "PATH": os.environ["PATH"]},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert out.startswith("--manifest ")
        assert out.rstrip().endswith("--dry-run") is expect_dry


# --- the manifest check at build time, run for real --------------------------------


def fake_package(tmp_path: Path) -> Path:
    """A directory standing for the nixseal package: bin/nixseal runs this checkout's helper."""
    out = tmp_path / "pkg"
    (out / "bin").mkdir(parents=True)
    exe = out / "bin" / "nixseal"
    exe.write_text(f'#!/bin/sh\nexec {sys.executable} -m nixseal "$@"\n')
    exe.chmod(0o755)
    write_launcher(out / "libexec/nixseal-install", sys.executable, str(HELPER_DIR), pyrage_site())
    return out


def run_build_command(drv: dict[str, Any], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    manifest = tmp_path / "manifest.json"
    manifest.write_text(on_disk(drv["manifest"]))
    env = {
        "PATH": os.environ["PATH"],
        "manifestPath": str(manifest),
        "out": str(tmp_path / "out.json"),
    }
    return subprocess.run(
        ["bash", "-euc", drv["buildCommand"]], env=env, capture_output=True, text=True, check=False
    )


def test_manifest_build_fails_for_files_not_encrypted_to_the_host(tmp_path: Path) -> None:
    host_key = make_ssh_key(tmp_path)
    other = make_ssh_key(tmp_path, name="other")
    rules = write_rules(tmp_path, host_key.public)
    recipients = {
        "grafana/admin": crypto.parse_recipient(host_key.public, "test"),
        "db": crypto.parse_recipient(other.public, "test"),
    }
    for name, recipient in recipients.items():
        path = tmp_path / f"{name}.age"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(crypto.encrypt(b"value", [recipient]))
    pkg = fake_package(tmp_path)

    def build(secrets: str) -> subprocess.CompletedProcess[str]:
        drv = evaluate(
            f"let d = (h.evalHost {{ pkgsArgs.nixsealOutPath = {nix_string(pkg)};"
            f" modules = [ ({_host_with(rules, secrets)}) ]; }}).config.system.build.nixsealManifest;"
            " in { inherit (d) buildCommand manifest; }",
            readonly=False,
        )
        return run_build_command(drv, tmp_path)

    good = build('nixseal.secrets."grafana/admin" = { };')
    assert good.returncode == 0, good.stderr
    assert json.loads((tmp_path / "out.json").read_text())["secrets"][0]["name"] == "grafana/admin"
    bad = build('nixseal.secrets."grafana/admin" = { }; nixseal.secrets.db = { };')
    assert bad.returncode == 1
    assert "'db'" in bad.stderr
    assert "not encrypted to the host key" in bad.stderr


def _host_with(rules: Path, secrets: str) -> str:
    return (
        '{ networking.hostName = "web1"; services.openssh.enable = true;'
        f" nixseal.rules = {rules}; {secrets} }}"
    )


# --- end to end: evaluated manifest -> nixseal install --root --------------------------

REPORT = r"""
import json, os, sys
from nixseal import cli
root, manifest, bases = sys.argv[1], sys.argv[2], sys.argv[3:]
code = cli.main(["--log-format", "json", "install", "--manifest", manifest, "--root", root])
files = {}
for base in bases:
    top = root + base
    for dirpath, dirnames, filenames in os.walk(top, followlinks=True):
        for name in filenames:
            p = os.path.join(dirpath, name)
            st = os.stat(p)
            files[p[len(root):]] = {
                "content": open(p, "rb").read().decode(),
                "uid": st.st_uid, "gid": st.st_gid, "mode": oct(st.st_mode & 0o7777),
                "link": os.path.islink(p),
            }
fs = os.popen("findmnt -n -o FSTYPE --target " + os.path.realpath(root + bases[0])).read().strip()
print(json.dumps({"code": code, "files": files, "fstype": fs}))
"""


@needs_root
def test_evaluated_host_installs_with_the_helper(tmp_path: Path) -> None:
    key: SshKey = make_ssh_key(tmp_path)
    repo = tmp_path / "repo"
    repo.mkdir()
    rules = write_rules(repo, key.public)
    recipient = crypto.parse_recipient(key.public, "test")
    values = {"grafana/admin": "hunter2", "db": "s3cret\n", "pw": "$6$hash"}
    for name, value in values.items():
        path = repo / f"{name}.age"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(crypto.encrypt(value.encode(), [recipient]))
    rules.write_text(rules.read_text() + '[secrets.pw]\nhosts = ["web1"]\n')

    host_module = f"""{{ config, ... }}: {{
      nixseal.rules = {rules};
      nixseal.identityPaths = [ {nix_string(key.private_path)} ];
      nixseal.secrets."grafana/admin" = {{ owner = "grafana"; restartUnits = [ "grafana.service" ]; }};
      nixseal.secrets.db = {{ path = "/etc/app/db"; mode = "0440"; group = "keys"; }};
      nixseal.secrets.pw.neededForUsers = true;
      nixseal.templates."grafana.ini" = {{
        owner = "grafana";
        content = "[security]\\nadmin_password = ${{config.nixseal.placeholder."grafana/admin"}}\\n";
      }};
    }}"""
    r = evaluate(
        f"let r = h.evalHost {{ modules = [ ({_BASE_FOR_E2E}) ({host_module}) ]; }};"
        " in { manifest = r.config.nixseal.manifest; users = r.config.nixseal.manifestForUsers;"
        " failed = r.failedAssertions; }",
        readonly=False,  # the age files are copied into the store, as on a real build
    )
    assert r["failed"] == []
    assert all(s["file"].startswith("/nix/store/") for s in r["manifest"]["secrets"])

    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/passwd").write_text(
        "root:x:0:0::/root:/bin/sh\ngrafana:x:990:991::/var/empty:/bin/false\n"
    )
    (root / "etc/group").write_text("root:x:0:\nkeys:x:96:\ngrafana:x:991:\n")
    reports = {}
    runs = (
        ("main", r["manifest"], ["/run/secrets", "/etc/app"]),
        ("users", r["users"], ["/run/secrets-for-users"]),
    )
    for label, data, bases in runs:
        manifest = tmp_path / f"{label}.json"
        manifest.write_text(json.dumps(data))
        proc = subprocess.run(
            ["unshare", "--mount", sys.executable, "-c", REPORT, str(root), str(manifest), *bases],
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        reports[label] = json.loads(proc.stdout.splitlines()[-1])

    main = reports["main"]
    assert main["code"] == 0
    assert main["fstype"] == "ramfs"
    files = main["files"]
    admin = files["/run/secrets/grafana/admin"]
    assert (admin["content"], admin["uid"], admin["gid"], admin["mode"]) == (
        "hunter2",
        990,
        991,
        "0o400",
    )
    db = files["/etc/app/db"]
    assert (db["content"], db["uid"], db["gid"], db["mode"]) == ("s3cret\n", 0, 96, "0o440")
    assert db["link"] is True  # a symlink into the generation
    ini = files["/run/secrets/rendered/grafana.ini"]
    assert ini["content"] == "[security]\nadmin_password = hunter2\n"
    assert (ini["uid"], ini["mode"]) == (990, "0o400")
    assert "/run/secrets/pw" not in files

    users = reports["users"]
    assert users["code"] == 0
    assert users["fstype"] == "ramfs"
    pw = users["files"]["/run/secrets-for-users/pw"]
    assert (pw["content"], pw["uid"], pw["gid"], pw["mode"]) == ("$6$hash", 0, 0, "0o400")


_BASE_FOR_E2E = """{
  networking.hostName = "web1";
  users.users.grafana = { isSystemUser = true; group = "grafana"; };
  users.groups.grafana = { };
}"""


# --- docs/options.md ------------------------------------------------------------------


def test_options_doc_is_up_to_date() -> None:
    proc = subprocess.run(
        [
            "nix",
            "--extra-experimental-features",
            "nix-command",
            "eval",
            "--raw",
            "--impure",
            "--expr",
            f"import {REPO_ROOT / 'checks/eval/options-doc.nix'} {{ }}",
        ],
        env=nix_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    current = (REPO_ROOT / "docs/options.md").read_text()
    assert proc.stdout == current, (
        "docs/options.md is out of date with the modules' options: "
        "run checks/eval/gen-options-doc and commit the result"
    )


# --- secrets merge like submodules ---------------------------------------------------


def test_secret_definitions_merge_across_modules_with_priorities() -> None:
    r = host_many(
        mod('nixseal.secrets.s = { file = "/var/lib/s/s.age"; mode = "0440"; };'),
        '{ lib, ... }: { nixseal.secrets.s = { owner = "grafana"; mode = lib.mkForce "0400"; }; }',
        '{ lib, ... }: { nixseal.secrets.s.path = lib.mkDefault "/etc/app/s"; }',
        '{ lib, ... }: { nixseal.secrets.gone = lib.mkIf false { file = "/x.age"; }; }',
        '{ lib, ... }: { nixseal.secrets.t = lib.mkMerge [ { file = "/t.age"; } { group = "keys"; } ]; }',
        s="config.nixseal.secrets.s",
        names="builtins.attrNames config.nixseal.secrets",
        t="config.nixseal.secrets.t.group",
    )
    assert r["s"]["mode"] == "0400"  # mkForce wins over a plain definition
    assert r["s"]["owner"] == "grafana"
    assert r["s"]["group"] == "grafana"  # default follows the merged owner
    assert r["s"]["path"] == "/etc/app/s"  # mkDefault still beats the option default
    assert r["names"] == ["s", "t"]
    assert r["t"] == "keys"


def test_conflicting_secret_definitions_name_the_option() -> None:
    with pytest.raises(NixEvalError) as err:
        host(one_secret(mode='"0440"'), mod('nixseal.secrets.s.mode = "0400";'))
    assert "The option `nixseal.secrets.s.mode' has conflicting definition values" in str(err.value)


def test_unknown_secret_field_is_an_error() -> None:
    with pytest.raises(NixEvalError) as err:
        host(one_secret(ownr='"grafana"'))
    assert "The option `nixseal.secrets.s.ownr' does not exist" in str(err.value)


def test_secret_defined_as_a_function_is_refused_clearly() -> None:
    with pytest.raises(NixEvalError) as err:
        host(mod('nixseal.secrets.s = { name, ... }: { file = "/x.age"; };'))
    message = str(err.value)
    assert "The option `nixseal.secrets.s' is defined in" in message
    assert "as a function: entries of `nixseal.secrets' must be attribute sets" in message
    with pytest.raises(NixEvalError) as err:
        host(mod("nixseal.templates.t = ./.;"))
    assert "as a path: entries of `nixseal.templates' must be attribute sets" in str(err.value)


def test_the_limitation_is_documented_in_the_options() -> None:
    descriptions = host(
        mod(""),
        select="{ s = options.nixseal.secrets.description; t = options.nixseal.templates.description; }",
    )
    assert "cannot be a function" in descriptions["s"]
    assert "no functions" in descriptions["t"]


def test_a_module_may_add_fields_to_secrets_as_to_a_submodule() -> None:
    """Declaring nixseal.secrets again with extra options, as with any submodule."""
    extend = (
        "{ lib, ... }: { options.nixseal.secrets = lib.mkOption { type = lib.types.attrsOf"
        " (lib.types.submodule ({ config, ... }: { options.backup = lib.mkOption"
        ' { type = lib.types.bool; default = config.owner == "root"; }; })); }; }'
    )
    r = host_many(
        one_secret(owner='"grafana"'),
        mod('nixseal.secrets.r.file = "/r.age";'),
        extend,
        s="config.nixseal.secrets.s",
        r="config.nixseal.secrets.r.backup",
        manifest="map (s: s.path) config.nixseal.manifest.secrets",
    )
    assert (r["s"]["group"], r["s"]["path"], r["s"]["backup"]) == (
        "grafana",
        "/run/secrets/s",
        False,
    )
    assert r["r"] is True
    assert sorted(r["manifest"]) == ["/run/secrets/r", "/run/secrets/s"]


def test_fields_of_several_record_declarations_make_one_record() -> None:
    """How the module's features add fields: the entry stays a record of all of them."""
    record = f"import {REPO_ROOT}/modules/lib/record.nix {{ inherit lib; }}"
    extend = (
        "{ lib, ... }: { options.nixseal.secrets = lib.mkOption { type = lib.types.attrsOf"
        f" ({record} ({{ config, ... }}: {{ options.backup = lib.mkOption"
        ' { type = lib.types.bool; default = config.owner == "root"; }; })); }; }'
    )
    r = host_many(one_secret(owner='"grafana"'), extend, s="config.nixseal.secrets.s")
    assert (r["s"]["backup"], r["s"]["group"], r["s"]["neededForUsers"]) == (
        False,
        "grafana",
        False,
    )
    with pytest.raises(NixEvalError) as err:  # a record, not a submodule: no functions
        host(extend, mod('nixseal.secrets.f = { name, ... }: { file = "/f.age"; };'))
    assert "as a function: entries of `nixseal.secrets' must be attribute sets" in str(err.value)
    with pytest.raises(NixEvalError) as err:
        host(one_secret(), extend.replace("options.backup", "options.owner"))
    assert "The option `nixseal.secrets.s.owner' in" in str(err.value)
    assert "is already declared in" in str(err.value)


def test_type_errors_in_entries_name_the_option_and_the_file() -> None:
    with pytest.raises(NixEvalError) as err:
        host(one_secret(owner="5"))
    assert "A definition for option `nixseal.secrets.s.owner' is not of type `string'" in str(
        err.value
    )
    with pytest.raises(NixEvalError) as err:
        host(mod('nixseal.secrets.s = "abc";'))
    assert "`nixseal.secrets.s' is not of type `submodule'" in str(err.value)


def test_missing_file_without_rules_names_the_option() -> None:
    with pytest.raises(NixEvalError) as err:
        host(mod("nixseal.secrets.s = { };"))
    assert "The option `nixseal.secrets.s.file' was accessed but has no value defined" in str(
        err.value
    )


def test_password_secrets_under_nixos_init_need_userborn_or_sysusers() -> None:
    messages = failed(one_secret(neededForUsers="true"), mod("system.nixos-init.enable = true;"))
    assert any(
        m.startswith('nixseal.secrets.<name>.neededForUsers (set for "s") needs services.userborn')
        and "set neededForUsers = false" in m
        for m in messages
    ), messages
    assert (
        failed(
            one_secret(neededForUsers="true"),
            mod("system.nixos-init.enable = true; services.userborn.enable = true;"),
        )
        == []
    )


def test_eval_host_entry_point_returns_config() -> None:
    """The documented command line: checks/eval/eval-host.nix --arg modules [...]."""
    host_file = REPO_ROOT / "checks/eval/eval-host.nix"
    proc = subprocess.run(
        [
            "nix-instantiate",
            "--eval",
            "--strict",
            "--json",
            str(host_file),
            "--arg",
            "modules",
            '[ { networking.hostName = "h"; nixseal.secrets.s = { file = "/s.age"; }; } ]',
            "-A",
            "nixseal.manifest.secrets",
        ],
        env=nix_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert [s["path"] for s in json.loads(proc.stdout)] == ["/run/secrets/s"]


def test_nested_groups_give_secrets_as_the_cli_does(tmp_path: Path) -> None:
    # [groups] all = ["@web"]: the CLI encrypts @all secrets to web1, so the
    # module must count them as given to web1 too.
    rules = tmp_path / "secrets.toml"
    rules.write_text(
        'version = 1\n[hosts.web1]\nkey = "age1x"\n[hosts.db1]\nkey = "age1y"\n'
        '[groups]\nweb = ["web1"]\nall = ["@web", "db1"]\n'
        '[secrets.a]\nhosts = ["@all"]\n[secrets.b]\nhosts = ["db1"]\n'
    )
    given = host(mod(f"nixseal.rules = {nix_string(rules)};"), select="config.nixseal.rulesSecrets")
    assert given == ["a"]


def test_group_cycle_in_rules_is_an_error(tmp_path: Path) -> None:
    rules = tmp_path / "secrets.toml"
    rules.write_text(
        'version = 1\n[hosts.web1]\nkey = "age1x"\n[groups]\na = ["@b"]\nb = ["@a"]\n'
        '[secrets.s]\nhosts = ["@a"]\n'
    )
    with pytest.raises(NixEvalError) as err:
        host(mod(f"nixseal.rules = {nix_string(rules)};"), select="config.nixseal.rulesSecrets")
    assert "group cycle" in str(err.value)


# --- what real NixOS would break (each of these failed before its fix) ------------


def test_password_unit_is_not_after_local_fs_and_waits_for_no_stage_two_mount() -> None:
    """userborn runs before local-fs-pre.target: a unit before it cannot be after local-fs.target."""
    unit = host(
        one_secret(neededForUsers="true"),
        mod("services.userborn.enable = true;"),
        select="config.systemd.services.nixseal-install-for-users",
    )
    assert "local-fs.target" not in unit["after"]
    assert "RequiresMountsFor" not in unit["unitConfig"]


def test_main_unit_still_waits_for_keys_on_a_persistent_mount() -> None:
    unit = host(
        one_secret(),
        mod(
            'fileSystems."/persist" = { device = "/dev/vdb"; fsType = "ext4"; };'
            ' nixseal.identityPaths = [ "/persist/key.txt" ];'
        ),
        select="config.systemd.services.nixseal-install",
    )
    assert unit["unitConfig"]["RequiresMountsFor"] == ["/persist/key.txt"]
    assert "local-fs.target" in unit["after"]


@pytest.mark.parametrize("needed", ["true", "false"])
def test_password_keys_must_be_on_a_file_system_of_the_initrd(needed: str) -> None:
    messages = failed(
        one_secret(neededForUsers="true"),
        mod(
            "services.userborn.enable = true;"
            f' fileSystems."/persist" = {{ device = "/dev/vdb"; fsType = "ext4"; neededForBoot = {needed}; }};'
            ' nixseal.identityPaths = [ "/persist/key.txt" ];'
        ),
    )
    found = [m for m in messages if "neededForBoot" in m]
    if needed == "true":
        assert found == []
    else:
        (message,) = found
        assert 'set fileSystems."/persist".neededForBoot = true' in message
        assert "/persist/key.txt" in message


def test_a_changed_password_secret_restarts_userborn() -> None:
    m = host(
        one_secret(neededForUsers="true"),
        mod("services.userborn.enable = true;"),
        select="config.nixseal.manifestForUsers",
    )
    assert m["secrets"][0]["restartUnits"] == ["userborn.service"]


def test_sysusers_warns_that_a_changed_password_waits_for_a_new_user() -> None:
    warnings = host(
        one_secret(neededForUsers="true"),
        mod("systemd.sysusers.enable = true;"),
        select="warnings",
    )
    (warning,) = [w for w in warnings if "systemd-sysusers" in w]
    assert 'nixseal.secrets."s".neededForUsers' in warning
    assert "systemd.sysusers.enable" in warning


def test_script_mode_restarts_after_the_switch_without_restart_lists() -> None:
    r = host_many(
        mod(SECRET),
        mod('nixseal.activation = "script";'),
        manifest="config.nixseal.manifest",
        manifest_file="config.system.build.nixsealManifest.outPath",
        snippet="config.system.activationScripts.nixseal.text",
        unit="config.systemd.services.nixseal-restart-units",
    )
    assert (r["manifest"]["restartListPath"], r["manifest"]["reloadListPath"]) == (None, None)
    assert "--defer-signals" in r["snippet"]
    unit = r["unit"]
    assert unit["restartTriggers"] == [r["manifest_file"]]
    assert unit["serviceConfig"]["ExecStart"] == [
        f"/nix/store/{unit['serviceConfig']['ExecStart'][0].split('/nix/store/')[1].split()[0]}"
        f" --manifest {r['manifest_file']} --signal-pending"
    ]
    assert unit["wantedBy"] == ["multi-user.target"]


def test_a_nixpkgs_without_nixos_init_evaluates() -> None:
    for extra in ('nixseal.activation = "script";', ""):
        modules = f"({BASE_HOST_EXPR}) ({one_secret(neededForUsers='true')}) ({mod(extra)})"
        expr = f"(h.evalHost {{ nixosInit = false; modules = [ {modules} ]; }}).failedAssertions"
        assert evaluate(expr) == []


def test_a_disabled_user_is_no_owner() -> None:
    messages = failed(one_secret(owner='"grafana"'), mod("users.users.grafana.enable = false;"))
    assert any(
        'owner: user "grafana" is disabled (users.users.grafana.enable = false)' in m
        for m in messages
    ), messages


@pytest.mark.parametrize(
    "value",
    ['[ "/nix/store/0000000000000000000000000000000a-key" ]', "[ ./. ]", '[ "relative/key" ]'],
)
def test_identity_paths_refuse_the_store_and_path_literals(value: str) -> None:
    with pytest.raises(NixEvalError) as err:
        host(one_secret(), mod(f"nixseal.identityPaths = {value};"))
    assert "absolute path outside the Nix store" in str(err.value)


def test_manifest_options_are_typed_and_prose_defaults_are_markdown() -> None:
    r = host_many(
        mod(SECRET),
        types='map (n: options.nixseal.${n}.type.name) [ "manifest" "manifestForUsers" ]',
        texts='map (o: o.defaultText) (builtins.filter (o: o ? defaultText) (lib.collect (o: o ? _type && o._type == "option") options.nixseal))',
    )
    assert "attrs" not in r["types"]
    for text in r["texts"]:
        assert text["_type"] in {"literalMD", "literalExpression"}, text
        if text["_type"] == "literalExpression":
            parsed = subprocess.run(
                ["nix-instantiate", "--parse", "-E", "{ config, lib, pkgs, ... }: " + text["text"]],
                capture_output=True,
                check=False,
            )
            assert parsed.returncode == 0, f"prose in literalExpression: {text['text']}"


def test_no_comment_names_a_file_the_project_does_not_have() -> None:
    for path in [*REPO_ROOT.glob("modules/**/*.nix"), *REPO_ROOT.glob("helper/nixseal/*.py")]:
        assert "DESIGN.md" not in path.read_text(), path


# --- secrets as systemd credentials (modules/security/credentials.nix) ----------------

GRAFANA = "systemd.services.grafana = { serviceConfig.DynamicUser = true; };"


def test_a_credential_is_loaded_by_its_services_and_restarts_them() -> None:
    got = host_many(
        mod(
            GRAFANA
            + ' systemd.services.grafana.serviceConfig.LoadCredential = [ "own:/etc/own" ];'
            + " systemd.services.api = { };"
            + ' nixseal.secrets."grafana/admin-password" = { file = "/var/lib/s/a.age";'
            + ' credentialFor = [ "grafana.service" "api.service" ]; restartUnits = [ "x.service" "grafana.service" ]; };'
            + ' nixseal.secrets."grafana/db" = { file = "/var/lib/s/d.age"; credentialFor = [ "grafana.service" ]; credentialName = "db"; };'
        ),
        grafana="config.systemd.services.grafana.serviceConfig",
        api="config.systemd.services.api.serviceConfig",
        manifest="config.nixseal.manifest",
        name='config.nixseal.secrets."grafana/admin-password".credentialName',
        failed="failedAssertions",
    )
    assert got["failed"] == []
    assert got["name"] == "grafana-admin-password"
    # One line per secret, after the service's own: nixpkgs renders a list so.
    assert got["grafana"]["LoadCredential"] == [
        "own:/etc/own",
        "grafana-admin-password:/run/secrets/grafana/admin-password",
        "db:/run/secrets/grafana/db",
    ]
    assert "LoadCredentialEncrypted" not in got["grafana"]
    assert got["api"] == {
        "LoadCredential": ["grafana-admin-password:/run/secrets/grafana/admin-password"]
    }
    by_name = {s["name"]: s for s in got["manifest"]["secrets"]}
    # Credentials are copied at start: the units given one restart on a change.
    assert by_name["grafana/admin-password"]["restartUnits"] == [
        "x.service",
        "grafana.service",
        "api.service",
    ]
    assert by_name["grafana/db"]["restartUnits"] == ["grafana.service"]
    assert all(s["seal"] is None for s in by_name.values())
    assert got["manifest"]["systemdCreds"] is None


def test_a_sealed_credential_is_loaded_encrypted_and_named_in_the_manifest() -> None:
    got = host_many(
        mod(
            GRAFANA
            + ' nixseal.secrets."grafana/admin-password" = { file = "/var/lib/s/a.age";'
            + ' credentialFor = [ "grafana.service" ]; sealCredential = true; mode = "0440"; };'
            + ' nixseal.secrets.other.file = "/var/lib/s/o.age";'
        ),
        grafana="config.systemd.services.grafana.serviceConfig",
        manifest="config.nixseal.manifest",
        systemd="config.systemd.package.outPath",
        mounts="config.systemd.services.nixseal-install.unitConfig.RequiresMountsFor",
    )
    assert got["grafana"]["LoadCredentialEncrypted"] == [
        "grafana-admin-password:/run/secrets/grafana/admin-password"
    ]
    assert "LoadCredential" not in got["grafana"]
    by_name = {s["name"]: s for s in got["manifest"]["secrets"]}
    assert by_name["grafana/admin-password"]["seal"] == "grafana-admin-password"
    assert by_name["grafana/admin-password"]["mode"] == "0440"
    assert by_name["other"]["seal"] is None
    assert got["manifest"]["systemdCreds"] == f"{got['systemd']}/bin/systemd-creds"
    # The host key of systemd-creds lives there.
    assert "/var/lib/systemd" in got["mounts"]
    assert set(got["manifest"]) == TOP_KEYS
    parsed = manifest_mod.parse(json.dumps(got["manifest"]))
    assert parsed.systemd_creds == got["manifest"]["systemdCreds"]


def test_sealing_without_credential_for_is_fine_and_plain_hosts_wait_for_no_var_lib() -> None:
    got = host_many(
        one_secret(sealCredential="true"),
        manifest="config.nixseal.manifest",
        failed="failedAssertions",
        warnings="warnings",
    )
    assert got["failed"] == [] and got["warnings"] == []
    assert got["manifest"]["secrets"][0]["seal"] == "s"
    mounts = host(
        mod(SECRET), select="config.systemd.services.nixseal-install.unitConfig.RequiresMountsFor"
    )
    assert "/var/lib/systemd" not in mounts


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            'credentialFor = [ "grafana.socket" ];',
            'nixseal.secrets."s".credentialFor: "grafana.socket" is not a .service unit (only services load credentials): list the service that reads the secret',
        ),
        (
            'credentialFor = [ "nope.service" ];',
            'nixseal.secrets."s".credentialFor: "nope.service" is not defined in systemd.services: enable or declare the service, or remove it from the list',
        ),
        (
            'credentialFor = [ "grafana.service" ]; neededForUsers = true; sealCredential = true;',
            'nixseal.secrets."s".sealCredential: a neededForUsers secret cannot be sealed (users.users.<name>.hashedPasswordFile reads the file itself, and it is installed before users exist): set sealCredential = false, or neededForUsers = false',
        ),
    ],
)
def test_credential_mistakes_name_the_option(fields: str, message: str) -> None:
    assert message in failed(
        mod(GRAFANA),
        one_secret(**dict([f.strip().split(" = ", 1) for f in fields.rstrip(";").split(";")])),
    )


def test_two_secrets_giving_one_unit_the_same_id_name_both_options() -> None:
    messages = failed(
        mod(
            GRAFANA
            + ' nixseal.secrets."a/x" = { file = "/f/a"; credentialFor = [ "grafana.service" ]; };'
            + ' nixseal.secrets.b = { file = "/f/b"; credentialFor = [ "grafana.service" ]; credentialName = "a-x"; };'
        )
    )
    assert messages == [
        'nixseal.secrets."a/x".credentialName and nixseal.secrets."b".credentialName: both give "grafana.service" the credential "a-x": set a different credentialName on one of them'
    ]


def test_a_password_secret_may_be_a_credential_from_its_own_directory() -> None:
    got = host_many(
        mod(
            GRAFANA
            + ' nixseal.secrets.pw = { file = "/f/pw"; neededForUsers = true; credentialFor = [ "grafana.service" ]; };'
        ),
        grafana="config.systemd.services.grafana.serviceConfig",
        forUsers="config.nixseal.manifestForUsers",
        failed="failedAssertions",
    )
    assert got["failed"] == []
    assert got["grafana"]["LoadCredential"] == ["pw:/run/secrets-for-users/pw"]
    (pw,) = got["forUsers"]["secrets"]
    assert pw["restartUnits"] == ["grafana.service"] and pw["seal"] is None
    assert got["forUsers"]["systemdCreds"] is None


def test_script_mode_seals_only_with_var_lib_systemd_mounted_in_the_initrd() -> None:
    sealed = one_secret(sealCredential="true")
    late = mod(
        'nixseal.activation = "script";'
        ' fileSystems."/var/lib/systemd" = { device = "/dev/vdb"; fsType = "ext4"; };'
    )
    assert failed(sealed, late) == [
        'nixseal.secrets.<name>.sealCredential needs /var/lib/systemd (the host key of systemd-creds) when the activation script installs secrets, but it is on fileSystems."/var/lib/systemd", mounted later: set fileSystems."/var/lib/systemd".neededForBoot = true, or nixseal.activation = "systemd"'
    ]
    early = mod('fileSystems."/var/lib/systemd".neededForBoot = true;')
    assert failed(sealed, late, early) == []
    assert failed(sealed, mod('nixseal.activation = "script";')) == []


# --- public outputs of generators ---------------------------------------------------


def write_generator_rules(directory: Path) -> Path:
    rules = write_rules(directory)
    rules.write_text(
        rules.read_text()
        + textwrap.dedent(
            """\
            [secrets."wg/web2"]
            hosts = ["web2"]
            generator = "wireguard"
            [secrets."web/htpasswd"]
            generator = { kind = "htpasswd", password = "db", user = "admin", public = true }
            [secrets.pair]
            hosts = ["web1"]
            generator = { command = "gen.sh", outputs = ["key", "conf", "pub", "peer"], public = ["pub", "peer"] }
            [secrets.hidden]
            generator = "password"
            """
        )
    )
    (directory / "wg").mkdir()
    (directory / "wg/web2.pub").write_text("hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=\n")
    (directory / "pair.pub").write_text("line one\nline two\n")
    return rules


def test_public_outputs_are_read_from_the_rules_directory(tmp_path: Path) -> None:
    rules = write_generator_rules(tmp_path)
    r = host_many(
        mod(f"nixseal.rules = {nix_string(rules)};"),
        names="builtins.attrNames config.nixseal.public",
        wg='config.nixseal.public."wg/web2"',
        pair="config.nixseal.public.pair.text",
        given="config.nixseal.rulesSecrets",
    )
    # Every host sees every public output: web1 reads web2's key.
    assert r["names"] == ["pair", "pair.peer", "web/htpasswd", "wg/web2"]
    assert r["wg"] == {
        "text": "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=",
        "file": str(tmp_path / "wg/web2.pub"),
        "secret": "wg/web2",
    }
    assert r["pair"] == "line one\nline two"
    # A further secret output is a secret of its own, with its maker's readers.
    assert sorted(r["given"]) == ["db", "grafana/admin", "pair", "pair.conf"]


def test_a_missing_public_output_fails_when_read_naming_the_fix(tmp_path: Path) -> None:
    rules = write_generator_rules(tmp_path)
    module = mod(f"nixseal.rules = {nix_string(rules)};")
    assert host(module, select='config.nixseal.public ? "web/htpasswd"') is True
    with pytest.raises(NixEvalError) as err:
        host(module, select='config.nixseal.public."web/htpasswd".text')
    assert (
        f'nixseal: public output "web/htpasswd": {tmp_path}/web/htpasswd.pub is missing: '
        "run `nixseal rotate web/htpasswd` and commit it"
    ) in str(err.value)


def test_public_outputs_are_read_only_and_empty_without_rules() -> None:
    assert host(mod(""), select="config.nixseal.public") == {}
    with pytest.raises(NixEvalError) as err:
        host(
            mod('nixseal.public.x = { text = "a"; file = ./.; secret = "x"; };'),
            select="config.nixseal.public",
        )
    assert "nixseal.public" in str(err.value) and "read-only" in str(err.value)


def test_public_of_reads_a_rules_directory(tmp_path: Path) -> None:
    write_generator_rules(tmp_path)
    public = f"(import {nix_string(REPO_ROOT / 'modules/lib/public.nix')} {{ inherit lib; }})"
    key = evaluate(f'{public}.publicOf {nix_string(tmp_path)} "wg/web2"')
    assert key == "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo="
    with pytest.raises(NixEvalError) as err:
        evaluate(f'{public}.publicOf {nix_string(tmp_path)} "hidden"')
    assert f'nixseal.lib.publicOf: {tmp_path}/secrets.toml has no public output "hidden"' in str(
        err.value
    )


# --- many values in one file ---------------------------------------------------


def _document_rules(directory: Path) -> Path:
    rules = write_rules(directory)
    with rules.open("a") as f:
        f.write('[secrets.app]\nhosts = ["web1"]\nformat = "yaml"\n')
        f.write('[secrets.elsewhere]\nhosts = ["web2"]\nformat = "json"\n')
    return rules


def test_an_entry_takes_a_key_of_its_rules_document(tmp_path: Path) -> None:
    rules = _document_rules(tmp_path)
    m = host(
        mod(
            f"nixseal.rules = {nix_string(rules)};"
            ' nixseal.secrets."app/db-password" = { document = "app"; key = "db/password"; };'
            ' nixseal.secrets."app/odd" = { document = "app"; key = "a\\\\/b/c\\\\\\\\d/0"; };'
            " nixseal.secrets.db = { };"
        )
    )
    by_name = {s["name"]: s for s in m["secrets"]}
    pw = by_name["app/db-password"]
    # the file and the format are the document's, from the rules
    assert pw["file"] == str(tmp_path / "app.age")
    assert (pw["format"], pw["key"]) == ("yaml", ["db", "password"])
    assert pw["path"] == "/run/secrets/app/db-password"
    assert by_name["app/odd"]["key"] == ["a/b", "c\\d", "0"]
    assert (by_name["db"]["format"], by_name["db"]["key"]) == ("binary", [])
    manifest_mod.parse(json.dumps(m))  # the helper reads what the module writes


def test_the_rules_check_goes_through_the_document(tmp_path: Path) -> None:
    rules = _document_rules(tmp_path)
    messages = failed(
        mod(
            f"nixseal.rules = {nix_string(rules)};"
            ' nixseal.secrets.x = { document = "elsewhere"; key = "k"; };'
            ' nixseal.secrets.y = { document = "nowhere"; key = "k"; format = "json"; };'
        )
    )
    assert (
        f'nixseal.secrets."x": the rules file {rules} does not give secret "elsewhere" to host '
        '"web1": add "web1" to hosts of [secrets."elsewhere"] and run nixseal rekey, or remove '
        'nixseal.secrets."x"'
    ) in messages
    assert any(
        m.startswith(f'nixseal.secrets."y": the rules file {rules} has no [secrets."nowhere"]')
        for m in messages
    )


def test_format_defaults_to_binary_without_rules_and_may_be_set() -> None:
    m = host(
        mod(
            'nixseal.secrets.a.file = "/var/lib/s/a.age";'
            ' nixseal.secrets.b = { file = "/var/lib/s/b.age"; format = "toml"; key = "x"; };'
        )
    )
    by_name = {s["name"]: s for s in m["secrets"]}
    assert (by_name["a"]["format"], by_name["a"]["key"]) == ("binary", [])
    assert (by_name["b"]["format"], by_name["b"]["key"]) == ("toml", ["x"])


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (
            'key = "db/password";',
            'nixseal.secrets."s".key: "db/password" is set but nixseal.secrets."s".format is '
            '"binary", a file without keys',
        ),
        ('format = "json"; key = "a//b";', 'nixseal.secrets."s".key: "a//b" is not a key'),
        ('format = "json"; key = "a\\\\b";', 'nixseal.secrets."s".key: "a\\b" is not a key'),
        (
            'format = "ini"; key = "password";',
            'nixseal.secrets."s".key: "password" has 1 segments; a key of a ini document has 2',
        ),
    ],
)
def test_a_key_that_cannot_be_taken_fails_naming_the_option(fields: str, expected: str) -> None:
    messages = failed(one_secret().replace("};", f"{fields} }};", 1))
    assert any(m.startswith(expected) for m in messages), messages


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(NixEvalError, match="format"):
        host(one_secret(format='"xml"'))
