# Per-user secrets for home-manager: encrypted to the user's own key in the
# rules file, decrypted with the user's identity by a systemd user unit
# running `nixseal install` in user mode, into $XDG_RUNTIME_DIR (`%r`). On
# macOS a launchd agent runs it instead, and `%r` is the user's temporary
# directory (`getconf DARWIN_USER_TEMP_DIR`), which is on the disk: there
# the helper mounts a RAM disk of the user's own on the mount point and
# writes the plaintext only to it (docs/darwin.md). The entries' options,
# the manifest and its checks are the NixOS module's (../lib); owners are
# not: every file belongs to the user.
{ config, lib, pkgs, ... }:
let
  inherit (lib) mkOption mkIf types literalExpression literalMD attrValues optional;

  cfg = config.nixseal;
  manifestLib = import ../lib/manifest.nix { inherit lib; };
  rulesLib = import ../lib/rules.nix { inherit lib; };
  optionsLib = import ../lib/options.nix { inherit lib; };

  rules = rulesLib.of cfg.rules;
  user = cfg.userName;
  forUser = rulesLib.forUser rules user;
  rulesFile = toString cfg.rules;

  # User mode neither chowns nor resolves names: every file belongs to the
  # user running the unit (group null: the owner's primary group).
  owned = map (e: e // { owner = config.home.username; group = null; });
  secrets = owned (attrValues cfg.secrets);
  templates = owned (attrValues cfg.templates);

  manifest = manifestLib.build {
    settings = {
      inherit (cfg) mountPoint symlinkPath keepGenerations identityPaths;
      useTmpfs = false;
      userMode = true;
      platform = if isDarwin then "darwin" else "linux";
    };
    inherit secrets templates;
  };

  manifestFile = manifestLib.toFile { inherit pkgs manifest; name = "nixseal-manifest-${config.home.username}.json"; };

  problems =
    manifestLib.entryProblems { inherit secrets templates; known = manifest.placeholders; allowRuntimeDir = true; }
    ++ rulesLib.problems {
      rulesPath = cfg.rules;
      who = forUser;
      inherit secrets;
      unknown = "nixseal.userName: user \"${user}\" is not in [users] of the rules file ${rulesFile}: add [users.${user}] with the user's key, or set nixseal.userName to the user's name there";
      notGiven = s: "nixseal.secrets.\"${s.name}\": the rules file ${rulesFile} does not give secret \"${s.document}\" to user \"${user}\": add \"${user}\" to users of [secrets.\"${s.document}\"] and run nixseal rekey, or remove nixseal.secrets.\"${s.name}\"";
    };

  # systemd user units exist on Linux only; on macOS a launchd agent runs
  # the install.
  isLinux = pkgs.stdenv.hostPlatform.isLinux;
  isDarwin = pkgs.stdenv.hostPlatform.isDarwin;
  services = if isDarwin then optionsLib.launchdServices else optionsLib.systemdServices;
  systemctl = "${pkgs.systemd}/bin/systemctl";
  install = "${cfg.package}/libexec/nixseal-install --manifest ${manifestFile}";
in
{
  options.nixseal = {
    secrets = mkOption {
      type = types.attrsOf (optionsLib.entryType (optionsLib.secretFields {
        inherit (cfg) rules;
        rulesData = rules;
        pathPrefix = _: cfg.symlinkPath;
        pathPrefixText = "\${config.nixseal.symlinkPath}";
        inherit services;
      }));
      default = { };
      example = literalExpression ''{ "carol/github-token" = { }; }'';
      description = ''
        This user's secrets, by name. Entries are attribute sets of the
        options below, merged across modules as a submodule's are, but
        never functions (`{ name, config, ... }: { ... }`) or module files.
      '';
    };
    templates = mkOption {
      type = types.attrsOf (optionsLib.entryType (optionsLib.templateFields { inherit (cfg) symlinkPath; inherit services; }));
      default = { };
      description = "Files rendered from text holding placeholders of this user's secrets.";
    };
    placeholder = optionsLib.placeholderOption cfg.secrets;
    placeholders = optionsLib.placeholdersOption cfg.secrets;
    userName = mkOption {
      type = types.str;
      default = config.home.username;
      defaultText = literalExpression "config.home.username";
      description = "This user's name in the `[users]` of the rules file.";
    };
    identityPaths = mkOption {
      type = types.listOf optionsLib.pathNotInStore;
      default = [ "${config.home.homeDirectory}/.ssh/id_ed25519" ];
      defaultText = literalExpression ''[ "''${config.home.homeDirectory}/.ssh/id_ed25519" ]'';
      description = "The user's private keys (OpenSSH ed25519/rsa or age identity files), tried in order.";
    };
    manifest = optionsLib.manifestOption {
      value = manifest;
      description = "The manifest handed to `nixseal install` by the user unit, as data.";
    };
    manifestFile = mkOption {
      type = types.package;
      readOnly = true;
      default = manifestFile;
      defaultText = literalMD "the manifest as a JSON file in the store";
      description = "The manifest file the user unit installs from.";
    };
    package = optionsLib.packageOption { inherit pkgs; flakeOutput = "homeManagerModules.nixseal"; };
  } // optionsLib.settingsOptions {
    mountPointDefault = "%r/secrets.d";
    symlinkPathDefault = "%r/secrets";
  } // optionsLib.rulesOptions {
    subject = "user";
    nameOption = "nixseal.userName";
    rulesNames = if rules == null then [ ] else forUser.names;
  };

  config = lib.mkMerge [
    {
      nixseal.secrets = mkIf cfg.declareRulesSecrets (lib.genAttrs cfg.rulesSecrets (_: { }));
    }
    (mkIf (cfg.secrets != { } || cfg.templates != { }) {
      assertions = map (message: { assertion = false; inherit message; }) problems ++ [
        {
          assertion = cfg.identityPaths != [ ];
          message = "nixseal.identityPaths is empty: list the user's key files there";
        }
      ];

      warnings = optional (!isLinux && !isDarwin) "nixseal: the home-manager module installs secrets with a systemd user unit (a launchd agent on macOS), and ${pkgs.stdenv.hostPlatform.system} has neither: the secrets in nixseal.secrets (${lib.concatMapStringsSep ", " (s: s.name) secrets}) are not installed; declare them on Linux or macOS only";
    })
    (mkIf ((cfg.secrets != { } || cfg.templates != { }) && isLinux) {
      # It runs at every login. A new manifest changes ExecStart; whether
      # home-manager restarts changed units depends on
      # systemd.user.startServices, so the activation restarts it itself
      # (after home-manager's daemon-reload), when the user's systemd runs.
      home.activation.nixseal = {
        after = [ "reloadSystemd" ];
        before = [ ];
        data = ''
          if [ -S "''${XDG_RUNTIME_DIR:-/run/user/$(id -u)}/systemd/private" ]; then
            run ${systemctl} --user restart nixseal.service
          fi
        '';
      };
      systemd.user.services.nixseal = {
        Unit = {
          Description = "Install nixseal secrets of ${config.home.username}";
          X-Restart-Triggers = [ "${manifestFile}" ];
        };
        Service = {
          Type = "oneshot";
          RemainAfterExit = true;
          ExecStart = install;
        };
        Install.WantedBy = [ "default.target" ];
      };
    })
    (mkIf ((cfg.secrets != { } || cfg.templates != { }) && isDarwin) {
      # Run at login (RunAtLoad). A new manifest changes the agent's
      # arguments, and home-manager's activation boots a changed agent out
      # and in again, which runs it. launchd gives an agent no runtime
      # directory: `%r` is the user's temporary directory, asked of the
      # system each run (it differs between users and machines). It only
      # holds the mount point, the lock and symlinks: the user-mode darwin
      # manifest makes the helper mount a RAM disk of the user's there.
      launchd.agents.nixseal = {
        enable = true;
        config = {
          ProgramArguments = [
            "/bin/sh"
            "-c"
            "XDG_RUNTIME_DIR=\"$(/usr/bin/getconf DARWIN_USER_TEMP_DIR)\" exec ${install}"
          ];
          RunAtLoad = true;
        };
      };
    })
  ];
}
