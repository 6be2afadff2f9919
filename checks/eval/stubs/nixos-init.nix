# modules/system/boot/nixos-init.nix (newer nixpkgs only): activation
# without activation scripts. A separate file, so that the harness can also
# evaluate a host against a nixpkgs that does not have the option
# (evalHost { nixosInit = false; }).
{ lib, ... }:
{
  options.system.nixos-init.enable = lib.mkOption {
    type = lib.types.bool;
    default = false;
  };
}
