# When `nixseal install` runs. Default: systemd units early in boot and on
# every switch (sysinit-reactivation.target), the only way under userborn,
# systemd-sysusers and nixos-init. Fallback: activation script snippets.
{ config, lib, ... }:
let
  inherit (lib) mkIf mkMerge optionals;
  cfg = config.nixseal;

  mainNeeded = cfg.manifest.secrets != [ ] || cfg.manifest.templates != [ ];
  forUsersNeeded = cfg.manifestForUsers.secrets != [ ];
  scriptMode = cfg.activation == "script";

  # Users (and their passwords) come from a unit with userborn or sysusers,
  # from the `users` activation script otherwise.
  userUnits =
    optionals config.services.userborn.enable [ "userborn.service" ]
    ++ optionals config.systemd.sysusers.enable [ "systemd-sysusers.service" ];
  usersByUnit = userUnits != [ ];

  exe = "${cfg.package}/bin/nixseal";
  command = manifest: "${exe} install --manifest ${manifest}";

  # Dry activation (nixos-rebuild dry-activate) reports, writes nothing.
  snippet = manifest: ''
    if [ "''${NIXOS_ACTION-}" = dry-activate ]; then
      ${command manifest} --dry-run
    else
      ${command manifest}
    fi
  '';

  unit = manifest: {
    restartTriggers = [ manifest ];
    unitConfig = {
      DefaultDependencies = false;
      RequiresMountsFor = map toString cfg.identityPaths;
    };
    serviceConfig = {
      Type = "oneshot";
      RemainAfterExit = true;
      ExecStart = command manifest;
    };
  };
in
{
  config = mkMerge [
    (mkIf (!scriptMode && mainNeeded) {
      systemd.services.nixseal-install = unit config.system.build.nixsealManifest // {
        description = "Install nixseal secrets";
        # Rerun on every switch: switch-to-configuration restarts
        # sysinit-reactivation.target. Before sysinit.target so that no
        # ordinary service starts without its secrets.
        wantedBy = [ "sysinit.target" ];
        requiredBy = [ "sysinit-reactivation.target" ];
        before = [
          "sysinit.target"
          "sysinit-reactivation.target"
        ];
        after = [ "local-fs.target" ] ++ userUnits;
      };
    })

    (mkIf (!scriptMode && forUsersNeeded && usersByUnit) {
      systemd.services.nixseal-install-for-users = unit config.system.build.nixsealManifestForUsers // {
        description = "Install nixseal secrets needed to create users";
        wantedBy = [ "sysinit.target" ] ++ userUnits;
        requiredBy = [ "sysinit-reactivation.target" ];
        before = [
          "sysinit.target"
          "sysinit-reactivation.target"
        ]
        ++ userUnits;
        after = [ "local-fs.target" ];
      };
    })

    (mkIf (scriptMode && mainNeeded) {
      system.activationScripts.nixseal = {
        deps = [
          "specialfs"
          "users"
          "groups"
        ];
        supportsDryActivation = true;
        text = snippet config.system.build.nixsealManifest;
      };
    })

    # Without userborn or sysusers, users are created by the `users`
    # activation script, in both modes: password secrets must be there first.
    (mkIf (forUsersNeeded && !usersByUnit) {
      system.activationScripts.nixsealForUsers = {
        deps = [ "specialfs" ];
        supportsDryActivation = true;
        text = snippet config.system.build.nixsealManifestForUsers;
      };
      system.activationScripts.users.deps = [ "nixsealForUsers" ];
    })
  ];
}
