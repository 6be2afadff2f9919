# A stand-in for the nixpkgs flake, for evaluating nixseal's flake offline
# (helper/tests/test_flake.py passes it with --override-input nixpkgs).
# The test copies the real nixpkgs lib into ./lib and nixseal's evaluation
# harness into ./eval next to this file. `lib.nixosSystem` evaluates with
# that harness (stubbed NixOS options); `legacyPackages` are fake packages
# whose derivations are never built.
{
  outputs = { self }:
    let
      realLib = import ./lib;
      harness = import ./eval/lib.nix { lib = realLib; };
      pkgsFor = system: import ./pkgs.nix { inherit lib harness system nixosExtra; };
      nixosExtra = import ./nixos-extra.nix { inherit pkgsFor; };
      lib = realLib // {
        nixosSystem = import ./nixos.nix { inherit harness nixosExtra; };
      };
    in
    {
      inherit lib;
      legacyPackages = lib.genAttrs [
        "x86_64-linux"
        "aarch64-linux"
        "x86_64-darwin"
        "aarch64-darwin"
      ] pkgsFor;
    };
}
