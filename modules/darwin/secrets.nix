# nixseal on nix-darwin: the same secrets and templates as the NixOS
# module (../lib: their fields, the manifest, its checks), installed by
# `nixseal install` into a RAM disk at boot (a launchd daemon) and when
# `darwin-rebuild switch` activates (./activation.nix). What macOS has no
# counterpart for is not declared here: neededForUsers (nix-darwin sets
# no passwords from files), systemd credentials, the readiness target,
# restarts inferred from systemd units, userborn and sysusers, useTmpfs.
{ config, lib, pkgs, ... }:
let
  inherit (lib) mkOption mkIf types literalExpression literalMD attrValues;

  cfg = config.nixseal;
  manifestLib = import ../lib/manifest.nix { inherit lib; };
  optionsLib = import ../lib/options.nix { inherit lib; };
  rulesLib = import ../lib/rules.nix { inherit lib; };

  secrets = attrValues cfg.secrets;
  templates = attrValues cfg.templates;

  manifest = manifestLib.build {
    settings = {
      inherit (cfg) mountPoint symlinkPath keepGenerations identityPaths;
      useTmpfs = false;
      userMode = false;
      platform = "darwin";
    };
    inherit secrets templates;
  };

  rules = rulesLib.of cfg.rules;
  check = if cfg.checkManifest then {
    inherit (cfg) package;
    hostKey = if rules == null then null else (rulesLib.forHost rules cfg.hostName).sshKey;
  } else null;
in
{
  imports = [
    ./templates.nix
    ./ownership.nix
    # The NixOS module's own: it reads only nixseal's options.
    (lib.modules.importApply ../security/rules.nix { inherit rules; })
    ./activation.nix
  ];

  options.nixseal = {
    secrets = mkOption {
      type = types.attrsOf (optionsLib.entryType (optionsLib.secretFields {
        inherit (cfg) rules;
        pathPrefix = _: cfg.symlinkPath;
        pathPrefixText = "\${config.nixseal.symlinkPath}";
        services = optionsLib.launchdServices;
      }));
      default = { };
      example = literalExpression ''
        {
          "grafana/admin-password" = {
            owner = "_grafana";
            restartUnits = [ "org.nixos.grafana" ];
          };
        }
      '';
      description = ''
        Secrets to decrypt on this Mac, by name. Each entry is an attribute
        set of the options below, merged across modules as a submodule's
        are, but never a function or a module file.
      '';
    };

    hostName = mkOption {
      type = types.str;
      default = if config.networking.hostName == null then "" else config.networking.hostName;
      defaultText = literalMD "`config.networking.hostName`, or `\"\"` when that is null";
      description = "This machine's name in the `[hosts]` of the rules file.";
    };

    identityPaths = mkOption {
      type = types.listOf optionsLib.pathNotInStore;
      # macOS's own sshd keeps its host keys there (Remote Login).
      default = [ "/etc/ssh/ssh_host_ed25519_key" "/etc/ssh/ssh_host_rsa_key" ];
      example = [ "/var/lib/nixseal/key.txt" ];
      description = ''
        Private keys tried, in order, to decrypt secrets: OpenSSH ed25519 or
        rsa keys, or age identity files, read on the machine when secrets
        are installed, never copied into the store (a Nix path or a path
        into the store is refused). macOS makes its ssh host keys when
        Remote Login is first turned on; a key that is missing makes the
        secrets encrypted only to it fail until it exists.
      '';
    };

    checkManifest = mkOption {
      type = types.bool;
      default = true;
      description = ''
        Run `nixseal check-manifest` when building the manifest: fails the
        build when a secret's file is missing, is not an age file, or (when
        the rules give this host an ssh key) is not encrypted to this host.
      '';
    };

    manifest = optionsLib.manifestOption {
      value = manifest;
      description = "The manifest handed to `nixseal install`, as data (its file is `system.build.nixsealManifest`).";
    };

    package = optionsLib.packageOption { inherit pkgs; flakeOutput = "darwinModules.nixseal"; };
  } // optionsLib.settingsOptions {
    mountPointDefault = "/run/secrets.d";
    symlinkPathDefault = "/run/secrets";
  };

  config = lib.mkMerge [
    (mkIf (cfg.secrets != { } || cfg.templates != { }) {
      assertions = map (message: { assertion = false; inherit message; }) (
        manifestLib.entryProblems { inherit secrets templates; known = manifest.placeholders; }
      ) ++ [
        {
          assertion = cfg.identityPaths != [ ];
          message = "nixseal.identityPaths is empty: list key files there (the default is macOS's ssh host keys)";
        }
        {
          assertion = cfg.mountPoint != cfg.symlinkPath && lib.hasPrefix "/" cfg.mountPoint && lib.hasPrefix "/" cfg.symlinkPath;
          message = "nixseal.mountPoint and nixseal.symlinkPath must be two different absolute paths";
        }
        {
          assertion = cfg.rules == null || cfg.hostName != "";
          message = "nixseal.hostName is empty: set networking.hostName, or nixseal.hostName to this Mac's name in the rules file";
        }
      ];
    })
    {
      system.build.nixsealManifest = manifestLib.toFile { inherit pkgs manifest check; name = "nixseal-manifest.json"; };
    }
  ];
}
