# Restarts nobody forgets: a service whose configuration names a secret's
# or a template's path is restarted when that value changes, whether or
# not `restartUnits` lists it. Found at evaluation, once per service, by
# cutting the service's strings into path-like words and looking each up
# among the entries' paths (one attribute-set lookup per word, never a scan
# of all secrets per service: a host may have thousands of both).
#
# Secrets needed to create users are left out: their manifest decides
# whether nixseal-restart-units.service exists, and so which services
# there are, which this reads: it would recurse. They are passwords, read
# by whatever creates users (./for-users.nix restarts userborn).
{ config, lib, ... }:
let
  inherit (lib) mkOption types literalMD attrValues attrNames concatMap filter isList isString head;
  cfg = config.nixseal;
  optionsLib = import ../lib/options.nix { inherit lib; };
  manifestLib = import ../lib/manifest.nix { inherit lib; };

  field = kind: _: {
    options.inferRestarts = mkOption {
      type = types.bool;
      default = true;
      description = ''
        Also restart, when this ${kind.what} changes, every service whose
        configuration names its path (`nixseal.inferredRestartUnits` lists
        them). Set to false to signal only `restartUnits` and
        `reloadUnits`.
      '';
    };
  };
  entries = kind: mkOption { type = types.attrsOf (optionsLib.entryType (field kind)); };

  # A run of the characters of secrets' names and of usual paths, starting
  # at a "/": `EnvironmentFile=-/run/secrets/x`, `id:/run/secrets/x` and
  # `$(cat /run/secrets/x)` all give `/run/secrets/x`.
  words = text: map head (filter isList (builtins.split "(/[A-Za-z0-9._+@%/-]+)" text));

  # Packages, Nix paths, numbers and booleans cannot name a path at run time.
  stringsOf = v: if isString v then [ v ] else if isList v then concatMap stringsOf v else [ ];
  textOf = s:
    lib.concatStringsSep "\n" (
      [ s.script s.preStart s.postStart s.reload s.preStop s.postStop ]
      ++ concatMap stringsOf (attrValues s.environment)
      ++ concatMap stringsOf (attrValues s.serviceConfig)
      ++ concatMap stringsOf (attrValues s.unitConfig)
    );

  # Where an entry is found: its path and, when that is a symlink
  # elsewhere, the file in the secrets directory it points at.
  secretKeys = map (s: { key = "secrets"; inherit (s) name; paths = [ s.path "${cfg.symlinkPath}/${s.name}" ]; }) (
    filter (s: s.inferRestarts && !s.neededForUsers) (attrValues cfg.secrets)
  );
  templateKeys = map (t: { key = "templates"; inherit (t) name; paths = [ t.path "${cfg.symlinkPath}/${manifestLib.renderedDir}/${t.name}" ]; }) (
    filter (t: t.inferRestarts) (attrValues cfg.templates)
  );
  byPath = lib.listToAttrs (concatMap (e: map (p: lib.nameValuePair p e) e.paths) (secretKeys ++ templateKeys));

  # nixseal's own units name the manifests, which hold what this computes.
  # A unit that is never restarted on a switch is not restarted here either.
  services = lib.filterAttrs (n: s: !lib.hasPrefix "nixseal-" n && s.enable && s.restartIfChanged) config.systemd.services;
  hits = concatMap
    (n: map (p: { entry = byPath.${p}; unit = "${n}.service"; }) (filter (p: byPath ? ${p}) (words (textOf services.${n}))))
    (attrNames services);
  inferred =
    if !cfg.inferRestarts || byPath == { } then
      { secrets = { }; templates = { }; }
    else
      let byKey = lib.groupBy (h: h.entry.key) hits; in
      lib.genAttrs [ "secrets" "templates" ] (k:
        lib.mapAttrs (_: hs: lib.unique (map (h: h.unit) hs)) (lib.groupBy (h: h.entry.name) (byKey.${k} or [ ])));
in
{
  options.nixseal = {
    secrets = entries optionsLib.secret;
    templates = entries optionsLib.template;

    inferRestarts = mkOption {
      type = types.bool;
      default = true;
      description = ''
        Restart, when a secret or template changes, the services whose
        configuration names its path (their `script`, `preStart`,
        `postStart`, `reload`, `preStop`, `postStop`, `environment`,
        `serviceConfig` and `unitConfig` strings, such as `ExecStart=`,
        `EnvironmentFile=` or `LoadCredential=`), as if `restartUnits`
        listed them. A unit already in `reloadUnits` is reloaded
        instead; a service with `restartIfChanged = false` is left alone;
        `neededForUsers` secrets are not looked for. Text inside a package
        (a script written with `pkgs.writeShellScript`) is not seen: list
        such units in `restartUnits`. Turn off (or use
        `nixseal.secrets.<name>.inferRestarts`) if a service's definition
        reads nixseal's manifest, which would make evaluation recurse.
      '';
    };

    inferredRestartUnits = mkOption {
      type = types.attrsOf (types.attrsOf (types.listOf types.str));
      readOnly = true;
      default = inferred;
      defaultText = literalMD "the services found by `nixseal.inferRestarts`";
      example = { secrets."db/password" = [ "webapp.service" ]; templates = { }; };
      description = ''
        The services restarted because their configuration names an
        entry's path, by `secrets` and `templates` and then by name (the
        manifest's `restartUnits` include them).
      '';
    };
  };
}
