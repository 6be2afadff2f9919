# nixseal: age-encrypted secrets, declared here, installed at activation by
# `nixseal install` (see ./activation.nix for when it runs).
{ config, options, lib, pkgs, ... }:
let
  inherit (lib) mkOption mkIf types literalExpression literalMD attrValues listToAttrs nameValuePair partition concatMap optional optionals;

  cfg = config.nixseal;
  manifestLib = import ../lib/manifest.nix { inherit lib; };
  rulesLib = import ../lib/rules.nix { inherit lib; };
  optionsLib = import ../lib/options.nix { inherit lib; };

  rules = if cfg.rules == null then null else rulesLib.read cfg.rules;
  rulesDir = dirOf cfg.rules;
  forHost = rulesLib.forHost rules cfg.hostName;

  forUsersDir = "/run/secrets-for-users";

  secretType = optionsLib.entryType ({ name, config, ... }: {
    options = optionsLib.secretOptions
      {
        inherit name config;
        fileDefault = if cfg.rules == null then null else rulesDir + "/${config.name}.age";
        fileDefaultText = literalMD "`<rules dir>/<name>.age` when `nixseal.rules` is set; no default otherwise";
        pathPrefix = if config.neededForUsers then forUsersDir else cfg.symlinkPath;
        pathPrefixText = "\${if neededForUsers then \"${forUsersDir}\" else config.nixseal.symlinkPath}";
      } // {
      owner = mkOption {
        type = types.str;
        default = "root";
        description = "Owner of the decrypted file: a user name from `users.users`, or a decimal uid.";
      };
      group = mkOption {
        type = types.str;
        default = usersByName.${config.owner}.group or "root";
        defaultText = literalMD "the owner's primary group (`users.users.<owner>.group`), or `root` when the owner is a uid";
        description = "Group of the decrypted file: a group name from `users.groups`, or a decimal gid.";
      };
      neededForUsers = mkOption {
        type = types.bool;
        default = false;
        description = ''
          Install this secret before users are created, under
          `${forUsersDir}`, so that `users.users.<name>.hashedPasswordFile`
          can point at it. Such secrets must be owned by root.
        '';
      };
    };
  });

  templateType = optionsLib.entryType ({ name, config, ... }: {
    options = optionsLib.templateOptions
      {
        inherit name config;
        pathPrefix = "${cfg.symlinkPath}/rendered";
        pathPrefixText = "\${config.nixseal.symlinkPath}/rendered";
      } // {
      owner = mkOption {
        type = types.str;
        default = "root";
        description = "Owner of the rendered file: a user name from `users.users`, or a decimal uid.";
      };
      group = mkOption {
        type = types.str;
        default = usersByName.${config.owner}.group or "root";
        defaultText = literalMD "the owner's primary group (`users.users.<owner>.group`), or `root` when the owner is a uid";
        description = "Group of the rendered file: a group name from `users.groups`, or a decimal gid.";
      };
    };
  });

  # Looked up by login name (users.users.<attr>.name), built once. A user
  # with enable = false is created by nothing (userborn and sysusers skip
  # it too), so it owns nothing.
  enabledUsers = lib.partition (u: u.enable) (attrValues config.users.users);
  usersByName = listToAttrs (map (u: nameValuePair u.name u) enabledUsers.right);
  disabledByName = listToAttrs (map (u: nameValuePair u.name true) enabledUsers.wrong);
  groupsByName = listToAttrs (map (g: nameValuePair g.name true) (attrValues config.users.groups));
  isId = s: builtins.match "[0-9]+" s != null;

  split = partition (s: s.neededForUsers) (attrValues cfg.secrets);
  mainSecrets = split.wrong;
  userSecrets = split.right;
  templates = attrValues cfg.templates;

  scriptMode = cfg.activation == "script";

  # NixOS's restart lists (/run/nixos/activation-restart-list) are
  # deprecated (switch-to-configuration warns; gone in NixOS 26.11): in
  # script mode too, units are signalled with systemctl, after the switch
  # (./activation.nix, nixseal-restart-units.service).
  settings = {
    inherit (cfg) mountPoint symlinkPath keepGenerations useTmpfs identityPaths;
    userMode = false;
    restartListPath = null;
    reloadListPath = null;
  };

  manifest = manifestLib.build {
    inherit settings templates;
    secrets = mainSecrets;
  };

  # Users do not exist yet when these are installed: owners are numeric,
  # and nothing is rendered. userborn sees a password file's path, not its
  # content (its restartTriggers): a changed value restarts it, so that it
  # sets the new password on the switch.
  passwordUnits = optional config.services.userborn.enable "userborn.service";
  manifestForUsers = manifestLib.build {
    settings = settings // {
      mountPoint = "${forUsersDir}.d";
      symlinkPath = forUsersDir;
    };
    secrets = map (s: s // { owner = "0"; group = "0"; restartUnits = lib.unique (s.restartUnits ++ passwordUnits); }) userSecrets;
  };

  hostKeyArgs = lib.optionalString (rules != null && forHost.sshKey != null) " --host-key ${lib.escapeShellArg forHost.sshKey}";

  # The build fails when the manifest is malformed or a file is unreadable
  # or not encrypted to this host's ssh key.
  manifestFile = name: data:
    if cfg.checkManifest then
      pkgs.runCommand name
        {
          manifest = builtins.toJSON data;
          passAsFile = [ "manifest" ];
        }
        ''
          ${cfg.package}/bin/nixseal check-manifest "$manifestPath"${hostKeyArgs}
          cp "$manifestPath" "$out"
        ''
    else
      pkgs.writeText name (builtins.toJSON data);

  userUnitsOn = config.services.userborn.enable || config.systemd.sysusers.enable;
  # Older nixpkgs have no system.nixos-init.
  nixosInit = options.system ? nixos-init && config.system.nixos-init.enable;
  noScriptsReason = lib.concatStringsSep ", " (
    optional config.services.userborn.enable "services.userborn.enable"
    ++ optional config.systemd.sysusers.enable "systemd.sysusers.enable"
    ++ optional nixosInit "system.nixos-init.enable"
    ++ optional config.system.etc.overlay.enable "system.etc.overlay.enable"
  );

  knownOwner = e: usersByName ? ${e.owner} || isId e.owner;
  knownGroup = e: groupsByName ? ${e.group} || isId e.group;
  ownershipProblems = kind: entries:
    concatMap
      (e:
        if knownOwner e && knownGroup e then
          [ ]
        else
          optional (!knownOwner e && disabledByName ? ${e.owner}) "${kind}.\"${e.name}\".owner: user \"${e.owner}\" is disabled (users.users.${e.owner}.enable = false), so no such user exists: enable it, or set a user that exists (or a decimal uid)"
          ++ optional (!knownOwner e && !(disabledByName ? ${e.owner})) "${kind}.\"${e.name}\".owner: user \"${e.owner}\" is not in users.users: declare it there, or set a user that exists (or a decimal uid)"
          ++ optional (!knownGroup e) "${kind}.\"${e.name}\".group: group \"${e.group}\" is not in users.groups: declare it there, or set a group that exists (or a decimal gid)")
      entries;

  isRoot = id: builtins.elem id [ "root" "0" ];
  forUsersProblems = concatMap
    (s: optional (!(isRoot s.owner && isRoot s.group)) "nixseal.secrets.\"${s.name}\".neededForUsers: secrets installed before users exist must be owned by root:root; set owner and group to \"root\" or neededForUsers = false")
    userSecrets;

  rulesFile = toString cfg.rules;
  ruleProblems = optionals (rules != null) (
    let
      fromRules = builtins.filter (s: s.file == rulesDir + "/${s.name}.age") (attrValues cfg.secrets);
      notGiven = s:
        if forHost.inRules s.name then
          "nixseal.secrets.\"${s.name}\": the rules file ${rulesFile} does not give secret \"${s.name}\" to host \"${cfg.hostName}\": add \"${cfg.hostName}\" to hosts of [secrets.\"${s.name}\"] and run nixseal rekey, or remove nixseal.secrets.\"${s.name}\""
        else
          "nixseal.secrets.\"${s.name}\": the rules file ${rulesFile} has no [secrets.\"${s.name}\"] for host \"${cfg.hostName}\": add it with hosts = [\"${cfg.hostName}\"] and create the file (nixseal edit ${s.name}), or remove nixseal.secrets.\"${s.name}\"";
    in
    optional (fromRules != [ ] && !forHost.known) "nixseal.hostName: host \"${cfg.hostName}\" is not in [hosts] of the rules file ${rulesFile}: add it (nixseal host add ${cfg.hostName}) or set nixseal.hostName to the host's name there"
    ++ concatMap (s: optional (!(forHost.given ? ${s.name})) (notGiven s)) fromRules
  );

  problems =
    manifestLib.entryProblems { secrets = attrValues cfg.secrets; inherit templates; known = manifest.placeholders; }
    ++ ownershipProblems "nixseal.secrets" mainSecrets
    ++ ownershipProblems "nixseal.templates" templates
    ++ forUsersProblems
    ++ ruleProblems;

  anySecrets = cfg.secrets != { } || cfg.templates != { };
in
{
  imports = [ ./activation.nix ];

  options.nixseal = {
    secrets = mkOption {
      type = types.attrsOf secretType;
      default = { };
      example = literalExpression ''
        {
          "grafana/admin-password" = {
            owner = "grafana";
            restartUnits = [ "grafana.service" ];
          };
        }
      '';
      description = ''
        Secrets to decrypt on this machine, by name. Each entry is an
        attribute set of the options below; they merge across modules
        (with `mkIf`, `mkMerge`, `mkDefault`, `mkForce`) as a submodule's
        do, but an entry cannot be a function (`{ name, config, ... }:
        { ... }`) or a module file: the build says so.
      '';
    };

    templates = mkOption {
      type = types.attrsOf templateType;
      default = { };
      description = ''
        Files rendered at activation from text holding placeholders of
        secrets (`config.nixseal.placeholder.<name>`), for configuration
        files that mix secret and public settings. Entries are attribute
        sets, as in `nixseal.secrets` (no functions).
      '';
    };

    hostName = mkOption {
      type = types.str;
      default = config.networking.hostName;
      defaultText = literalExpression "config.networking.hostName";
      description = "This machine's name in the `[hosts]` of the rules file.";
    };

    identityPaths = mkOption {
      type = types.listOf optionsLib.pathNotInStore;
      default =
        let
          keys = config.services.openssh.hostKeys;
          ofType = t: map (k: toString k.path) (builtins.filter (k: k.type == t) keys);
        in
        if config.services.openssh.enable then ofType "ed25519" ++ ofType "rsa" else [ ];
      defaultText = literalMD "the ed25519, then rsa, paths of `services.openssh.hostKeys` when `services.openssh.enable` is set, else none";
      example = [ "/var/lib/nixseal/key.txt" ];
      description = ''
        Private keys tried, in order, to decrypt secrets: OpenSSH ed25519 or
        rsa keys, or age identity files. They are read on the machine at
        activation, never copied into the store: a path into the store, or
        a Nix path such as `./key.txt` (which the build copies there), is
        refused.

        A key must exist when secrets are installed, early in boot: sshd
        creates missing host keys only when it first starts, later, so a
        new machine needs its key in place before its first boot. The
        install units wait for the file systems holding these paths
        (`RequiresMountsFor`), so keys on a separately mounted persistent
        file system work. One limitation: where the activation script
        creates users (neither `services.userborn` nor
        `systemd.sysusers`), `neededForUsers` secrets are installed
        before /etc is populated, so at first boot a key placed by
        `environment.etc` is not there yet (the build warns when no other
        key is listed).
      '';
    };

    useTmpfs = mkOption {
      type = types.bool;
      default = false;
      description = ''
        Mount a tmpfs instead of a ramfs on `mountPoint`. A ramfs is never
        swapped out; a tmpfs may be, but has a size limit.
      '';
    };

    activation = mkOption {
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

    checkManifest = mkOption {
      type = types.bool;
      default = true;
      description = ''
        Run `nixseal check-manifest` when building the manifest: fails the
        build when a secret's file is missing, is not an age file, or (when
        the rules give this host an ssh key) is not encrypted to this host.
        Turn off when secrets' files are strings naming files outside the
        store, which the build cannot read.
      '';
    };

    manifest = mkOption {
      type = types.attrsOf types.anything;
      readOnly = true;
      default = manifest;
      defaultText = literalMD "built from the options above";
      description = "The manifest handed to `nixseal install`, as data (its file is `system.build.nixsealManifest`).";
    };

    manifestForUsers = mkOption {
      type = types.attrsOf types.anything;
      readOnly = true;
      default = manifestForUsers;
      defaultText = literalMD "built from the `neededForUsers` secrets";
      description = "The manifest of the `neededForUsers` secrets (file: `system.build.nixsealManifestForUsers`).";
    };
  } // optionsLib.commonSettings {
    mountPointDefault = "/run/secrets.d";
    symlinkPathDefault = "/run/secrets";
  } // optionsLib.moduleOptions {
    inherit pkgs;
    inherit (cfg) secrets;
    subject = "host";
    nameOption = "nixseal.hostName";
    rulesNames = if rules == null then [ ] else forHost.names;
    flakeOutput = "nixosModules.nixseal";
  };

  config = lib.mkMerge [
    {
      nixseal.secrets = mkIf cfg.declareRulesSecrets (lib.genAttrs cfg.rulesSecrets (_: { }));
    }
    (mkIf anySecrets {
      warnings = map
        (s: "nixseal.secrets.\"${s.name}\".neededForUsers: with systemd.sysusers.enable, systemd-sysusers sets a password only when it creates a user, so a changed value of this secret reaches no existing user until it is created again; set services.userborn.enable instead to have a new password applied on the switch")
        (lib.optionals config.systemd.sysusers.enable userSecrets)
      ++ lib.optional (scriptMode && noScriptsReason == "") "nixseal.activation = \"script\": activation scripts are on their way out of NixOS; nixseal.activation = \"systemd\" (the default) installs secrets from a unit instead";

      assertions = map (message: { assertion = false; inherit message; }) problems ++ [
        {
          assertion = cfg.identityPaths != [ ];
          message = "nixseal.identityPaths is empty: enable services.openssh (its host keys are the default) or list key files in nixseal.identityPaths";
        }
        {
          assertion = !(scriptMode && noScriptsReason != "");
          message = "nixseal.activation = \"script\" cannot work with ${noScriptsReason} (no activation scripts for users): set nixseal.activation = \"systemd\"";
        }
        {
          assertion = !(userSecrets != [ ] && !userUnitsOn && nixosInit);
          message = "nixseal.secrets.<name>.neededForUsers (set for ${lib.concatMapStringsSep ", " (s: "\"${s.name}\"") userSecrets}) needs services.userborn.enable or systemd.sysusers.enable with system.nixos-init.enable (which runs no activation scripts): enable one of them, or set neededForUsers = false";
        }
        {
          assertion = cfg.mountPoint != cfg.symlinkPath && lib.hasPrefix "/" cfg.mountPoint && lib.hasPrefix "/" cfg.symlinkPath;
          message = "nixseal.mountPoint and nixseal.symlinkPath must be two different absolute paths";
        }
      ];
    })
    {
      # Always defined (empty manifests included) so that tools may read
      # them without checking first whether the host has secrets.
      system.build = {
        nixsealManifest = manifestFile "nixseal-manifest.json" manifest;
        nixsealManifestForUsers = manifestFile "nixseal-manifest-for-users.json" manifestForUsers;
      };
    }
  ];
}
