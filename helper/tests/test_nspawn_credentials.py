"""Secrets as systemd credentials (modules/security/credentials.nix), under
a real systemd: Debian's 252, booted with systemd-nspawn (tests/_nspawn.py).

web1 hands its app token to one `DynamicUser=` service as a plain
credential and its session key (owned by webapp, 0440, linked from
/etc/webapp) to another sealed (systemd-creds, the
guest's host key). Each service writes the SHA-256 of what it finds in
`$CREDENTIALS_DIRECTORY` into its RuntimeDirectory, never a value to the
journal; a switch to a new value restarts the services given it, and only
them.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from _guesthost import GuestHost, snapshot
from _nspawn import GUEST_PACKAGE, Guest, needs_nspawn
from _twin import TEST_KEYS, evaluate
from conftest import NIXPKGS_LIB, needs_nix
from test_nspawn import changed_files, encrypted_for, invocations

pytestmark = [needs_nix, needs_nspawn]

TOKEN = b"tok-web1-Yv3q9sLm2Xw8Rk4NcT6bZpA1"  # the committed web1/app-token
KEY = b"ad6b7ab0e12793a05a270197f6be12a3e167dc3eabdb88c78109433975655923"  # web1/session-key


def reader(name: str, credential: str) -> str:
    return f"""
    systemd.services.{name} = {{
      wantedBy = [ "multi-user.target" ];
      serviceConfig = {{ DynamicUser = true; RuntimeDirectory = "{name}"; }};
      script = ''
        ${{pkgs.coreutils}}/bin/sha256sum < "$CREDENTIALS_DIRECTORY/{credential}" > /run/{name}/seen
        ${{pkgs.coreutils}}/bin/id -u >> /run/{name}/seen
        exec ${{pkgs.coreutils}}/bin/sleep infinity
      '';
    }};"""


READERS = (
    "{ pkgs, ... }: {"
    + reader("token-reader", "web1-app-token")
    + reader("key-reader", "session")
    + """
    nixseal.secrets."web1/app-token".credentialFor = [ "token-reader.service" ];
    nixseal.secrets."web1/session-key" = {
      credentialFor = [ "key-reader.service" ];
      credentialName = "session";
      sealCredential = true;
    };
  }"""
)


def seen(guest: Guest, name: str) -> tuple[str, int]:
    """The digest the service found and its (dynamic) uid."""
    text = snapshot(guest, [f"/run/{name}/seen"])[f"/run/{name}/seen"]
    assert text is not None, guest.journal(f"{name}.service")
    digest, uid = text["content"].split("\n")[:2]
    return digest.split()[0], int(uid)


def sha(value: bytes) -> str:
    return hashlib.sha256(value).hexdigest()


def test_services_read_credentials_plain_and_sealed_and_restart_on_a_change(
    tmp_path: Path,
) -> None:
    env = {**os.environ, "NIXPKGS_LIB": str(NIXPKGS_LIB)}

    def system(*modules: str) -> dict[str, object]:
        got = evaluate(env, GUEST_PACKAGE, [READERS, *modules], only=["install-at-boot"])
        result: dict[str, object] = got["install-at-boot"]["base"]
        return result

    new_token = encrypted_for("web1", b"tok-web1-rotated", tmp_path / "token.age")
    new_key = encrypted_for("web1", b"key-rotated", tmp_path / "key.age")
    base = system()
    token_changed = system(changed_files({"web1/app-token": new_token}))
    both_changed = system(changed_files({"web1/app-token": new_token, "web1/session-key": new_key}))
    host = GuestHost(base, TEST_KEYS / "web1_ssh_host_ed25519_key", tmp_path / "store")
    readers = ["token-reader.service", "key-reader.service"]
    with host.guest() as guest:
        for unit in readers:
            state = guest.run(["systemctl", "is-active", unit]).stdout.strip()
            assert state == "active", guest.journal(unit)
        token_digest, uid = seen(guest, "token-reader")
        assert token_digest == sha(TOKEN) and uid != 0  # a dynamic user, no owner settings
        assert seen(guest, "key-reader")[0] == sha(KEY)
        # Sealed with the guest's host key: no plaintext under the secrets' mount.
        files = guest.run(["find", "/run/secrets.d", "-type", "f"], check=True).stdout.split()
        sealed = snapshot(guest, ["/etc/webapp/session-key", *files])
        assert all(KEY.decode() not in (f or {}).get("content", "") for f in sealed.values())
        link = sealed["/etc/webapp/session-key"]
        assert (link["mode"], host.ids and host.ids.user(link["uid"])) == (0o440, "webapp")
        assert guest.run(["test", "-s", "/var/lib/systemd/credential.secret"]).returncode == 0

        # A new token: its reader restarts and sees it; the sealed secret,
        # sealed again to other bytes but the same value, restarts nothing.
        before = invocations(guest, readers)
        assert host.switch(guest, token_changed) == 0, guest.journal("nixseal-install.service")
        after = invocations(guest, readers)
        assert after["token-reader.service"] != before["token-reader.service"]
        assert after["key-reader.service"] == before["key-reader.service"]
        assert seen(guest, "token-reader")[0] == sha(b"tok-web1-rotated")

        before = after
        assert host.switch(guest, both_changed) == 0, guest.journal("nixseal-install.service")
        after = invocations(guest, readers)
        assert after["key-reader.service"] != before["key-reader.service"]
        assert after["token-reader.service"] == before["token-reader.service"]
        assert seen(guest, "key-reader")[0] == sha(b"key-rotated")

        journal = guest.run(["journalctl", "-b", "-o", "json", "--no-pager"], check=True).stdout
        for value in (TOKEN, KEY, b"tok-web1-rotated", b"key-rotated"):
            assert value.decode() not in journal


def test_the_activation_script_seals_before_systemd_starts(tmp_path: Path) -> None:
    """nixseal.activation = "script": the snippet seals at boot, before the
    units; /var/lib/systemd is on the guest's root, mounted first."""
    env = {**os.environ, "NIXPKGS_LIB": str(NIXPKGS_LIB)}
    script = '{ nixseal.activation = "script"; }'
    got = evaluate(env, GUEST_PACKAGE, [READERS, script], only=["install-at-boot"])
    system = got["install-at-boot"]["base"]
    assert system["failedAssertions"] == []
    host = GuestHost(system, TEST_KEYS / "web1_ssh_host_ed25519_key", tmp_path / "store")
    with host.guest() as guest:
        state = guest.run(["systemctl", "is-active", "key-reader.service"]).stdout.strip()
        assert state == "active", guest.journal("key-reader.service")
        assert seen(guest, "key-reader")[0] == sha(KEY)
        content = snapshot(guest, ["/etc/webapp/session-key"])["/etc/webapp/session-key"]
        assert KEY.decode() not in content["content"]
