# Puts a host's committed TEST-ONLY KEY (never use in production) where
# the host's sshd and nixseal expect its ed25519 host key. environment.etc
# writes it before any unit starts, at boot and on switch; the initrd is
# not involved (systemd initrd ignores boot.initrd.postDeviceCommands).
host:
let
  key = ../../secrets/test-keys + "/${host}_ssh_host_ed25519_key";
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
  # before its first boot). The store copy of the same test key stands in
  # for that; later runs find the key in /etc first.
  nixseal.identityPaths = [
    "/etc/ssh/ssh_host_ed25519_key"
    "${key}"
  ];
}
