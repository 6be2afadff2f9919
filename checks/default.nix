# The flake's checks for one system: VM tests (./vm), an evaluation of
# every example host, the helper's test suite (run by its package build),
# linters and formatting. docs/testing.md says which of these need a
# machine with Nix and a binary cache, and what runs everywhere instead.
{ self, pkgs, hostNames, nixosSystem }:
let
  inherit (pkgs) lib;
  system = pkgs.stdenv.hostPlatform.system;
  defs = import ./scenarios { inherit lib; };

  # A NixOS system from our nixpkgs, with the module from this flake.
  evalNixos = modules:
    nixosSystem {
      modules = [
        {
          nixpkgs.pkgs = pkgs;
          nixpkgs.hostPlatform = system;
        }
        self.nixosModules.nixseal
      ]
      ++ modules;
    };

  # Evaluating a host means evaluating its whole system (assertions
  # included) down to the derivation, without building it.
  evalCheck = name:
    let
      config =
        (evalNixos [
          (../hosts + "/${name}")
          ../hosts/example-machine.nix
        ]).config;
    in
    pkgs.writeText "nixseal-eval-${name}" (
      builtins.unsafeDiscardStringContext (
        builtins.toJSON {
          toplevel = config.system.build.toplevel.drvPath;
          inherit (config.nixseal) manifest manifestForUsers;
        }
      )
    );

  helperSource = lib.cleanSource ../helper;
in
import ./vm { inherit self pkgs defs evalNixos; }
// lib.listToAttrs (map (name: lib.nameValuePair "eval-${name}" (evalCheck name)) hostNames)
// {
  # The package's build runs the unit tests (pytestCheckHook).
  nixseal = self.packages.${system}.nixseal;

  lint =
    pkgs.runCommand "nixseal-lint"
      {
        nativeBuildInputs = [
          pkgs.ruff
          (pkgs.python3.withPackages (ps: [
            ps.mypy
            ps.structlog
            ps.pytest
            ps.hypothesis
          ]))
        ];
      }
      ''
        cp -r ${helperSource} helper
        chmod -R u+w helper
        cd helper
        ruff check --no-cache nixseal tests bench
        ruff format --check --no-cache nixseal tests bench
        mypy --cache-dir "$TMPDIR/mypy"
        touch "$out"
      '';

  format = pkgs.runCommand "nixseal-format" { nativeBuildInputs = [ pkgs.nixpkgs-fmt ]; } ''
    cd ${self}
    find . -name '*.nix' -print0 | xargs -0 nixpkgs-fmt --check
    touch "$out"
  '';
}
