# Stand-ins for the home-manager options nixseal's home-manager module
# touches, with home-manager's types; each names the home-manager file
# (under modules/) it mirrors.
{ lib, ... }:
let
  inherit (lib) mkOption types;
  primitive = types.oneOf [
    types.bool
    types.int
    types.str
    types.path
    types.package
  ];
  unitType = types.attrsOf (types.attrsOf (types.either primitive (types.listOf primitive)));
in
{
  options = {
    # misc/assertions.nix
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
    # home-environment.nix
    home.username = mkOption { type = types.str; };
    home.homeDirectory = mkOption { type = types.path; };
    # home-environment.nix
    home.packages = mkOption {
      type = types.listOf types.package;
      default = [ ];
    };
    # home-environment.nix: a DAG of script snippets (lib/dag.nix entries:
    # { data; after; before; }), run in order after writeBoundary.
    home.activation = mkOption {
      type = types.attrsOf (
        types.submodule {
          options = {
            data = mkOption { type = types.str; };
            after = mkOption {
              type = types.listOf types.str;
              default = [ ];
            };
            before = mkOption {
              type = types.listOf types.str;
              default = [ ];
            };
          };
        }
      );
      default = { };
    };
    # launchd/default.nix: per-user agents (macOS), each a plist
    # (launchd/launchd.nix: the keys the module sets, nullOr, default null)
    launchd.agents = mkOption {
      type = types.attrsOf (
        types.submodule (
          { name, ... }:
          {
            options = {
              enable = mkOption {
                type = types.bool;
                default = false;
              };
              config = mkOption {
                type = types.submodule {
                  options = {
                    Label = mkOption { type = types.str; };
                    ProgramArguments = mkOption {
                      type = types.nullOr (types.listOf types.str);
                      default = null;
                    };
                    RunAtLoad = mkOption {
                      type = types.nullOr types.bool;
                      default = null;
                    };
                  };
                };
                default = { };
              };
            };
            config.config.Label = lib.mkDefault "org.nix-community.home.${name}";
          }
        )
      );
      default = { };
    };
    # systemd.nix: INI-shaped (`<unit>.<Section>.<Key> = value`)
    systemd.user.services = mkOption {
      type = types.attrsOf unitType;
      default = { };
    };
  };
}
