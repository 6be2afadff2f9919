# Stand-ins for the home-manager options nixseal's home-manager module
# touches, with home-manager's types: systemd.user.services is INI-shaped
# (`<unit>.<Section>.<Key> = value`), home.packages a package list.
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
    home.username = mkOption { type = types.str; };
    home.homeDirectory = mkOption { type = types.path; };
    home.packages = mkOption {
      type = types.listOf types.package;
      default = [ ];
    };
    systemd.user.services = mkOption {
      type = types.attrsOf unitType;
      default = { };
    };
  };
}
