# Secrets needed to create users (`neededForUsers`: user passwords for
# `hashedPasswordFile`). Users do not exist yet when these are installed,
# so they have a manifest of their own, under /run/secrets-for-users, with
# numeric owners and no templates, installed before the users are created:
# by a unit before userborn or systemd-sysusers, or by the activation
# snippet `nixsealForUsers` before the `users` script, in both activation
# modes. Its file is written with the main one (./secrets.nix).
{ config, options, lib, ... }:
let
  inherit (lib) mkOption mkIf mkMerge types literalMD attrValues concatMap optional;
  cfg = config.nixseal;
  manifestLib = import ../lib/manifest.nix { inherit lib; };
  optionsLib = import ../lib/options.nix { inherit lib; };
  install = import ../lib/install.nix { inherit lib; };
  dir = manifestLib.forUsersDir;

  secrets = builtins.filter (s: s.neededForUsers) (attrValues cfg.secrets);
  names = map (s: s.name) secrets;
  needed = secrets != [ ];
  userUnits = install.userUnits config;
  usersByUnit = userUnits != [ ];

  # userborn sees a password file's path, not its content (its
  # restartTriggers): a changed value restarts it, so that it sets the new
  # password on the switch.
  passwordUnits = optional config.services.userborn.enable "userborn.service";
  manifest = manifestLib.build {
    settings = {
      inherit (cfg) keepGenerations useTmpfs identityPaths;
      mountPoint = "${dir}.d";
      symlinkPath = dir;
      userMode = false;
      platform = "linux";
    };
    secrets = map (s: s // { owner = "0"; group = "0"; restartUnits = lib.unique (s.restartUnits ++ passwordUnits); }) secrets;
  };

  isRoot = id: builtins.elem id [ "root" "0" ];
  problems = concatMap
    (s: optional (!(isRoot s.owner && isRoot s.group)) "nixseal.secrets.\"${s.name}\".neededForUsers: secrets installed before users exist must be owned by root:root; set owner and group to \"root\" or neededForUsers = false")
    secrets;

  # The snippet runs before `users`, which runs before `etc`: at first
  # boot, files that environment.etc places do not exist yet when it runs.
  identities = map toString cfg.identityPaths;
  etcTargets = map (e: "/etc/${e.target}") (lib.filter (e: e.enable) (attrValues config.environment.etc));
  firstBootKeys = lib.filter (p: !(lib.elem p etcTargets)) identities;

  fileSystemOf = install.fileSystemOf config;
  inInitrd = install.inInitrd config;
  # userborn and systemd-sysusers run before local-fs-pre.target: the unit
  # installing passwords before them cannot wait for a stage-2 mount
  # without an ordering cycle, so its keys must be on file systems of the
  # initrd, which are mounted before any unit starts.
  lateKeys = lib.filter (p: !inInitrd (fileSystemOf p)) identities;
in
{
  options.nixseal = {
    secrets = mkOption {
      type = types.attrsOf (optionsLib.entryType (_: {
        options.neededForUsers = mkOption {
          type = types.bool;
          default = false;
          description = ''
            Install this secret before users are created, under
            `${dir}`, so that `users.users.<name>.hashedPasswordFile`
            can point at it. Such secrets must be owned by root.
          '';
        };
      }));
    };

    manifestForUsers = optionsLib.manifestOption {
      value = manifest;
      defaultText = literalMD "built from the `neededForUsers` secrets";
      description = "The manifest of the `neededForUsers` secrets (file: `system.build.nixsealManifestForUsers`).";
    };
  };

  config = mkMerge [
    (mkIf needed {
      warnings = map
        (s: "nixseal.secrets.\"${s.name}\".neededForUsers: with systemd.sysusers.enable, systemd-sysusers sets a password only when it creates a user, so a changed value of this secret reaches no existing user until it is created again; set services.userborn.enable instead to have a new password applied on the switch")
        (lib.optionals config.systemd.sysusers.enable secrets);

      assertions = map (message: { assertion = false; inherit message; }) problems ++ [
        {
          assertion = usersByUnit || !(install.nixosInit config options);
          message = "nixseal.secrets.<name>.neededForUsers (set for ${lib.concatMapStringsSep ", " (n: "\"${n}\"") names}) needs services.userborn.enable or systemd.sysusers.enable with system.nixos-init.enable (which runs no activation scripts): enable one of them, or set neededForUsers = false";
        }
      ];
    })

    (mkIf (needed && usersByUnit && cfg.activation != "script") {
      systemd.services.nixseal-install-for-users = install.unit cfg.package config.system.build.nixsealManifestForUsers [ ] // {
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

    # Without userborn or sysusers, users are created by the `users`
    # activation script, in both modes: password secrets must be there first.
    (mkIf (needed && !usersByUnit) {
      system.activationScripts.nixsealForUsers = {
        deps = [ "specialfs" ];
        supportsDryActivation = true;
        text = install.snippet cfg.package config.system.build.nixsealManifestForUsers;
      };
      system.activationScripts.users.deps = [ "nixsealForUsers" ];

      warnings = optional (identities != [ ] && firstBootKeys == [ ]) (
        "nixseal: the neededForUsers secrets (${lib.concatStringsSep ", " names}) are installed "
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
