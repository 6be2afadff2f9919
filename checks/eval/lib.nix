# Offline evaluation of NixOS hosts and home-manager users that use nixseal:
# the real nixpkgs lib, the stubs in ./stubs, the fake pkgs in ./pkgs.nix.
#
#   let h = import ./checks/eval/lib.nix { lib-path = /path/to/nixpkgs-lib; };
#   in (h.evalHost { modules = [ ./hosts/web1 ]; }).config.nixseal.manifest
#
# Arguments: `lib-path` (a nixpkgs or nixpkgs.lib checkout holding lib/,
# default $NIXPKGS_LIB) or `lib` (an imported lib).
{ lib-path ? builtins.getEnv "NIXPKGS_LIB"
, lib ? import ((if lib-path == "" then throw "nixseal eval: set NIXPKGS_LIB or pass lib-path" else lib-path) + "/lib")
}:
let
  fakePkgs = args: import ./pkgs.nix ({ inherit lib; } // args);

  failedMessages = config: map (a: a.message) (builtins.filter (a: !a.assertion) config.assertions);

  evaluate = { stubs, modules, pkgs, specialArgs }:
    let
      result = lib.evalModules {
        modules = [
          stubs
          { _module.args.pkgs = lib.mkDefault pkgs; }
        ]
        ++ modules;
        inherit specialArgs;
      };
    in
    {
      inherit (result) config options;
      inherit pkgs;
      failedAssertions = failedMessages result.config;
      inherit (result.config) warnings;
    };
in
rec {
  inherit lib fakePkgs;

  # The nixseal NixOS module (what the flake's nixosModules.nixseal imports).
  nixosModule = ../../modules/security;
  homeManagerModule = ../../modules/home-manager;

  # Evaluate a NixOS host. Returns { config, options, pkgs, failedAssertions
  # (messages), warnings }. `modules`: the host's modules; nixseal's module
  # is included unless `withNixseal = false`. `pkgs`: defaults to the fake
  # pkgs (`pkgsArgs` are passed to it, e.g. { nixsealOutPath = "/x"; }).
  evalHost = { modules ? [ ], withNixseal ? true, pkgsArgs ? { }, pkgs ? fakePkgs pkgsArgs, specialArgs ? { } }:
    evaluate {
      stubs = ./stubs/nixos.nix;
      modules = lib.optional withNixseal nixosModule ++ modules;
      inherit pkgs specialArgs;
    };

  # Evaluate a home-manager configuration. Same arguments and result.
  evalHome = { modules ? [ ], withNixseal ? true, pkgsArgs ? { }, pkgs ? fakePkgs pkgsArgs, specialArgs ? { } }:
    evaluate {
      stubs = ./stubs/home-manager.nix;
      modules = lib.optional withNixseal homeManagerModule ++ modules;
      inherit pkgs specialArgs;
    };
}
