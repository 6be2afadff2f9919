# The VM test of a home-manager scenario. The flake has no home-manager
# input, so the user's configuration is evaluated with the flake's
# homeManagerModules.nixseal against the option stand-ins of ../eval (the
# same evaluation the local twin makes), and the user unit it defines is
# installed into the VM as a NixOS user unit. The user lingers, so her
# systemd instance (and the unit) starts at boot.
{ self, pkgs, defs, name, ... }:
let
  inherit (pkgs) lib;
  scenario = defs.scenarios.${name};
  inherit (scenario) home;

  harness = import ../eval/lib.nix { inherit lib; };
  evaluated = harness.evalHome {
    modules = [ self.homeManagerModules.nixseal ] ++ defs.homeModulesFor scenario;
    inherit pkgs;
  };
  failed = evaluated.failedAssertions;
  unit = evaluated.config.systemd.user.services.nixseal;
in
assert lib.assertMsg (failed == [ ]) "home-manager scenario ${name}: ${lib.concatStringsSep "; " failed}";
pkgs.testers.runNixOSTest {
  name = "nixseal-${name}";

  nodes.machine = {
    users.users.${home.user} = {
      isNormalUser = true;
      uid = home.uid;
      linger = true;
    };

    systemd.user.services.nixseal = {
      description = unit.Unit.Description;
      wantedBy = unit.Install.WantedBy;
      restartTriggers = unit.Unit.X-Restart-Triggers or [ ];
      serviceConfig = unit.Service;
    };

    # The user's TEST-ONLY KEY (committed on purpose, never use in
    # production), in place before her systemd instance starts.
    systemd.services.place-user-key = {
      requiredBy = [ "user@${toString home.uid}.service" ];
      before = [ "user@${toString home.uid}.service" ];
      serviceConfig.Type = "oneshot";
      # Directories the user owns, as `ssh-keygen` or `age-keygen` would
      # leave them, not root-owned ones made by `install -D`.
      script = ''
        key=${lib.escapeShellArg home.keyPath}
        dir=$(dirname "$key")
        ${pkgs.util-linux}/bin/runuser -u ${home.user} -- mkdir -p -m 0700 "$dir"
        install -o ${home.user} -g users -m 0400 ${../.. + "/${home.key}"} "$key"
      '';
    };
  };

  testScript = import ./driver.nix {
    inherit lib scenario;
    node = "machine";
    user = home.user;
    runtimeDir = "/run/user/${toString home.uid}";
  };
}
