# The scenarios of the VM tests (../vm) and of their local twins
# (helper/tests/test_twins.py), read by both from the JSON files here so
# that the two cannot drift apart. A scenario names an example host, the
# systems it switches between (the host plus changed secret files or extra
# secret declarations) and, per step, what must be true afterwards.
{ lib }:
let
  inherit (lib)
    attrNames
    filter
    genAttrs
    hasSuffix
    mapAttrs
    optional
    removeSuffix
    ;

  repo = ../..;

  names = map (removeSuffix ".json") (filter (hasSuffix ".json") (attrNames (builtins.readDir ./.)));

  load = name: builtins.fromJSON (builtins.readFile (./. + "/${name}.json"));

  # The changes a named system makes on top of its host: secrets read from
  # other files (changed, corrupt, wrongly encrypted ones), secrets
  # declared in addition, and secrets declared with options of their own
  # (`secrets`: name to options, `file` relative to the repository).
  systemModule = spec: {
    nixseal.secrets =
      mapAttrs (_: file: { file = repo + "/${file}"; }) (spec.files or { })
      // genAttrs (spec.declare or [ ]) (_: { })
      // mapAttrs (_: s: s // { file = repo + "/${s.file}"; }) (spec.secrets or { });
  };
in
rec {
  inherit repo systemModule;

  scenarios = genAttrs names load;

  # The NixOS modules of system `system` ("base" or a name in `systems`).
  modulesFor = scenario: system:
    [ (repo + "/hosts/${scenario.host}") ]
    ++ optional (system != "base") (systemModule scenario.systems.${system});

  # The home-manager modules of a home-manager scenario.
  homeModulesFor = scenario: [ (repo + "/${scenario.home.module}") ];

  ofKind = kind: lib.filterAttrs (_: s: (s.kind or "nixos") == kind) scenarios;
}
