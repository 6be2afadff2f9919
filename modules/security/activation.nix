# When `nixseal install` runs. Default: systemd units early in boot and on
# a switch that changes the manifest (ordered by sysinit-reactivation.target),
# the only way under userborn, systemd-sysusers and nixos-init. Fallback:
# activation script snippets.
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

  # The `nixsealForUsers` snippet must run before `users`, which runs
  # before `etc`: at first boot, files that environment.etc places do not
  # exist yet when it runs.
  identities = map toString cfg.identityPaths;
  etcTargets = map (e: "/etc/${e.target}") (lib.filter (e: e.enable) (lib.attrValues config.environment.etc));
  firstBootKeys = lib.filter (p: !(lib.elem p etcTargets)) identities;
  forUsersNames = map (s: s.name) cfg.manifestForUsers.secrets;

  exe = "${cfg.package}/bin/nixseal";
  command = manifest: "${exe} install --manifest ${manifest}";

  # Dry activation (nixos-rebuild dry-activate) reports, writes nothing. A
  # snippet runs before switch-to-configuration reloads systemd, so the
  # units of changed secrets stay pending in the generation's record and
  # nixseal-restart-units.service signals them after the switch.
  snippet = manifest: ''
    if [ "''${NIXOS_ACTION-}" = dry-activate ]; then
      ${command manifest} --dry-run
    else
      ${command manifest} --defer-signals
    fi
  '';

  # mounts: paths whose file systems it waits for (RequiresMountsFor).
  unit = manifest: mounts: {
    restartTriggers = [ manifest ];
    unitConfig = {
      DefaultDependencies = false;
    } // lib.optionalAttrs (mounts != [ ]) { RequiresMountsFor = mounts; };
    serviceConfig = {
      Type = "oneshot";
      RemainAfterExit = true;
      ExecStart = command manifest;
    };
  };

  # The file system holding a path: the longest mount point above it.
  mountPoints = lib.sort (a: b: lib.stringLength a > lib.stringLength b) (
    map (fs: fs.mountPoint) (lib.attrValues config.fileSystems)
  );
  fileSystemOf = path: lib.findFirst (mp: mp == "/" || path == mp || lib.hasPrefix "${mp}/" path) "/" mountPoints;
  # What NixOS mounts in the initrd (nixos/lib/utils.nix, fsNeededForBoot).
  initrdPaths = [ "/" "/nix" "/nix/store" "/var" "/var/log" "/var/lib" "/var/lib/nixos" "/etc" "/usr" ];
  fsByMount = lib.listToAttrs (map (fs: lib.nameValuePair fs.mountPoint fs) (lib.attrValues config.fileSystems));
  inInitrd = mp: lib.elem mp initrdPaths || fsByMount.${mp}.neededForBoot or false;
  # userborn and systemd-sysusers run before local-fs-pre.target: the unit
  # installing passwords before them cannot wait for a stage-2 mount
  # without an ordering cycle, so its keys must be on file systems of the
  # initrd, which are mounted before any unit starts.
  lateKeys = lib.filter (p: !inInitrd (fileSystemOf p)) identities;

  # Script mode, and password secrets installed by a snippet: what
  # nixseal-restart-units.service signals after the switch.
  bySnippet =
    lib.optional (scriptMode && mainNeeded) config.system.build.nixsealManifest
    ++ lib.optional (forUsersNeeded && !usersByUnit && forUsersSignals) config.system.build.nixsealManifestForUsers;
  forUsersSignals = lib.any (s: s.restartUnits != [ ] || s.reloadUnits != [ ]) cfg.manifestForUsers.secrets;
in
{
  config = mkMerge [
    (mkIf (!scriptMode && mainNeeded) {
      # Keys on a file system mounted in stage 2 (a persistent volume) are
      # there before the helper reads them.
      systemd.services.nixseal-install = unit config.system.build.nixsealManifest identities // {
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

    (mkIf (!scriptMode && forUsersNeeded && usersByUnit) {
      systemd.services.nixseal-install-for-users = unit config.system.build.nixsealManifestForUsers [ ] // {
        description = "Install nixseal secrets needed to create users";
        wantedBy = [ "sysinit.target" ] ++ userUnits;
        requiredBy = [ "sysinit-reactivation.target" ];
        before = [ "sysinit.target" "sysinit-reactivation.target" ] ++ userUnits;
      };
      assertions = [
        {
          assertion = lateKeys == [ ];
          message = "nixseal.identityPaths: ${lib.concatStringsSep ", " lateKeys} ${if lib.length lateKeys == 1 then "is" else "are"} on ${lib.concatMapStringsSep ", " (p: "fileSystems.\"${fileSystemOf p}\"") lateKeys}, mounted after ${lib.concatStringsSep " and " userUnits} runs, which needs the neededForUsers secrets: set ${lib.concatMapStringsSep ", " (p: "fileSystems.\"${fileSystemOf p}\".neededForBoot = true") (lib.unique lateKeys)} (mounted in the initrd), or list a key on a file system the initrd mounts first in nixseal.identityPaths";
        }
      ];
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
          ExecStart = map (m: "${command m} --signal-pending") bySnippet;
        };
      };
    })

    (mkIf (scriptMode && mainNeeded) {
      system.activationScripts.nixseal = {
        # After etc too: a key that environment.etc places is then there
        # at first boot.
        deps = [ "specialfs" "users" "groups" "etc" ];
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

      warnings = lib.optional (identities != [ ] && firstBootKeys == [ ]) (
        "nixseal: the neededForUsers secrets (${lib.concatStringsSep ", " forUsersNames}) are installed "
        + "before /etc is populated (users are created by the activation script, which must find their "
        + "passwords), but every path in nixseal.identityPaths (${lib.concatStringsSep ", " identities}) "
        + "is placed by environment.etc: on the machine's first boot no key is there and those users get "
        + "no password. Add to nixseal.identityPaths a key kept outside environment.etc (installed with "
        + "the machine or on persistent storage), or set services.userborn.enable or "
        + "systemd.sysusers.enable so that a unit installs them after /etc exists."
      );
    })
  ];
}
