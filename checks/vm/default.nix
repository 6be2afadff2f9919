# One VM test (pkgs.testers.runNixOSTest) per scenario in ../scenarios,
# and one build-failure check per build-failure scenario. The scenarios'
# JSON is the single definition that these tests and their local twins
# (helper/tests/test_twins.py) both run.
{ self, pkgs, defs, evalNixos }:
let
  inherit (pkgs) lib;
  args = { inherit self pkgs defs evalNixos; };
  test = file: name:
    import file (args // { inherit name; });
  forKind = kind: prefix: file:
    lib.mapAttrs' (name: _: lib.nameValuePair "${prefix}-${name}" (test file name)) (defs.ofKind kind);
in
forKind "nixos" "vm" ./nixos.nix
// forKind "home-manager" "vm" ./home-manager.nix
// forKind "build-failure" "build-failure" ./build-failure.nix
