# When `nixseal install` runs on nix-darwin: at boot, from the launchd
# daemon `nixseal-install` (RunAtLoad), and on `darwin-rebuild switch`,
# from the activation script, right after the `users` step has made users
# and groups (so owners exist) and before the `launchd` step reloads
# changed services (so none starts without its secrets). A switch that
# changes the manifest also changes the daemon, which the `launchd` step
# then reloads and so runs again: that second install finds every entry
# unchanged. Failure policy as on NixOS: a failed secret keeps its
# previous value, the others install, and the switch goes on.
{ config, lib, ... }:
let
  cfg = config.nixseal;
  install = import ../lib/install.nix { inherit lib; };

  needed = cfg.manifest.secrets != [ ] || cfg.manifest.templates != [ ];
  command = install.command cfg.package config.system.build.nixsealManifest;
in
{
  options.nixseal.logFile = lib.mkOption {
    type = lib.types.str;
    default = "/var/log/nixseal-install.log";
    description = ''
      Where the boot-time daemon's output goes (launchd keeps none
      otherwise): the install's events, never a secret's value.
    '';
  };

  config = lib.mkIf needed {
    launchd.daemons.nixseal-install.serviceConfig = {
      # As nix-darwin's own daemons start: the store may be on a volume
      # that is not mounted yet when launchd loads the job.
      ProgramArguments = [ "/bin/sh" "-c" "/bin/wait4path /nix/store && exec ${command}" ];
      RunAtLoad = true;
      StandardOutPath = cfg.logFile;
      StandardErrorPath = cfg.logFile;
    };

    system.activationScripts.users.text = lib.mkAfter ''
      echo "installing nixseal secrets..." >&2
      if ! ${command}; then
        echo "nixseal: some secrets were not installed (see above); they keep their previous values" >&2
      fi
    '';
  };
}
