{
  description = "nixseal: age-encrypted secrets in git, installed on NixOS and nix-darwin at activation";

  # nixpkgs only: consumers point it at their own with
  # `inputs.nixseal.inputs.nixpkgs.follows = "nixpkgs"`, so nixseal adds no
  # second nixpkgs to their closure.
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixpkgs-unstable";

  outputs = { self, nixpkgs }:
    let
      inherit (nixpkgs) lib;

      # pyrage is packaged from its PyPI wheels, which exist for these: the
      # package, the CLI and the development shell on Linux and macOS.
      linuxSystems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      systems = linuxSystems ++ [
        "x86_64-darwin"
        "aarch64-darwin"
      ];
      forSystems = systems: f: lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
      forAllSystems = forSystems systems;

      # Built with the consumer's pkgs (the module's `pkgs`), not ours: one
      # Python, one nixpkgs, and any system their nixpkgs supports.
      packageFor = pkgs: pkgs.callPackage ./helper/package.nix { };

      # Example hosts: every directory in ./hosts (each one a NixOS module).
      hostNames = lib.attrNames (lib.filterAttrs (_: type: type == "directory") (builtins.readDir ./hosts));
    in
    {
      # ---- Public outputs: what a NixOS, nix-darwin or home-manager -----
      # ---- configuration consumes. ---------------------------------------

      nixosModules.nixseal = { lib, pkgs, ... }:
        {
          imports = [ ./modules/security ];
          nixseal.package = lib.mkDefault (packageFor pkgs);
        };
      nixosModules.default = self.nixosModules.nixseal;

      homeManagerModules.nixseal = { lib, pkgs, ... }:
        {
          imports = [ ./modules/home-manager ];
          nixseal.package = lib.mkDefault (packageFor pkgs);
        };
      homeManagerModules.default = self.homeManagerModules.nixseal;

      darwinModules.nixseal = { lib, pkgs, ... }:
        {
          imports = [ ./modules/darwin ];
          nixseal.package = lib.mkDefault (packageFor pkgs);
        };
      darwinModules.default = self.darwinModules.nixseal;

      overlays.default = final: _prev: { nixseal = packageFor final; };

      # Generators' public outputs (`<name>.pub`) for any Nix code, with no
      # key: `nixseal.lib.publicOf ./secrets "wg/web1"` is web1's WireGuard
      # public key. Not secret; the module's config.nixseal.public is the same.
      lib = { inherit (import ./modules/lib/public.nix { inherit lib; }) publicOf; };

      packages = forAllSystems (pkgs: rec {
        nixseal = packageFor pkgs;
        default = nixseal;
      });

      apps = forAllSystems (pkgs: {
        default = {
          type = "app";
          program = lib.getExe self.packages.${pkgs.stdenv.hostPlatform.system}.nixseal;
          meta.description = "The nixseal CLI: create, edit, rekey, check and audit secrets";
        };
      });

      # ---- Development outputs: this repository's own checks and tools. --
      # Kept apart so that consumers never evaluate (or build) them.

      # NixOS VM tests and NixOS hosts: Linux only.
      checks = forSystems linuxSystems (
        pkgs:
        import ./checks {
          inherit self pkgs hostNames;
          inherit (lib) nixosSystem;
        }
      );

      devShells = forAllSystems (pkgs: {
        default = pkgs.mkShell {
          packages = [
            (pkgs.python3.withPackages (ps: [
              self.packages.${pkgs.stdenv.hostPlatform.system}.nixseal.passthru.pyrage
              ps.structlog
              ps.pytest
              ps.hypothesis
              ps.mypy
            ]))
            pkgs.ruff
            pkgs.age
            pkgs.openssh
            pkgs.nixpkgs-fmt
            pkgs.jq
          ];
          shellHook = ''
            export PYTHONPATH="$PWD/helper''${PYTHONPATH:+:$PYTHONPATH}"
          '';
        };
      });

      formatter = forAllSystems (pkgs: pkgs.nixpkgs-fmt);

      # The example hosts as whole machines, for `nixos-rebuild build
      # --flake .#web1` and to show how a configuration uses the module.
      nixosConfigurations = lib.genAttrs hostNames (
        name:
        lib.nixosSystem {
          modules = [
            { nixpkgs.hostPlatform = "x86_64-linux"; }
            self.nixosModules.nixseal
            (./hosts + "/${name}")
            ./hosts/example-machine.nix
          ];
        }
      );
    };
}
