"""modules/security/readiness.nix: nixseal-secrets.target and neededBy.

Evaluated offline against the stubs, then booted under real systemd: a
first boot where one secret cannot be decrypted leaves the target
unreached and the service that needs the secret unstarted (naming its
path), while the rest boots; a switch that repairs it reaches the target.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from _guesthost import GuestHost
from _nixeval import failed, host_many
from _nspawn import GUEST_PACKAGE, Guest, needs_nspawn
from _twin import TEST_KEYS, evaluate
from conftest import NIXPKGS_LIB, REPO_ROOT, needs_nix

pytestmark = needs_nix

SECRETS = """
  nixseal.secrets."db/password" = { file = "/var/lib/s/db.age"; owner = "grafana"; };
  nixseal.templates."app.env".content = "X=${config.nixseal.placeholder."db/password"}";
  systemd.services.web.script = "true";
  systemd.services.api.script = "true";
"""


def mod(body: str) -> str:
    return "{ config, ... }: { " + SECRETS + body + " }"


def units(*bodies: str) -> dict[str, Any]:
    return host_many(
        *(mod(b) for b in bodies),
        targets="config.systemd.targets",
        services="config.systemd.services",
        failed="failedAssertions",
    )


def test_the_target_requires_the_install_and_is_pulled_in_by_it() -> None:
    r = units("")
    target = r["targets"]["nixseal-secrets"]
    assert target["requires"] == ["nixseal-install.service"]
    assert target["after"] == ["nixseal-install.service"]
    assert target["wantedBy"] == ["multi-user.target", "nixseal-install.service"]
    assert "nixseal-secrets-check" not in r["services"]


def test_script_mode_checks_what_activation_installed_by_a_dry_run() -> None:
    r = units('nixseal.activation = "script";')
    target = r["targets"]["nixseal-secrets"]
    assert target["requires"] == ["nixseal-secrets-check.service"]
    check = r["services"]["nixseal-secrets-check"]
    (start,) = check["serviceConfig"]["ExecStart"]
    assert start.endswith("--dry-run") and "nixseal-manifest.json" in start
    assert check["restartTriggers"]


def test_password_secrets_count_too() -> None:
    pw = 'nixseal.secrets."alice/pw" = { file = "/var/lib/s/pw.age"; neededForUsers = true; };'
    by_unit = units(pw + "services.userborn.enable = true;")["targets"]["nixseal-secrets"]
    assert by_unit["requires"] == [
        "nixseal-install.service",
        "nixseal-install-for-users.service",
    ]
    # Users made by the activation script: its snippet installs them; the
    # check unit finds its result again.
    by_snippet = units(pw)
    assert by_snippet["targets"]["nixseal-secrets"]["requires"] == [
        "nixseal-install.service",
        "nixseal-secrets-check.service",
    ]
    (start,) = by_snippet["services"]["nixseal-secrets-check"]["serviceConfig"]["ExecStart"]
    assert "nixseal-manifest-for-users.json" in start


def test_no_entries_no_target() -> None:
    r = host_many("{ }", targets="builtins.attrNames config.systemd.targets")
    assert "nixseal-secrets" not in r["targets"]


def test_needed_by_asserts_each_path_and_orders_after_the_install() -> None:
    r = units(
        'nixseal.secrets."db/password".neededBy = [ "web.service" "api.service" ];'
        'nixseal.templates."app.env".neededBy = [ "web.service" ];'
        # a string of the service's own joins the list, as in nixpkgs
        'systemd.services.web.unitConfig.AssertPathExists = "/etc/web.conf";'
    )
    web = r["services"]["web"]
    assert sorted(web["unitConfig"]["AssertPathExists"]) == [
        "/etc/web.conf",
        "/run/secrets/db/password",
        "/run/secrets/rendered/app.env",
    ]
    assert "nixseal-install.service" in web["after"]
    assert r["services"]["api"]["unitConfig"]["AssertPathExists"] == ["/run/secrets/db/password"]
    assert r["failed"] == []


def test_needed_by_a_unit_that_does_not_exist_or_is_no_service() -> None:
    messages = failed(
        mod(
            'nixseal.secrets."db/password".neededBy = [ "wbe.service" "web.socket" ];'
            'nixseal.templates."app.env".neededBy = [ "ghost.service" ];'
        )
    )
    assert (
        'nixseal.secrets."db/password".neededBy: "wbe.service" is not defined in '
        "systemd.services: fix the unit's name, or define systemd.services.wbe" in messages
    )
    assert any(
        m.startswith('nixseal.secrets."db/password".neededBy: "web.socket" is not a service')
        for m in messages
    )
    assert any(
        m.startswith('nixseal.templates."app.env".neededBy: "ghost.service"') for m in messages
    )


# --- under real systemd ------------------------------------------------------------

CORRUPT = REPO_ROOT / "checks/scenarios/files/web1-app-token-corrupt.age"

# web1 whose app token is needed by webapp, and a service that requires the target.
GATED = """{ config, pkgs, ... }: {
  nixseal.secrets."web1/app-token".neededBy = [ "webapp.service" ];
  systemd.services.gated = {
    wantedBy = [ "multi-user.target" ];
    requires = [ "nixseal-secrets.target" ];
    after = [ "nixseal-secrets.target" ];
    serviceConfig.ExecStart = "${pkgs.coreutils}/bin/sleep infinity";
  };
}"""
BROKEN = '{ nixseal.secrets."web1/app-token".file = ' + str(CORRUPT) + "; }"


def systems(*extra: str) -> dict[str, Any]:
    env = {**os.environ, "NIXPKGS_LIB": str(NIXPKGS_LIB)}
    good = evaluate(env, GUEST_PACKAGE, [GATED, *extra], only=["install-at-boot"])
    bad = evaluate(env, GUEST_PACKAGE, [GATED, BROKEN, *extra], only=["install-at-boot"])
    return {"good": good["install-at-boot"]["base"], "bad": bad["install-at-boot"]["base"]}


def state(guest: Guest, unit: str) -> str:
    return guest.run(["systemctl", "is-active", unit]).stdout.strip()


@needs_nspawn
def test_a_failed_secret_keeps_its_services_and_the_target_down_under_systemd(
    tmp_path: Path,
) -> None:
    both = systems()
    web1 = GuestHost(both["bad"], TEST_KEYS / "web1_ssh_host_ed25519_key", tmp_path / "s")
    with web1.guest() as guest:
        assert state(guest, "nixseal-install.service") == "failed"
        assert state(guest, "nixseal-secrets.target") != "active"
        # the service that needs the secret did not start, and says why ...
        web = guest.show("webapp.service", "AssertResult", "ActiveState")
        assert web == {"AssertResult": "no", "ActiveState": "inactive"}, web
        status = guest.run(["systemctl", "status", "--no-pager", "webapp.service"]).stdout
        assert "AssertPathExists=/run/secrets/web1/app-token" in status, status
        # ... the one that requires every secret did not either ...
        assert state(guest, "gated.service") != "active"
        # ... and the rest booted
        assert state(guest, "webapp-worker.service") == "active"
        assert state(guest, "multi-user.target") == "active"

        # A switch that repairs the file reaches the target again.
        assert web1.switch(guest, both["good"]) == 0, guest.journal("nixseal-install.service")
        guest.wait_until("the target", lambda: state(guest, "nixseal-secrets.target") == "active")
        guest.systemctl("start", "webapp.service", "gated.service")
        assert state(guest, "webapp.service") == "active"
        assert state(guest, "gated.service") == "active"


@needs_nspawn
def test_script_mode_target_follows_the_activation_under_systemd(tmp_path: Path) -> None:
    both = systems('{ nixseal.activation = "script"; }')
    for name, reached in (("bad", False), ("good", True)):
        web1 = GuestHost(both[name], TEST_KEYS / "web1_ssh_host_ed25519_key", tmp_path / name)
        with web1.guest() as guest:
            assert (state(guest, "nixseal-secrets.target") == "active") is reached, name
            assert (state(guest, "gated.service") == "active") is reached, name
            check = "failed" if not reached else "active"
            assert state(guest, "nixseal-secrets-check.service") == check, name
