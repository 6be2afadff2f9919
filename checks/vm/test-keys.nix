# Puts a host's committed TEST-ONLY KEY (never use in production) where
# the host's sshd and nixseal expect its ed25519 host key. environment.etc
# writes it before any unit starts, at boot and on switch; the initrd is
# not involved (systemd initrd ignores boot.initrd.postDeviceCommands).
host:
{ config, lib, ... }:
let
  key = ../../secrets/test-keys + "/${host}_ssh_host_ed25519_key";
  usersByScript = !config.services.userborn.enable && !config.systemd.sysusers.enable;
in
{
  environment.etc."ssh/ssh_host_ed25519_key" = {
    source = key;
    mode = "0600";
  };
  environment.etc."ssh/ssh_host_ed25519_key.pub" = {
    source = key + ".pub";
    mode = "0644";
  };

  # A fresh VM has no key on disk when the first activation installs the
  # password secrets, before /etc is populated (a real host has its key
  # before its first boot). This snippet copies the same test key there
  # first; nixseal.identityPaths refuses store paths, so the key is read
  # from outside the store, as on a real host.
  system.activationScripts.nixsealTestKey = {
    deps = [ "specialfs" ];
    text = ''
      install -D -m 0400 ${key} /var/lib/nixseal-test/ssh_host_ed25519_key
    '';
  };
  system.activationScripts.nixsealForUsers = lib.mkIf usersByScript { deps = [ "nixsealTestKey" ]; };
  nixseal.identityPaths = [
    "/etc/ssh/ssh_host_ed25519_key"
    "/var/lib/nixseal-test/ssh_host_ed25519_key"
  ];
}
