# Puts a host's committed TEST-ONLY KEY (never use in production) where
# the host's sshd and nixseal expect its ed25519 host key. environment.etc
# writes it before any unit starts, at boot and on switch; the initrd is
# not involved (systemd initrd ignores boot.initrd.postDeviceCommands).
host:
{
  environment.etc."ssh/ssh_host_ed25519_key" = {
    source = ../../secrets/test-keys + "/${host}_ssh_host_ed25519_key";
    mode = "0600";
  };
  environment.etc."ssh/ssh_host_ed25519_key.pub" = {
    source = ../../secrets/test-keys + "/${host}_ssh_host_ed25519_key.pub";
    mode = "0644";
  };
}
