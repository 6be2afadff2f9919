# nixseal: age-encrypted secrets, declared here, installed at activation by
# `nixseal install`. This file holds what every secret has and the host's
# main manifest; each feature is a file of its own, with its options and
# their config.
{ config, lib, pkgs, ... }:
let
  inherit (lib) mkOption mkIf types literalExpression literalMD attrValues partition;

  cfg = config.nixseal;
  manifestLib = import ../lib/manifest.nix { inherit lib; };
  optionsLib = import ../lib/options.nix { inherit lib; };
  rulesLib = import ../lib/rules.nix { inherit lib; };

  # neededForUsers secrets (./for-users.nix) have a manifest of their own.
  split = partition (s: s.neededForUsers) (attrValues cfg.secrets);
  templates = attrValues cfg.templates;

  manifest = manifestLib.build {
    settings = {
      inherit (cfg) mountPoint symlinkPath keepGenerations useTmpfs identityPaths;
      userMode = false;
      platform = "linux";
      systemdCreds = "${config.systemd.package}/bin/systemd-creds";
    };
    secrets = split.wrong;
    inherit templates;
    restarts = cfg.inferredRestartUnits;
  };

  # Parsed once, here, and handed to ./rules.nix: a rules file of a
  # thousand secrets takes a tenth of a second to parse.
  rules = rulesLib.of cfg.rules;
  check = if cfg.checkManifest then {
    inherit (cfg) package;
    hostKey = if rules == null then null else (rulesLib.forHost rules cfg.hostName).sshKey;
  } else null;
  manifestFile = name: manifest: manifestLib.toFile { inherit pkgs name manifest check; };
in
{
  imports = [
    ./templates.nix
    ./ownership.nix
    ./credentials.nix
    (lib.modules.importApply ./rules.nix { inherit rules; })
    (lib.modules.importApply ./public.nix { inherit rules; })
    ./activation.nix
    ./for-users.nix
    ./restarts.nix
    ./readiness.nix
  ];

  options.nixseal = {
    secrets = mkOption {
      type = types.attrsOf (optionsLib.entryType (optionsLib.secretFields {
        inherit (cfg) rules;
        rulesData = rules;
        pathPrefix = s: if s.neededForUsers then manifestLib.forUsersDir else cfg.symlinkPath;
        pathPrefixText = "\${if neededForUsers then \"${manifestLib.forUsersDir}\" else config.nixseal.symlinkPath}";
      }));
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

    manifest = optionsLib.manifestOption {
      value = manifest;
      description = "The manifest handed to `nixseal install`, as data (its file is `system.build.nixsealManifest`).";
    };

    package = optionsLib.packageOption { inherit pkgs; flakeOutput = "nixosModules.nixseal"; };
  } // optionsLib.settingsOptions {
    mountPointDefault = "/run/secrets.d";
    symlinkPathDefault = "/run/secrets";
  };

  config = lib.mkMerge [
    (mkIf (cfg.secrets != { } || cfg.templates != { }) {
      assertions = map (message: { assertion = false; inherit message; }) (
        manifestLib.entryProblems { secrets = attrValues cfg.secrets; inherit templates; known = manifest.placeholders; }
      ) ++ [
        {
          assertion = cfg.identityPaths != [ ];
          message = "nixseal.identityPaths is empty: enable services.openssh (its host keys are the default) or list key files in nixseal.identityPaths";
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
        nixsealManifestForUsers = manifestFile "nixseal-manifest-for-users.json" cfg.manifestForUsers;
      };
    }
  ];
}
