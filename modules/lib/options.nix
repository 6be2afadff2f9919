# Option declarations shared by the NixOS and the home-manager module, each
# written once: the fields of secrets and templates, the settings that go
# into every manifest, and the options about the rules file, placeholders
# and the package, worded for a host or a user.
{ lib }:
let
  inherit (import ./manifest.nix { inherit lib; }) placeholderFor placeholderFormats typedPlaceholderFor renderedDir documentFormats;
  inherit (lib) mkOption types literalExpression literalMD;
  names = import ./names.nix;
in
rec {
  # Secrets and templates: see ./record.nix for why not types.submodule.
  entryType = import ./record.nix { inherit lib; };

  unitNameType = types.strMatching names.unitName;

  launchdLabelType = types.strMatching names.launchdLabel // {
    description = "launchd label (a string of [A-Za-z0-9._@-], not starting with \".\", \"-\" or \"@\")";
  };

  # What restartUnits and reloadUnits name: systemd units (NixOS and
  # home-manager on Linux), or launchd jobs by label (nix-darwin, and
  # home-manager on macOS).
  systemdServices = {
    type = unitNameType;
    example = "nginx.service";
    what = "Units";
    restart = "restart";
    reload = "reload (or restart, when they cannot reload)";
  };
  launchdServices = {
    type = launchdLabelType;
    example = "org.nixos.nginx";
    what = "launchd jobs, by label,";
    restart = "restart (`launchctl kickstart -k`)";
    reload = "restart (launchd has no reload, so this is the same `launchctl kickstart -k`)";
  };

  modeType = types.strMatching "0?[0-7]{3}";

  # Private keys are read on the machine: a Nix path, or a path into the
  # store, would put the key into the world-readable store (as sops-nix's
  # pathNotInStore refuses too). Strings only, so a path literal fails.
  pathNotInStore = types.addCheck types.str (p: lib.hasPrefix "/" p && !lib.hasPrefix "${builtins.storeDir}/" p && builtins.getContext p == { }) // {
    name = "pathNotInStore";
    description = "absolute path outside the Nix store (a string, never a Nix path)";
  };

  # The two kinds of entry, as their options' descriptions name them.
  secret = { what = "secret"; file = "decrypted file"; };
  template = { what = "template"; file = "rendered file"; };

  # What every entry has, in every module: its mode and the services told
  # when it changes. `kind`: `secret` or `template`; `services`:
  # `systemdServices` or `launchdServices`.
  entryOptions = kind: services: {
    mode = mkOption {
      type = modeType;
      default = "0400";
      description = "Permissions of the ${kind.file}, in octal.";
    };
    restartUnits = mkOption {
      type = types.listOf services.type;
      default = [ ];
      example = [ services.example ];
      description = "${services.what} to ${services.restart} when this ${kind.what} changes (not on first install).";
    };
    reloadUnits = mkOption {
      type = types.listOf services.type;
      default = [ ];
      example = [ services.example ];
      description = "${services.what} to ${services.reload} when this ${kind.what} changes.";
    };
  };

  # A secret's fields for `entryType`. `rules`: the module's nixseal.rules,
  # which gives `file` its default. `pathPrefix entry`: the directory of
  # the default path; `pathPrefixText`, the same as users should read it;
  # `services`: what restartUnits name (`systemdServices` by default);
  # `rulesData`: the rules as parsed (null without them), which give
  # `format` its default.
  secretFields = { rules, rulesData ? null, pathPrefix, pathPrefixText, services ? systemdServices }: { name, config, ... }: {
    options = {
      name = mkOption {
        type = types.str;
        default = name;
        defaultText = literalExpression "<name>";
        description = ''
          Name of the secret in the rules file: a relative path of
          `[A-Za-z0-9._-]` segments joined by `/`.
        '';
      };
      file = mkOption {
        type = types.path;
        # Without a rules file there is no default: the option must be set.
        defaultText = literalMD "`<rules dir>/<document>.age` when `nixseal.rules` is set; no default otherwise";
        description = ''
          The age-encrypted file. A Nix path is copied into the store (it is
          encrypted, so that is safe); a string is used as given, for files
          already on the target machine.
        '';
      } // lib.optionalAttrs (rules != null) { default = dirOf rules + "/${config.document}.age"; };
      document = mkOption {
        type = types.str;
        default = config.name;
        defaultText = literalExpression "config.name";
        example = "app";
        description = ''
          The secret of the rules file whose age file holds this value: the
          rules' check that the secret is given here, and `file`'s default,
          use this name. Several entries may name one document and take a
          `key` each.
        '';
      };
      format = mkOption {
        type = types.enum documentFormats;
        default = if rulesData == null then "binary" else rulesData.secrets.${config.document}.format or "binary";
        defaultText = literalMD "the `format` of `[secrets.\"<document>\"]` in the rules file when `nixseal.rules` is set, else `binary`";
        description = ''
          What the age file holds: `binary`, the value itself, byte for
          byte; or a whole document of that format (`json`, `yaml`,
          `toml`, `dotenv` as systemd's `EnvironmentFile=` reads it, `ini`)
          of which `key` is taken.
        '';
      };
      key = mkOption {
        type = types.str;
        default = "";
        example = "db/password";
        description = ''
          The value's key in the document: segments joined by `/` (`\/`
          for a `/` inside a segment, `\\` for a backslash); a list's
          index is a decimal segment; an `ini` key is `section/option`, a
          `dotenv` key the variable's name. The value must be a string,
          number or boolean, installed as its text. `""`: the whole file,
          as it is (as sops-nix's `key = ""`).
        '';
      };
      path = mkOption {
        type = types.str;
        default = "${pathPrefix config}/${config.name}";
        defaultText = literalExpression ''"${pathPrefixText}/''${config.name}"'';
        description = ''
          Where the decrypted secret appears. Any other path than the default
          is a symlink to it.
        '';
      };
    } // entryOptions secret services;
  };

  # A template's fields for `entryType`; `symlinkPath`: the module's
  # nixseal.symlinkPath; `services` as for secretFields.
  templateFields = { symlinkPath, services ? systemdServices }: { name, config, ... }: {
    options = {
      name = mkOption {
        type = types.str;
        default = name;
        defaultText = literalExpression "<name>";
        description = "Name of the rendered file in the secrets directory.";
      };
      content = mkOption {
        type = types.nullOr types.lines;
        default = null;
        example = literalExpression ''
          '''
            password=''${config.nixseal.placeholder."db/password"}
          '''
        '';
        description = ''
          Text of the file, with `config.nixseal.placeholder.<secret>` where
          the secret's value goes as it is, or
          `config.nixseal.placeholders.<format>.<secret>` where it goes
          quoted for that format. Set this or `file`.
        '';
      };
      file = mkOption {
        type = types.nullOr types.path;
        default = null;
        description = ''
          A file holding the template text, read at evaluation time. Write
          placeholders in it as `<nixseal:NAME>` (the value as it is) or
          `<nixseal:FORMAT:NAME>` (quoted for FORMAT, one of
          ${lib.concatStringsSep ", " placeholderFormats}). Set this or `content`.
        '';
      };
      path = mkOption {
        type = types.str;
        default = "${symlinkPath}/${renderedDir}/${config.name}";
        defaultText = literalExpression ''"''${config.nixseal.symlinkPath}/${renderedDir}/''${config.name}"'';
        description = "Where the rendered file appears.";
      };
    } // entryOptions template services;
  };

  # Where a manifest's generations live, the same for both modules but for
  # their defaults.
  settingsOptions = { mountPointDefault, symlinkPathDefault }: {
    mountPoint = mkOption {
      type = types.str;
      default = mountPointDefault;
      description = ''
        Directory holding the generations of decrypted secrets (a ramfs or
        tmpfs mount for system secrets).
      '';
    };
    symlinkPath = mkOption {
      type = types.str;
      default = symlinkPathDefault;
      description = "Symlink to the current generation; secrets' default paths are below it.";
    };
    keepGenerations = mkOption {
      type = types.ints.unsigned;
      default = 1;
      description = ''
        How many previous generations to keep, so that a service still
        reading an old secret during a switch does not lose it. 0 keeps none.
      '';
    };
  };

  # The manifest a module builds, as data; `description` says who installs it.
  manifestOption = { value, description, defaultText ? literalMD "built from the options above" }: mkOption {
    type = types.attrsOf types.anything;
    readOnly = true;
    default = value;
    inherit defaultText description;
  };

  placeholderOption = secrets: mkOption {
    type = types.attrsOf types.str;
    readOnly = true;
    default = lib.mapAttrs (_: s: placeholderFor s.name) secrets;
    defaultText = literalMD "a placeholder string for every secret in `nixseal.secrets`";
    description = "Placeholder strings for templates, by secret name: replaced by the value as it is.";
  };

  placeholdersOption = secrets: mkOption {
    type = types.attrsOf (types.attrsOf types.str);
    readOnly = true;
    default = lib.genAttrs placeholderFormats (format: lib.mapAttrs (_: s: typedPlaceholderFor format s.name) secrets);
    defaultText = literalMD "for each format, a placeholder string for every secret in `nixseal.secrets`";
    description = ''
      Typed placeholder strings for templates, by format (${lib.concatMapStringsSep ", " (f: "`${f}`") placeholderFormats})
      and secret name: `<nixseal:FORMAT:NAME>`, replaced by the value
      written for that format, quotes included: a JSON string, a YAML or
      TOML double-quoted string, an INI value as it is, a double-quoted
      dotenv value (systemd's `EnvironmentFile=`), a POSIX shell
      single-quoted word. A value the format cannot hold (a NUL byte for
      JSON, a newline for INI...) fails the template, which keeps its
      previous content.
    '';
  };

  # `subject`: "host" or "user", named in the rules by the option
  # `nameOption`; `rulesNames`: the secrets the rules give it.
  rulesOptions = { subject, nameOption, rulesNames }: {
    rules = mkOption {
      type = types.nullOr types.path;
      default = null;
      example = literalExpression "./secrets/secrets.toml";
      description = ''
        The rules file (`secrets.toml`). When set, a secret's `file`
        defaults to `<rules dir>/<name>.age`, and the build fails, naming
        the secret, when a declared secret is not given to this ${subject}
        (`${nameOption}`) there.
      '';
    };
    rulesSecrets = mkOption {
      type = types.listOf types.str;
      readOnly = true;
      default = rulesNames;
      defaultText = literalMD "the secrets the rules file gives `${nameOption}`";
      description = "Names of the secrets the rules file gives this ${subject}.";
    };
    declareRulesSecrets = mkOption {
      type = types.bool;
      default = false;
      description = ''
        Declare every secret the rules file gives this ${subject}
        (`nixseal.rulesSecrets`) with default settings, so that a secret
        added to the rules reaches the ${subject} without a configuration
        change.
      '';
    };
  };

  # `flakeOutput`: the module output that sets it.
  packageOption = { pkgs, flakeOutput }: mkOption {
    type = types.package;
    default = pkgs.nixseal or (throw "nixseal: pkgs has no nixseal package: import the nixseal flake's ${flakeOutput} (which sets it), add its overlays.default to nixpkgs.overlays, or set nixseal.package");
    defaultText = literalExpression "pkgs.nixseal";
    description = ''
      The nixseal package whose helper installs the secrets. The units run its
      `libexec/nixseal-install` (the install with a lean start-up); the build's
      manifest check runs its `bin/nixseal`.
    '';
  };
}
