# A build-failure scenario: a system whose secret is not encrypted to the
# host must fail to build its manifest, with the message users need; a
# system declaring a secret the rules do not give the host must fail its
# assertions, naming the option and the fix. No VM: nothing boots.
{ pkgs, defs, evalNixos, name, ... }:
let
  inherit (pkgs) lib;
  scenario = defs.scenarios.${name};
  configOf = system: (evalNixos (defs.modulesFor scenario system)).config;

  buildFailure = scenario.buildFailure;
  failedBuild = pkgs.testers.testBuildFailure (configOf buildFailure.system).system.build.nixsealManifest;

  evalFailure = scenario.evalFailure;
  assertions = map (a: a.message) (
    builtins.filter (a: !a.assertion) (configOf evalFailure.system).assertions
  );
  explains = message: lib.all (wanted: lib.hasInfix wanted message) evalFailure.messages;
in
assert lib.assertMsg (lib.any explains assertions)
  "scenario ${name}: no assertion of system ${evalFailure.system} says ${builtins.toJSON evalFailure.messages}; got ${builtins.toJSON assertions}";
pkgs.runCommand "nixseal-${name}" { passthru = { inherit failedBuild; }; } ''
  log=${failedBuild}/testBuildFailure.log
  test "$(cat ${failedBuild}/testBuildFailure.exit)" = 1
  ${lib.concatMapStrings (m: ''
    grep -F -- ${lib.escapeShellArg m} "$log"
  '') buildFailure.messages}
  touch "$out"
''
