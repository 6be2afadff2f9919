# A few NixOS services, as much of them as the documentation's examples
# use: enabling one creates its account and its systemd unit, as the real
# module does; its settings are accepted as they are. Also colmena's
# `deployment` options, which hive nodes set.
{ config, lib, ... }:
let
  inherit (lib) mkOption mkIf types;
  loose = mkOption {
    type = types.attrsOf types.anything;
    default = { };
  };
  service = name: user: {
    options.services.${name} = {
      enable = lib.mkEnableOption name;
      settings = loose;
      environmentFile = mkOption {
        type = types.nullOr types.str;
        default = null;
      };
    };
    config = mkIf config.services.${name}.enable {
      users.users.${user} = {
        isSystemUser = true;
        group = user;
      };
      users.groups.${user} = { };
      systemd.services.${name}.description = name;
    };
  };
in
{
  imports = [
    (service "grafana" "grafana")
    (service "postgresql" "postgres")
    (service "nginx" "nginx")
  ];
  options.deployment = loose;
}
