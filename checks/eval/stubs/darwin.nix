# Stand-ins for the nix-darwin options nixseal's darwin module reads or
# writes, with nix-darwin's types and defaults, so that evaluating the
# module against them fails where evaluating it on nix-darwin would. Each
# declaration names the nix-darwin file (under modules/) it mirrors. Only
# what the module touches is here; it is not nix-darwin.
{ config, lib, ... }:
let
  inherit (lib) mkOption types mkDefault;

  # launchd/launchd.nix: the plist keys the module sets (every key there
  # is nullOr, default null, but Label).
  nullOr = type: mkOption {
    type = types.nullOr type;
    default = null;
  };
  serviceConfig = {
    options = {
      Label = mkOption { type = types.str; };
      ProgramArguments = nullOr (types.listOf types.str);
      RunAtLoad = nullOr types.bool;
      KeepAlive = nullOr (types.either types.bool (types.attrsOf types.unspecified));
      StandardOutPath = nullOr types.path;
      StandardErrorPath = nullOr types.path;
      EnvironmentVariables = nullOr (types.attrsOf types.str);
    };
  };

  # launchd/default.nix: serviceOptions (without `path`, `command` and
  # `script`, which the module does not use); the label defaults to
  # `<labelPrefix>.<name>`.
  service = { name, ... }: {
    options = {
      environment = mkOption {
        type = types.attrsOf (types.either types.str (types.listOf types.str));
        default = { };
      };
      serviceConfig = mkOption {
        type = types.submodule serviceConfig;
        default = { };
      };
    };
    config.serviceConfig.Label = mkDefault "${config.launchd.labelPrefix}.${name}";
  };

  # lib/write-text.nix, as system/activation-scripts.nix types its entries.
  script = {
    options = {
      enable = mkOption {
        type = types.bool;
        default = true;
      };
      text = mkOption {
        type = types.lines;
        default = "";
      };
    };
  };
in
{
  options = {
    # system/default.nix
    assertions = mkOption {
      type = types.listOf types.unspecified;
      internal = true;
      default = [ ];
    };
    warnings = mkOption {
      type = types.listOf types.str;
      internal = true;
      default = [ ];
    };
    system.build = mkOption {
      type = types.lazyAttrsOf types.unspecified;
      internal = true;
      default = { };
    };
    # system/activation-scripts.nix
    system.activationScripts = mkOption {
      type = types.attrsOf (types.submodule script);
      internal = true;
      default = { };
    };
    # networking/default.nix (its hostname pattern left out)
    networking.hostName = mkOption {
      type = types.nullOr types.str;
      default = null;
    };
    # users/default.nix, users/user.nix and users/group.nix
    users.users = mkOption {
      type = types.attrsOf (types.submodule ({ name, ... }: {
        options = {
          name = mkOption {
            type = types.nonEmptyStr;
            default = name;
          };
          uid = mkOption { type = types.int; };
          gid = mkOption {
            type = types.int;
            default = 20;
          };
          home = mkOption {
            type = types.nullOr types.path;
            default = null;
          };
        };
      }));
      default = { };
    };
    users.groups = mkOption {
      type = types.attrsOf (types.submodule ({ name, ... }: {
        options = {
          name = mkOption {
            type = types.str;
            default = name;
          };
          gid = mkOption { type = types.int; };
          members = mkOption {
            type = types.listOf types.str;
            default = [ ];
          };
        };
      }));
      default = { };
    };
    # launchd/default.nix
    launchd.labelPrefix = mkOption {
      type = types.str;
      default = "org.nixos";
    };
    launchd.daemons = mkOption {
      type = types.attrsOf (types.submodule service);
      default = { };
    };
    launchd.agents = mkOption {
      type = types.attrsOf (types.submodule service);
      default = { };
    };
  };

  # system/activation-scripts.nix: the steps nix-darwin defines, which the
  # script runs in this order (preActivation, ..., groups, users,
  # applications, ..., launchd, ..., postActivation).
  config.system.activationScripts = lib.genAttrs [
    "preActivation"
    "extraActivation"
    "groups"
    "users"
    "launchd"
    "postActivation"
  ] (_: { text = mkDefault ""; });
}
