# Example host web1: a web application with its secrets.
#
# Its secrets are given to it in ../../secrets/secrets.toml and encrypted
# to its ssh host key. That key, like every key of the examples, is a
# TEST-ONLY KEY, committed on purpose in ../../secrets/test-keys: never use
# it in production. The VM tests place it at /etc/ssh/ssh_host_ed25519_key.
#
# Only options that any NixOS host has are used here, so that the host also
# evaluates offline against the stubs in ../../checks/eval; the consumers
# are small units standing in for a real application.
{ config, pkgs, ... }:
let
  secrets = config.nixseal.secrets;
  placeholder = config.nixseal.placeholder;
in
{
  imports = [ ../../modules/security ];

  networking.hostName = "web1";

  # The ssh host keys are the default identities (nixseal.identityPaths).
  services.openssh.enable = true;

  nixseal.rules = ../../secrets/secrets.toml;
  nixseal.secrets = {
    "web1/app-token" = {
      owner = "webapp";
      restartUnits = [ "webapp.service" ];
    };
    # Readable by the group and linked where the worker expects it.
    "web1/session-key" = {
      owner = "webapp";
      group = "webapp";
      mode = "0440";
      path = "/etc/webapp/session-key";
      restartUnits = [ "webapp-worker.service" ];
    };
    # A hashed password, needed before users are created.
    "web1/alice-password".neededForUsers = true;
    "shared/smtp-password" = { };
  };

  # Configuration mixing public settings and secrets.
  nixseal.templates."webapp.env" = {
    owner = "webapp";
    content = ''
      LISTEN=127.0.0.1:8080
      API_TOKEN=${placeholder."web1/app-token"}
      SMTP_PASSWORD=${placeholder."shared/smtp-password"}
    '';
    restartUnits = [ "webapp.service" ];
  };

  users.groups.webapp = { };
  users.users.webapp = {
    isSystemUser = true;
    group = "webapp";
  };
  users.users.alice = {
    isNormalUser = true;
    hashedPasswordFile = secrets."web1/alice-password".path;
  };

  systemd.services.webapp = {
    description = "Example web application";
    wantedBy = [ "multi-user.target" ];
    serviceConfig = {
      User = "webapp";
      EnvironmentFile = config.nixseal.templates."webapp.env".path;
      ExecStart = "${pkgs.bash}/bin/bash -c 'test -r ${secrets."web1/app-token".path} && exec ${pkgs.coreutils}/bin/sleep infinity'";
    };
  };

  systemd.services.webapp-worker = {
    description = "Example background worker";
    wantedBy = [ "multi-user.target" ];
    serviceConfig = {
      User = "webapp";
      ExecStart = "${pkgs.bash}/bin/bash -c 'test -r ${secrets."web1/session-key".path} && exec ${pkgs.coreutils}/bin/sleep infinity'";
    };
  };
}
