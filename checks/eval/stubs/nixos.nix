# Stand-ins for the NixOS options nixseal's module reads or writes, declared
# with the same types and defaults as nixpkgs, so that evaluating the module
# against them fails where evaluating it on NixOS would. Each declaration
# names the nixpkgs file (under nixos/) it mirrors. Only what the module
# touches is here; it is not NixOS. system.nixos-init is in ./nixos-init.nix,
# left out to stand for a nixpkgs that does not have it.
{ config, lib, pkgs, ... }:
let
  inherit (lib) mkOption types mkDefault mkIf;

  # lib/systemd-lib.nix
  unitNameType = types.strMatching "[a-zA-Z0-9@%:_.\\-]+[.](service|socket|device|mount|automount|swap|target|path|timer|scope|slice)";
  # lib/systemd-unit-options.nix: no check at all; definitions of which
  # one is a list are concatenated (a string beside a list becomes one of
  # its elements), others must be equal.
  unitOption = lib.mkOptionType {
    name = "systemd option";
    merge = loc: defs:
      let
        defs' = lib.filterOverrides defs;
      in
      if lib.any (def: builtins.isList def.value) defs'
      then lib.concatMap (def: lib.toList def.value) defs'
      else lib.mergeEqualOption loc defs';
  };
  unitList = mkOption {
    type = types.listOf unitNameType;
    default = [ ];
  };

  serviceTypes = [
    "exec"
    "simple"
    "forking"
    "oneshot"
    "dbus"
    "notify"
    "notify-reload"
    "idle"
  ];
  serviceConfigType = types.addCheck (types.attrsOf unitOption) (
    c: !(c ? Type) || builtins.elem c.Type serviceTypes
  );

  # lib/systemd-unit-options.nix (commonUnitOptions, serviceOptions)
  serviceModule = {
    options = {
      enable = mkOption {
        type = types.bool;
        default = true;
      };
      description = mkOption {
        type = types.singleLineStr;
        default = "";
      };
      aliases = unitList;
      wantedBy = unitList;
      requiredBy = unitList;
      upheldBy = unitList;
      before = unitList;
      after = unitList;
      wants = unitList;
      requires = unitList;
      requisite = unitList;
      partOf = unitList;
      bindsTo = unitList;
      conflicts = unitList;
      onFailure = unitList;
      unitConfig = mkOption {
        type = types.attrsOf unitOption;
        default = { };
      };
      serviceConfig = mkOption {
        type = serviceConfigType;
        default = { };
      };
      restartTriggers = mkOption {
        type = types.listOf types.unspecified;
        default = [ ];
      };
      reloadTriggers = mkOption {
        type = types.listOf types.unspecified;
        default = [ ];
      };
      restartIfChanged = mkOption {
        type = types.bool;
        default = true;
      };
      reloadIfChanged = mkOption {
        type = types.bool;
        default = false;
      };
      stopIfChanged = mkOption {
        type = types.bool;
        default = true;
      };
      environment = mkOption {
        type = types.attrsOf (
          types.nullOr (
            types.oneOf [
              types.str
              types.path
              types.package
            ]
          )
        );
        default = { };
      };
      path = mkOption {
        type = types.listOf (types.either types.package types.str);
        default = [ ];
      };
    }
    # the job scripts, each a `lines` option defaulting to ""
    // lib.genAttrs [ "script" "preStart" "postStart" "reload" "preStop" "postStop" ] (_: mkOption {
      type = types.lines;
      default = "";
    })
    // {
      startAt = mkOption {
        type = types.either types.str (types.listOf types.str);
        default = [ ];
      };
    };
  };

  # modules/system/activation/activation-script.nix: attrsOf (either str
  # (submodule { deps; text; supportsDryActivation; })), run sorted by name,
  # each after its deps.
  snippetType = types.either types.str (
    types.submodule {
      options = {
        deps = mkOption {
          type = types.listOf types.str;
          default = [ ];
        };
        text = mkOption { type = types.lines; };
        supportsDryActivation = mkOption {
          type = types.bool;
          default = false;
        };
      };
    }
  );

  # The activation script as nixpkgs assembles it: snippets in dependency
  # order; in the dry variant, snippets without supportsDryActivation are
  # left out.
  activationScript = dry: set:
    let
      normal = lib.mapAttrs (
        name: v:
        let
          entry =
            if builtins.isString v then
              {
                deps = [ ];
                text = v;
                supportsDryActivation = false;
              }
            else
              v;
        in
        {
          inherit (entry) deps;
          text = lib.optionalString (entry.text != "" && (!dry || entry.supportsDryActivation)) ''
            #### Activation script snippet ${name}:
            ${entry.text}
          '';
        }
      ) set;
    in
    lib.concatStrings (lib.textClosureList normal (lib.attrNames normal));

  # modules/config/users-groups.nix
  userModule = { name, config, ... }:
    {
      options = {
        enable = mkOption {
          type = types.bool;
          default = true;
        };
        name = mkOption {
          type = types.passwdEntry types.str;
          default = name;
        };
        uid = mkOption {
          type = types.nullOr types.int;
          default = null;
        };
        isSystemUser = mkOption {
          type = types.bool;
          default = false;
        };
        isNormalUser = mkOption {
          type = types.bool;
          default = false;
        };
        group = mkOption {
          type = types.str;
          default = "";
        };
        extraGroups = mkOption {
          type = types.listOf types.str;
          default = [ ];
        };
        home = mkOption {
          type = types.passwdEntry types.path;
          default = "/var/empty";
        };
        description = mkOption {
          type = types.passwdEntry types.str;
          default = "";
        };
        hashedPassword = mkOption {
          type = types.nullOr (types.passwdEntry types.str);
          default = null;
        };
        hashedPasswordFile = mkOption {
          type = types.nullOr types.str;
          default = null;
        };
      };
      config = mkIf config.isNormalUser {
        group = mkDefault "users";
        home = mkDefault "/home/${config.name}";
      };
    };

  # modules/config/users-groups.nix
  groupModule = { name, ... }:
    {
      options = {
        name = mkOption {
          type = types.passwdEntry types.str;
          default = name;
        };
        gid = mkOption {
          type = types.nullOr types.int;
          default = null;
        };
        members = mkOption {
          type = types.listOf (types.passwdEntry types.str);
          default = [ ];
        };
      };
    };

  usersByScript = !config.services.userborn.enable && !config.systemd.sysusers.enable;

  # modules/tasks/filesystems.nix
  fileSystemModule = { name, ... }:
    {
      options = {
        mountPoint = mkOption {
          type = types.passwdEntry types.str;
          default = name;
        };
        device = mkOption {
          type = types.nullOr types.str;
          default = null;
        };
        fsType = mkOption {
          type = types.str;
          default = "auto";
        };
        options = mkOption {
          type = types.nonEmptyListOf types.str;
          default = [ "defaults" ];
        };
        neededForBoot = mkOption {
          type = types.bool;
          default = false;
        };
      };
    };

  # modules/services/system/userborn.nix: what it writes and the unit.
  userbornConfig = pkgs.writeText "userborn.json" (
    builtins.toJSON {
      groups = lib.mapAttrsToList (_: g: { inherit (g) name gid members; }) config.users.groups;
      users = lib.mapAttrsToList (
        _: u: {
          inherit (u) name uid group description home hashedPassword hashedPasswordFile;
          isNormal = u.isNormalUser;
        }
      ) (lib.filterAttrs (_: u: u.enable) config.users.users);
    }
  );
in
{
  options = {
    # modules/misc/assertions.nix
    assertions = mkOption {
      type = types.listOf types.unspecified;
      internal = true;
      default = [ ];
    };
    warnings = mkOption {
      type = types.listOf types.str;
      internal = true;
      default = [ ];
    };

    # modules/tasks/network-interfaces.nix, modules/misc/version.nix
    networking.hostName = mkOption {
      type = types.strMatching "^$|^[[:alnum:]]([[:alnum:]_-]{0,61}[[:alnum:]])?$";
      default = config.system.nixos.distroId;
    };
    system.nixos.distroId = mkOption {
      type = types.str;
      default = "nixos";
      internal = true;
    };

    # modules/config/users-groups.nix
    users.users = mkOption {
      type = types.attrsOf (types.submodule userModule);
      default = { };
    };
    users.groups = mkOption {
      type = types.attrsOf (types.submodule groupModule);
      default = { };
    };

    # modules/system/boot/systemd.nix
    systemd.package = lib.mkPackageOption pkgs "systemd" { };
    systemd.services = mkOption {
      type = types.attrsOf (types.submodule serviceModule);
      default = { };
    };
    systemd.targets = mkOption {
      type = types.attrsOf (types.submodule {
        options = {
          inherit (serviceModule.options) description wantedBy requiredBy before after wants requires unitConfig;
        };
      });
      default = { };
    };
    # modules/system/boot/systemd/user.nix
    systemd.user.services = mkOption {
      type = types.attrsOf (types.submodule serviceModule);
      default = { };
    };
    # modules/system/boot/systemd/sysusers.nix
    systemd.sysusers.enable = mkOption {
      type = types.bool;
      default = false;
    };
    # modules/services/system/userborn.nix
    services.userborn.enable = mkOption {
      type = types.bool;
      default = false;
    };
    # modules/system/etc/etc.nix
    system.etc.overlay.enable = mkOption {
      type = types.bool;
      default = false;
    };
    # modules/tasks/filesystems.nix
    fileSystems = mkOption {
      type = types.attrsOf (types.submodule fileSystemModule);
      default = { };
    };
    # modules/system/boot/systemd/initrd.nix
    boot.initrd.systemd.enable = mkOption {
      type = types.bool;
      default = true;
    };

    # modules/services/networking/ssh/sshd.nix
    services.openssh.enable = mkOption {
      type = types.bool;
      default = false;
    };
    services.openssh.hostKeys = mkOption {
      type = types.listOf types.attrs;
      default = [
        {
          type = "rsa";
          bits = 4096;
          path = "/etc/ssh/ssh_host_rsa_key";
        }
        {
          type = "ed25519";
          path = "/etc/ssh/ssh_host_ed25519_key";
        }
      ];
    };

    # modules/system/etc/etc.nix
    environment.etc = mkOption {
      type = types.attrsOf (
        types.submodule (
          { name, config, ... }:
          {
            options = {
              enable = mkOption {
                type = types.bool;
                default = true;
              };
              target = mkOption {
                type = types.str;
                default = name;
              };
              text = mkOption {
                type = types.nullOr types.lines;
                default = null;
              };
              source = mkOption { type = types.path; };
              mode = mkOption {
                type = types.str;
                default = "symlink";
              };
              user = mkOption {
                type = types.str;
                default = "+0";
              };
              group = mkOption {
                type = types.str;
                default = "+0";
              };
            };
            config.source = mkIf (config.text != null) (
              mkDefault (pkgs.writeText "etc-${baseNameOf name}" config.text)
            );
          }
        )
      );
      default = { };
    };

    # modules/config/system-path.nix
    environment.systemPackages = mkOption {
      type = types.listOf types.package;
      default = [ ];
    };

    # modules/system/activation/activation-script.nix
    system.activationScripts = mkOption {
      type = types.attrsOf snippetType;
      default = { };
      apply = set: set // { script = activationScript false set; };
    };
    system.dryActivationScript = mkOption {
      type = types.str;
      internal = true;
      readOnly = true;
    };

    # modules/system/activation/top-level.nix
    system.build = mkOption {
      type = types.submoduleWith {
        modules = [ { freeformType = types.lazyAttrsOf (types.uniq types.unspecified); } ];
      };
      default = { };
    };
  };

  config = {
    users.users.root = {
      uid = 0;
      description = "System administrator";
      home = "/root";
      group = "root";
    };
    users.users.nobody = {
      uid = 65534;
      isSystemUser = true;
      description = "Unprivileged account (don't use!)";
      group = "nogroup";
    };
    users.groups = {
      root.gid = 0;
      wheel.gid = 1;
      tty.gid = 3;
      keys.gid = 96;
      users.gid = 100;
      nogroup.gid = 65534;
    };

    assertions = lib.concatLists (
      lib.mapAttrsToList (name: user: [
        {
          assertion = user.group != "";
          message = "users.users.${name}.group is unset. This used to default to\nnogroup, but this is unsafe.";
        }
        {
          assertion = user.group == "" || config.users.groups ? ${user.group} || lib.any (g: g.name == user.group) (lib.attrValues config.users.groups);
          message = "users.users.${name}.group = \"${user.group}\" names no group in users.groups";
        }
        {
          assertion = name == "root" || (user.isNormalUser != user.isSystemUser);
          message = "Exactly one of users.users.${name}.isSystemUser and users.users.${name}.isNormalUser must be set.";
        }
        # modules/system/boot/systemd/sysusers.nix
        {
          assertion = !(config.systemd.sysusers.enable && user.enable && user.isNormalUser);
          message = "${name} is a normal user. systemd-sysusers doesn't create normal users, only system users.";
        }
      ]) config.users.users
    );

    system.activationScripts = {
      specialfs = "# mount /proc, /sys, /dev, /run";
      users =
        if usersByScript then
          {
            supportsDryActivation = true;
            text = "# update-users-groups";
          }
        else
          "";
      groups = lib.stringAfter [ "users" ] "# create /home";
      etc = lib.stringAfter [ "users" "groups" "specialfs" ] "# link /etc";
    };

    system.dryActivationScript = activationScript true (
      removeAttrs config.system.activationScripts [ "script" ]
    );

    # modules/system/boot/systemd.nix: NixOS's own target; units that must
    # run again on a switch are required by it and ordered before it.
    systemd.targets.sysinit-reactivation.description = "Reactivate sysinit units";

    # modules/services/system/userborn.nix
    systemd.services.userborn = mkIf config.services.userborn.enable {
      wantedBy = [ "sysinit.target" ];
      requiredBy = [ "sysinit-reactivation.target" ];
      after = [ "systemd-remount-fs.service" "systemd-tmpfiles-setup-dev-early.service" ];
      before = [ "systemd-tmpfiles-setup-dev.service" "sysinit.target" "shutdown.target" "sysinit-reactivation.target" ];
      conflicts = [ "shutdown.target" ];
      restartTriggers = [ userbornConfig "/etc" ];
      aliases = [ "systemd-sysusers.service" ];
      unitConfig = {
        Description = "Manage Users and Groups";
        DefaultDependencies = false;
      };
      serviceConfig = {
        Type = "oneshot";
        RemainAfterExit = true;
        TimeoutSec = "90s";
        ExecStart = "${pkgs.userborn}/bin/userborn ${userbornConfig} /etc";
      };
    };

    # modules/system/boot/systemd/sysusers.nix: a drop-in for systemd's own
    # systemd-sysusers.service (which orders it before sysinit.target).
    systemd.services.systemd-sysusers = mkIf config.systemd.sysusers.enable {
      unitConfig.ConditionNeedsUpdate = [ "" ];
      requiredBy = [ "sysinit-reactivation.target" ];
      before = [ "sysinit-reactivation.target" ];
      serviceConfig.LoadCredential = lib.mapAttrsToList (n: u: "passwd.hashed-password.${n}:${u.hashedPasswordFile}") (
        lib.filterAttrs (_: u: u.enable && !u.isNormalUser && u.hashedPasswordFile != null) config.users.users
      );
    };

    # As NixOS does for the system closure: building fails on a failed
    # assertion, and warnings are printed.
    system.build.toplevel = lib.asserts.checkAssertWarn config.assertions config.warnings (
      pkgs.runCommand "nixos-system-${config.networking.hostName}" {
        activate = config.system.activationScripts.script;
      } "echo faked > $out"
    );
  };
}
