"""modules/security/restarts.nix: services that name a secret's or a
template's path are restarted when it changes, listed or not.

Evaluated offline against the stubs; the real-systemd proof (a service
whose EnvironmentFile is a template, restarted by a switch without being
listed) is test_inferred_restart_under_systemd at the end.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from _guesthost import GuestHost, snapshot
from _nixeval import NixEvalError, host, host_many
from _nspawn import GUEST_PACKAGE, needs_nspawn
from _twin import TEST_KEYS, evaluate
from conftest import NIXPKGS_LIB, needs_nix

pytestmark = needs_nix

SECRETS = """
  nixseal.secrets."db/password" = { file = "/var/lib/s/db.age"; owner = "grafana"; };
  nixseal.secrets."api/token" = { file = "/var/lib/s/api.age"; path = "/etc/app/token"; };
  nixseal.templates."app.env".content = "X=${config.nixseal.placeholder."db/password"}";
"""


def mod(body: str) -> str:
    return "{ config, pkgs, ... }: { " + SECRETS + body + " }"


def restarts(*bodies: str) -> dict[str, list[str]]:
    m = host(*(mod(b) for b in bodies))
    return {e["name"]: e["restartUnits"] for e in [*m["secrets"], *m["templates"]]}


def test_paths_named_anywhere_in_a_service_restart_it() -> None:
    got = restarts(
        # EnvironmentFile of a template, with systemd's "-" prefix
        'systemd.services.web.serviceConfig.EnvironmentFile = "-${config.nixseal.templates."app.env".path}";'
        # a script reading the secret through $(...)
        'systemd.services.job.script = "pw=$(cat ${config.nixseal.secrets."db/password".path})";'
        # LoadCredential's id:path
        'systemd.services.cred.serviceConfig.LoadCredential = [ "tok:/etc/app/token" ];'
        # an environment variable naming the file behind a custom path
        'systemd.services.env.environment.TOKEN_FILE = "/run/secrets/api/token";'
        # a list-valued ExecStartPre
        'systemd.services.pre.serviceConfig.ExecStartPre = [ "${pkgs.coreutils}/bin/test -r /run/secrets/db/password" ];'
        # a path that merely starts like a secret's is not a match
        'systemd.services.other.serviceConfig.ExecStart = "/bin/cat /run/secrets/db/password.bak";'
    )
    assert got["app.env"] == ["web.service"]
    assert sorted(got["db/password"]) == ["job.service", "pre.service"]
    assert sorted(got["api/token"]) == ["cred.service", "env.service"]


def test_listed_units_stay_first_and_are_not_repeated() -> None:
    got = restarts(
        'nixseal.secrets."db/password".restartUnits = [ "job.service" "a.service" ];'
        'systemd.services.job.script = "cat /run/secrets/db/password";'
    )
    assert got["db/password"] == ["job.service", "a.service"]


def test_reload_units_restart_if_changed_false_and_opt_outs_are_left_alone() -> None:
    got = restarts(
        # reloaded, not restarted
        'nixseal.secrets."db/password".reloadUnits = [ "rel.service" ];'
        'systemd.services.rel.script = "cat /run/secrets/db/password";'
        # a unit that a switch never restarts
        "systemd.services.keep = { restartIfChanged = false;"
        '  script = "cat /run/secrets/db/password"; };'
        # the secret opts out
        'nixseal.secrets."api/token".inferRestarts = false;'
        'systemd.services.tok.script = "cat /etc/app/token";'
    )
    assert got["db/password"] == []
    assert got["api/token"] == []


def test_global_opt_out_and_what_was_inferred_is_readable() -> None:
    body = 'systemd.services.job.script = "cat /run/secrets/db/password";'
    r = host_many(
        mod(body),
        inferred="config.nixseal.inferredRestartUnits",
        manifest="config.nixseal.manifest",
    )
    assert r["inferred"] == {"secrets": {"db/password": ["job.service"]}, "templates": {}}
    off = restarts(body + "nixseal.inferRestarts = false;")
    assert off["db/password"] == []


def test_needed_for_users_secrets_are_not_inferred_and_nothing_recurses() -> None:
    # The install units name the manifests; inferring from them would recurse.
    r = host_many(
        mod(
            'nixseal.secrets."alice/pw" = { file = "/var/lib/s/pw.age"; neededForUsers = true; };'
            'systemd.services.pw.script = "cat /run/secrets-for-users/alice/pw";'
            "services.userborn.enable = true;"
        ),
        forUsers="config.nixseal.manifestForUsers.secrets",
        units="builtins.attrNames config.systemd.services",
    )
    assert [s["restartUnits"] for s in r["forUsers"]] == [["userborn.service"]]
    assert "nixseal-install" in r["units"]


def test_a_service_reading_the_manifest_recurses_unless_inference_is_off() -> None:
    reads = (
        "systemd.services.spy.environment.M = "
        'builtins.toJSON config.nixseal.manifest.secrets; systemd.services.spy.script = "true";'
    )
    try:
        host(mod(reads))
    except NixEvalError as err:
        assert "infinite recursion" in str(err)
    else:
        raise AssertionError("expected the evaluation to recurse")
    assert host(mod(reads + "nixseal.inferRestarts = false;"))["version"] == 1


# --- under real systemd ------------------------------------------------------------

# A service that reads the template webapp.env and is listed nowhere.
REPORTER = """{ config, pkgs, ... }: {
  systemd.services.reporter = {
    wantedBy = [ "multi-user.target" ];
    serviceConfig.EnvironmentFile = config.nixseal.templates."webapp.env".path;
    serviceConfig.ExecStart = "${pkgs.coreutils}/bin/sleep infinity";
  };
}"""


@needs_nspawn
def test_inferred_restart_under_systemd(tmp_path: Path) -> None:
    env = {**os.environ, "NIXPKGS_LIB": str(NIXPKGS_LIB)}
    systems: dict[str, Any] = evaluate(
        env, GUEST_PACKAGE, [REPORTER], only=["switch-restarts-changed"]
    )["switch-restarts-changed"]
    for system in systems.values():
        template = next(t for t in system["manifest"]["templates"] if t["name"] == "webapp.env")
        assert "reporter.service" in template["restartUnits"]
    host_ = GuestHost(systems["base"], TEST_KEYS / "web1_ssh_host_ed25519_key", tmp_path / "s")
    with host_.guest() as guest:
        watched = ["reporter.service", "webapp-worker.service"]
        before = {u: guest.show(u, "InvocationID")["InvocationID"] for u in watched}
        assert guest.run(["systemctl", "is-active", "reporter.service"]).stdout.strip() == "active"
        assert host_.switch(guest, systems["app-token-v2"]) == 0, host_.activation_log
        after = {u: guest.show(u, "InvocationID")["InvocationID"] for u in watched}
        # the template changed with the app token: its reader was restarted ...
        assert after["reporter.service"] != before["reporter.service"]
        # ... and a service naming only an unchanged secret was not
        assert after["webapp-worker.service"] == before["webapp-worker.service"]
        env_file = "/run/secrets/rendered/webapp.env"
        assert "tok-web1-v2-Hn5sD8fK1qLw" in snapshot(guest, [env_file])[env_file]["content"]
