# The VM test of a host scenario: the example host boots with its secrets,
# then switches between the scenario's systems (specialisations of the
# booted one, set as generations of the system profile so that a rollback
# is a real one), asserting the scenario's steps.
{ self, pkgs, defs, name, ... }:
let
  inherit (pkgs) lib;
  scenario = defs.scenarios.${name};
  host = scenario.host;
in
pkgs.testers.runNixOSTest {
  name = "nixseal-${name}";

  nodes.${host} = {
    imports = [
      self.nixosModules.nixseal
      (import ./test-keys.nix host)
    ]
    ++ defs.modulesFor scenario "base";

    specialisation = lib.mapAttrs (system: _: {
      configuration.imports = [ (defs.systemModule scenario.systems.${system}) ];
    }) (scenario.systems or { });

    # Room for the extra system closures the test switches to.
    virtualisation.memorySize = 1536;
  };

  testScript = import ./driver.nix {
    inherit lib scenario;
    node = host;
  };
}
