# Example host db1: a database server whose users come from userborn.
#
# Its secrets are given to it in ../../secrets/secrets.toml and encrypted
# to its ssh host key, a TEST-ONLY KEY committed on purpose in
# ../../secrets/test-keys: never use it in production. web1's key cannot
# read db1's secrets, nor db1's key web1's.
#
# With services.userborn.enable, users are created by a unit, not by the
# activation script: nixseal installs dbadmin's password before it runs
# and the other secrets after it (nixseal-install-for-users.service and
# nixseal-install.service).
{ config, pkgs, ... }:
let
  secrets = config.nixseal.secrets;
  placeholder = config.nixseal.placeholder;
in
{
  imports = [ ../../modules/security ];

  networking.hostName = "db1";
  services.userborn.enable = true;
  services.openssh.enable = true;

  nixseal.rules = ../../secrets/secrets.toml;
  nixseal.secrets = {
    "db1/db-password" = {
      owner = "database";
      restartUnits = [ "database.service" ];
    };
    # Only root's backup job reads it.
    "db1/backup-key" = { };
    "db1/dbadmin-password".neededForUsers = true;
    "shared/smtp-password" = {
      owner = "database";
      reloadUnits = [ "database.service" ];
    };
  };

  nixseal.templates."database.conf" = {
    owner = "database";
    mode = "0440";
    content = ''
      listen_address = 127.0.0.1
      password = ${placeholder."db1/db-password"}
      smtp_password = ${placeholder."shared/smtp-password"}
    '';
    restartUnits = [ "database.service" ];
  };

  users.groups.database = { };
  users.users.database = {
    isSystemUser = true;
    group = "database";
  };
  users.users.dbadmin = {
    isNormalUser = true;
    extraGroups = [ "database" ];
    hashedPasswordFile = secrets."db1/dbadmin-password".path;
  };

  systemd.services.database = {
    description = "Example database";
    wantedBy = [ "multi-user.target" ];
    serviceConfig = {
      User = "database";
      ExecStart = "${pkgs.bash}/bin/bash -c 'test -r ${config.nixseal.templates."database.conf".path} && exec ${pkgs.coreutils}/bin/sleep infinity'";
      ExecReload = "${pkgs.coreutils}/bin/true";
    };
  };
}
