# The fake pkgs of the stand-in nixpkgs: the harness's fake packages plus
# what nixseal's flake, package and checks call. Builders record their
# arguments (as attributes of the result) instead of building anything;
# testers.runNixOSTest also evaluates every node, and every specialisation
# of it, with the harness, so that tests can look at their manifests.
{ lib, harness, system, nixosExtra }:
let
  base = harness.fakePkgs { inherit system; };
  fake = base.runCommand;
  package = name: fake name { meta.mainProgram = name; } "fake";

  # A node is built for the test's own platform (nixos/lib/testing/nodes.nix
  # sets nixpkgs.hostPlatform from hostPkgs by default).
  evalNode = modules:
    let
      r = harness.evalHost {
        modules = [ nixosExtra { nixpkgs.hostPlatform = lib.mkDefault system; } ] ++ modules;
        withNixseal = false;
        pkgs = null;
      };
    in
    {
      inherit (r) failedAssertions;
      # Nodes without nixseal's NixOS module (a home-manager test) have none.
      manifest = r.config.nixseal.manifest or null;
      manifestForUsers = r.config.nixseal.manifestForUsers or null;
      userServices = lib.attrNames r.config.systemd.user.services;
      services = lib.attrNames r.config.systemd.services;
      specialisations = lib.mapAttrs (
        _: s: (evalNode (modules ++ [ s.configuration ])).manifest
      ) r.config.specialisation;
    };

  python = fn: attrs:
    fake "${attrs.pname}-${attrs.version}" (
      removeAttrs attrs [ "passthru" ]
      // {
        # As in nixpkgs: passthru attributes on the result, and as `passthru`.
        passthru = (attrs.passthru or { }) // {
          passthru = attrs.passthru or { };
          builder = fn;
          inherit (attrs) pname version;
          dependencyNames = map (d: d.name) (attrs.dependencies or [ ]);
        };
      }
    ) "fake";

  python3Packages = {
    callPackage = lib.callPackageWith (pkgs // python3Packages);
    buildPythonApplication = python "buildPythonApplication";
    buildPythonPackage = python "buildPythonPackage";
    pythonOlder = _: false;
    # pkgs/development/interpreters/python/passthrufun.nix: interpreter, sitePackages
    python = {
      interpreter = "${package "python3"}/bin/python3.11";
      sitePackages = "lib/python3.11/site-packages";
    };
    setuptools = package "setuptools";
    structlog = package "structlog";
    # pkgs/development/python-modules/{cryptography,bcrypt}/default.nix
    cryptography = package "cryptography";
    bcrypt = package "bcrypt";
    # pkgs/development/python-modules/tomlkit/default.nix
    tomlkit = package "tomlkit";
    # pkgs/development/python-modules/pyyaml/default.nix
    pyyaml = package "pyyaml";
    pytest = package "pytest";
    pytestCheckHook = package "pytest-check-hook";
    hypothesis = package "hypothesis";
    mypy = package "mypy";
  };

  pkgs = base // {
    inherit lib python3Packages;
    stdenv = rec {
      # lib/systems/default.nix: canExecute compares the platforms' CPUs and kernels
      hostPlatform = { inherit system; canExecute = p: p.system == system; };
      buildPlatform = hostPlatform;
      cc.cc.lib = package "gcc-lib";
    };
    callPackage = lib.callPackageWith pkgs;
    python3 = package "python3" // {
      pkgs = python3Packages;
      withPackages = f: fake "python3-env" { passthru.packageNames = map (p: p.name) (f python3Packages); } "fake";
    };
    fetchurl = { url, hash }: fake (baseNameOf url) { inherit url hash; } "fake";
    autoPatchelfHook = package "auto-patchelf-hook";
    # pkgs/by-name/in/installShellFiles/package.nix (its setup hook: installShellCompletion)
    installShellFiles = package "install-shell-files";
    age = package "age";
    openssh = package "openssh";
    git = package "git";
    zsh = package "zsh";
    fish = package "fish";
    ruff = package "ruff";
    jq = package "jq";
    nixpkgs-fmt = package "nixpkgs-fmt";
    mkShell = attrs:
      fake "nix-shell" {
        # A Python environment is listed with the packages in it.
        passthru.packageNames = map (
          p: p.name + lib.optionalString (p ? packageNames) "[${lib.concatStringsSep " " p.packageNames}]"
        ) attrs.packages;
      } "fake";
    testers = {
      runNixOSTest = test:
        fake "vm-test-run-${test.name}" {
          passthru = {
            inherit (test) testScript;
            nodes = lib.mapAttrs (_: node: evalNode [ node ]) test.nodes;
          };
        } "fake";
      testBuildFailure = drv:
        fake "${drv.name}-build-failure" {
          passthru.failing = drv;
        } "fake";
    };
  };
in
pkgs
