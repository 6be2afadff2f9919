# Offline evaluation of NixOS hosts, nix-darwin hosts and home-manager
# users that use nixseal:
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
  darwinModule = ../../modules/darwin;

  # Evaluate a NixOS host. Returns { config, options, pkgs, failedAssertions
  # (messages), warnings }. `modules`: the host's modules; nixseal's module
  # is included unless `withNixseal = false`. `pkgs`: defaults to the fake
  # pkgs (`pkgsArgs` are passed to it, e.g. { nixsealOutPath = "/x"; }).
  # `nixosInit = false` leaves out system.nixos-init, as older nixpkgs do.
  evalHost = { modules ? [ ], withNixseal ? true, nixosInit ? true, pkgsArgs ? { }, pkgs ? fakePkgs pkgsArgs, specialArgs ? { } }:
    evaluate {
      stubs = { imports = [ ./stubs/nixos.nix ] ++ lib.optional nixosInit ./stubs/nixos-init.nix; };
      modules = lib.optional withNixseal nixosModule ++ modules;
      inherit pkgs specialArgs;
    };

  # What ../../helper/tests/_units.py renders into unit files, from an
  # evalHost result: the evaluated services and targets, the default PATH
  # NixOS appends to every service's `path` (lib/systemd-lib.nix,
  # stage2ServiceConfig), and the text of store files that the units name
  # but nothing here builds (trigger files, the manifests).
  unitsOf = r:
    let
      inherit (r.config) systemd nixseal;
      triggers = lib.concatMap (s: builtins.filter (t: builtins.isAttrs t && t ? text) s.restartTriggers) (
        lib.attrValues systemd.services
      );
      build = r.config.system.build;
    in
    {
      inherit (systemd) services targets;
      defaultPath = map (p: toString r.pkgs.${p}) [ "coreutils" "findutils" "gnugrep" "gnused" "systemd" ];
      # (attribute names cannot carry a string's store references)
      storeTexts = lib.listToAttrs (
        map (e: lib.nameValuePair (builtins.unsafeDiscardStringContext e.path) e.text) (
          map (t: { path = "${t}"; inherit (t) text; }) triggers
          ++ [
            { path = "${build.nixsealManifest}"; text = builtins.toJSON nixseal.manifest; }
            { path = "${build.nixsealManifestForUsers}"; text = builtins.toJSON nixseal.manifestForUsers; }
          ]
        )
      );
      userbornPackage = toString r.pkgs.userborn;
      activationScript = r.config.system.activationScripts.script;
    };

  # Evaluate a home-manager configuration. Same arguments and result.
  evalHome = { modules ? [ ], withNixseal ? true, pkgsArgs ? { }, pkgs ? fakePkgs pkgsArgs, specialArgs ? { } }:
    evaluate {
      stubs = ./stubs/home-manager.nix;
      modules = lib.optional withNixseal homeManagerModule ++ modules;
      inherit pkgs specialArgs;
    };

  # Evaluate a nix-darwin host (stubs/darwin.nix). Same arguments and
  # result; the fake pkgs are aarch64-darwin's unless `pkgsArgs` say.
  evalDarwin = { modules ? [ ], withNixseal ? true, pkgsArgs ? { }, pkgs ? fakePkgs ({ system = "aarch64-darwin"; } // pkgsArgs), specialArgs ? { } }:
    evaluate {
      stubs = ./stubs/darwin.nix;
      modules = lib.optional withNixseal darwinModule ++ modules;
      inherit pkgs specialArgs;
    };
}
