# NixOS options outside nixseal's concern that flakes, hosts and VM test
# nodes set: declared loosely here, since only their presence matters to
# the evaluation. `pkgs` comes from nixpkgs.pkgs, else from the fake pkgs
# of nixpkgs.hostPlatform, as NixOS picks it.
{ pkgsFor }:
{ config, lib, ... }:
let
  inherit (lib) mkOption types;
  loose = mkOption {
    type = types.anything;
    default = null;
  };
in
{
  options = {
    boot.loader.grub.device = loose;
    system.stateVersion = loose;
    virtualisation.memorySize = loose;
    nixpkgs.pkgs = mkOption {
      type = types.nullOr types.raw;
      default = null;
    };
    nixpkgs.hostPlatform = loose;
    specialisation = mkOption {
      type = types.attrsOf (
        types.submodule {
          options.configuration = mkOption {
            type = types.deferredModule;
            default = { };
          };
        }
      );
      default = { };
    };
    users.mutableUsers = mkOption {
      type = types.bool;
      default = true;
    };
    users.users = mkOption {
      type = types.attrsOf (
        types.submodule {
          options.linger = mkOption {
            type = types.bool;
            default = false;
          };
        }
      );
    };
  };

  config._module.args.pkgs =
    if config.nixpkgs.pkgs != null then config.nixpkgs.pkgs else pkgsFor config.nixpkgs.hostPlatform;
}
