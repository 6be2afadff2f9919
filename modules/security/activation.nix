# When `nixseal install` runs for the main manifest. Default: a systemd unit
# early in boot and on a switch that changes the manifest (ordered by
# sysinit-reactivation.target), the only way under userborn,
# systemd-sysusers and nixos-init. Fallback: an activation script snippet.
# (The secrets needed to create users: ./for-users.nix.)
{ config, options, lib, ... }:
let
  inherit (lib) mkOption mkIf mkMerge types optional;
  cfg = config.nixseal;
  install = import ../lib/install.nix { inherit lib; };

  mainNeeded = cfg.manifest.secrets != [ ] || cfg.manifest.templates != [ ];
  scriptMode = cfg.activation == "script";
  userUnits = install.userUnits config;

  noScriptsReason = lib.concatStringsSep ", " (
    optional config.services.userborn.enable "services.userborn.enable"
    ++ optional config.systemd.sysusers.enable "systemd.sysusers.enable"
    ++ optional (install.nixosInit config options) "system.nixos-init.enable"
    ++ optional config.system.etc.overlay.enable "system.etc.overlay.enable"
  );

  # What nixseal-restart-units.service signals after the switch: the
  # manifests installed by a snippet, the main one in script mode and,
  # where activation scripts create users, the password secrets' (by
  # ./for-users.nix's snippet, in both modes) when they name units.
  forUsersBySnippet = cfg.manifestForUsers.secrets != [ ] && userUnits == [ ];
  forUsersSignals = lib.any (s: s.restartUnits != [ ] || s.reloadUnits != [ ]) cfg.manifestForUsers.secrets;
  bySnippet =
    optional (scriptMode && mainNeeded) config.system.build.nixsealManifest
    ++ optional (forUsersBySnippet && forUsersSignals) config.system.build.nixsealManifestForUsers;
in
{
  options.nixseal.activation = mkOption {
    type = types.enum [ "systemd" "script" ];
    default = "systemd";
    description = ''
      How secrets are installed: `systemd` runs `nixseal-install.service`
      early in boot (before `sysinit.target`) and again on a switch that
      changes the manifest; `script` uses activation scripts (on their
      way out of NixOS; not possible with userborn, systemd-sysusers,
      nixos-init or an /etc overlay). Where the activation script
      creates users, `neededForUsers` secrets are installed by the
      `nixsealForUsers` activation snippet, before `users`, in both modes.
    '';
  };

  config = mkMerge [
    (mkIf (cfg.secrets != { } || cfg.templates != { }) {
      warnings = optional (scriptMode && noScriptsReason == "") "nixseal.activation = \"script\": activation scripts are on their way out of NixOS; nixseal.activation = \"systemd\" (the default) installs secrets from a unit instead";
      assertions = [
        {
          assertion = !(scriptMode && noScriptsReason != "");
          message = "nixseal.activation = \"script\" cannot work with ${noScriptsReason} (no activation scripts for users): set nixseal.activation = \"systemd\"";
        }
      ];
    })

    (mkIf (!scriptMode && mainNeeded) {
      # Keys on a file system mounted in stage 2 (a persistent volume) are
      # there before the helper reads them.
      # systemd-creds, sealing credentials, reads the host key there.
      systemd.services.nixseal-install = install.unit cfg.package config.system.build.nixsealManifest (
        map toString cfg.identityPaths ++ optional (cfg.manifest.systemdCreds != null) "/var/lib/systemd"
      ) // {
        description = "Install nixseal secrets";
        # A switch to a new manifest restarts the unit (restartTriggers);
        # sysinit-reactivation.target orders that restart before the
        # restarts of ordinary services, as sysinit.target does at boot,
        # so that no service starts without its secrets.
        wantedBy = [ "sysinit.target" ];
        requiredBy = [ "sysinit-reactivation.target" ];
        before = [ "sysinit.target" "sysinit-reactivation.target" ];
        after = [ "local-fs.target" ] ++ userUnits;
      };
    })

    (mkIf (scriptMode && mainNeeded) {
      system.activationScripts.nixseal = {
        # After etc too: a key that environment.etc places is then there
        # at first boot.
        deps = [ "specialfs" "users" "groups" "etc" ];
        supportsDryActivation = true;
        text = install.snippet cfg.package config.system.build.nixsealManifest;
      };
    })

    (mkIf (bySnippet != [ ]) {
      # After the switch has reloaded systemd (a new manifest restarts it,
      # as switch-to-configuration restarts any changed unit), and at boot.
      systemd.services.nixseal-restart-units = {
        description = "Restart the units of changed nixseal secrets";
        wantedBy = [ "multi-user.target" ];
        restartTriggers = bySnippet;
        serviceConfig = {
          Type = "oneshot";
          RemainAfterExit = true;
          ExecStart = map (m: "${install.command cfg.package m} --signal-pending") bySnippet;
        };
      };
    })
  ];
}
