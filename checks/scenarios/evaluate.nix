# Offline evaluation of every scenario's systems with the harness in
# ../eval (real nixpkgs lib, stubbed NixOS options): what the local twins
# (helper/tests/test_twins.py) install and compare with the scenario.
#   nix-instantiate --eval --strict --json checks/scenarios/evaluate.nix \
#     --argstr libPath "$NIXPKGS_LIB"
# With --read-write-mode, the secrets' files are copied into the store,
# where `nixseal install` reads them as on a real host.
#
# nixsealOutPath: where the units find the helper (the real-systemd tests
# pass the path of the helper in their guest); `units` is what they render.
# extraModules are added to every NixOS system; only: evaluate these
# scenarios alone.
{ libPath ? builtins.getEnv "NIXPKGS_LIB", nixsealOutPath ? null, extraModules ? [ ], only ? null }:
let
  harness = import ../eval/lib.nix { lib-path = libPath; };
  inherit (harness) lib;
  defs = import ./. { inherit lib; };

  pick = names: set: lib.filterAttrs (n: _: builtins.elem n names) set;

  host = scenario: system:
    let
      r = harness.evalHost {
        modules = defs.modulesFor scenario system ++ extraModules;
        pkgsArgs = { inherit nixsealOutPath; };
      };
      cfg = r.config;
    in
    {
      inherit (r) failedAssertions;
      inherit (cfg.nixseal) manifest manifestForUsers;
      users = lib.mapAttrs (
        _: u:
        pick [
          "name"
          "uid"
          "group"
          "extraGroups"
          "home"
          "isNormalUser"
          "isSystemUser"
          "hashedPasswordFile"
        ] u
      ) cfg.users.users;
      groups = lib.mapAttrs (_: g: pick [ "name" "gid" "members" ] g) cfg.users.groups;
      services = lib.mapAttrs (
        _: s:
        pick [
          "wantedBy"
          "requiredBy"
          "before"
          "after"
        ] s
      ) cfg.systemd.services;
      activationDeps = lib.mapAttrs (_: s: if builtins.isString s then [ ] else s.deps) (
        removeAttrs cfg.system.activationScripts [ "script" ]
      );
      units = harness.unitsOf r;
      hostKey = (builtins.fromTOML (builtins.readFile cfg.nixseal.rules)).hosts.${cfg.nixseal.hostName}.key;
    };

  home = scenario:
    let
      r = harness.evalHome {
        modules = defs.homeModulesFor scenario;
        pkgsArgs = { inherit nixsealOutPath; };
      };
    in
    {
      inherit (r) failedAssertions;
      inherit (r.config.nixseal) manifest;
      services = builtins.attrNames r.config.systemd.user.services;
      userUnits = r.config.systemd.user.services;
      activation = r.config.home.activation or { };
      manifestFile = toString r.config.nixseal.manifestFile;
    };

  systemsOf = scenario: [ "base" ] ++ builtins.attrNames (scenario.systems or { });
in
lib.mapAttrs (
  _: scenario:
  if (scenario.kind or "nixos") == "home-manager" then
    { base = home scenario; }
  else
    lib.genAttrs (systemsOf scenario) (host scenario)
) (if only == null then defs.scenarios else lib.filterAttrs (n: _: builtins.elem n only) defs.scenarios)
