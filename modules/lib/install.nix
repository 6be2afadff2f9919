# How the NixOS module runs `nixseal install` for either of its manifests:
# a oneshot unit, or an activation snippet where activation scripts create
# the users (../security/activation.nix, ../security/for-users.nix).
{ lib }:
let
  # libexec/nixseal-install, not bin/nixseal install: the same install,
  # started without nixpkgs' Python wrapper (helper/launcher/nixseal-install.in).
  command = package: manifest: "${package}/libexec/nixseal-install --manifest ${manifest}";
in
{
  inherit command;

  # Dry activation (nixos-rebuild dry-activate) reports, writes nothing. A
  # snippet runs before switch-to-configuration reloads systemd, so the
  # units of changed secrets stay pending in the generation's record and
  # nixseal-restart-units.service signals them after the switch.
  snippet = package: manifest: ''
    if [ "''${NIXOS_ACTION-}" = dry-activate ]; then
      ${command package manifest} --dry-run
    else
      ${command package manifest} --defer-signals
    fi
  '';

  # mounts: paths whose file systems it waits for (RequiresMountsFor).
  # A switch to a new manifest restarts it (restartTriggers).
  unit = package: manifest: mounts: {
    restartTriggers = [ manifest ];
    unitConfig = {
      DefaultDependencies = false;
    } // lib.optionalAttrs (mounts != [ ]) { RequiresMountsFor = mounts; };
    serviceConfig = {
      Type = "oneshot";
      RemainAfterExit = true;
      ExecStart = command package manifest;
    };
  };

  # Users (and their passwords) come from a unit with userborn or sysusers,
  # from the `users` activation script otherwise.
  userUnits = config:
    lib.optionals config.services.userborn.enable [ "userborn.service" ]
    ++ lib.optionals config.systemd.sysusers.enable [ "systemd-sysusers.service" ];

  # The file system holding a path: the longest mount point above it.
  fileSystemOf = config: path:
    let
      mountPoints = lib.sort (a: b: lib.stringLength a > lib.stringLength b) (
        map (fs: fs.mountPoint) (lib.attrValues config.fileSystems)
      );
    in
    lib.findFirst (mp: mp == "/" || path == mp || lib.hasPrefix "${mp}/" path) "/" mountPoints;

  # Whether NixOS mounts the file system at mount point mp in the initrd
  # (nixos/lib/utils.nix, fsNeededForBoot), before any unit or activation
  # script runs.
  inInitrd = config: mp:
    lib.elem mp [ "/" "/nix" "/nix/store" "/var" "/var/log" "/var/lib" "/var/lib/nixos" "/etc" "/usr" ]
    || lib.any (fs: fs.mountPoint == mp && fs.neededForBoot) (lib.attrValues config.fileSystems);

  # systemd.services as the modules other than `file` define them: a
  # module that adds a setting to a service named by the user would make
  # any name look defined otherwise.
  servicesDefinedOutside = options: file:
    lib.foldl' (acc: d: if d.file == toString file then acc else acc // d.value) { } options.systemd.services.definitionsWithLocations;

  # Runs no activation scripts at all. Older nixpkgs have no such option.
  nixosInit = config: options: options.system ? nixos-init && config.system.nixos-init.enable;
}
