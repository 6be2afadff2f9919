# Readiness: `nixseal-secrets.target`, reached only when every secret and
# template of the generation installed, and `neededBy`, which keeps a
# service from starting while one entry has no value (AssertPathExists=)
# and lets everything else boot.
{ config, options, lib, ... }:
let
  inherit (lib) mkOption mkIf mkMerge types attrValues concatMap filter optional optionals;
  cfg = config.nixseal;
  optionsLib = import ../lib/options.nix { inherit lib; };
  install = import ../lib/install.nix { inherit lib; };

  field = kind: _: {
    options.neededBy = mkOption {
      type = types.listOf optionsLib.unitNameType;
      default = [ ];
      example = [ "grafana.service" ];
      description = ''
        Services that must not start while this ${kind.what} has no value:
        each gets `AssertPathExists=` of its path (and is ordered after the
        install), so that it fails to start, naming the path, while the rest
        of the system boots. A value kept from an earlier generation, after
        a failed install, counts as a value.
      '';
    };
  };
  entries = kind: mkOption { type = types.attrsOf (optionsLib.entryType (field kind)); };

  scriptMode = cfg.activation == "script";
  mainNeeded = cfg.manifest.secrets != [ ] || cfg.manifest.templates != [ ];
  forUsers = cfg.manifestForUsers.secrets != [ ];
  usersByUnit = install.userUnits config != [ ];

  # Who installs each manifest: a unit (its result is the unit's), or an
  # activation snippet, whose result the check unit finds again by a dry
  # run (the same files and keys: the same failures).
  mainUnit = optional (mainNeeded && !scriptMode) "nixseal-install.service";
  forUsersUnit = optional (forUsers && usersByUnit && !scriptMode) "nixseal-install-for-users.service";
  bySnippet =
    optional (mainNeeded && scriptMode) config.system.build.nixsealManifest
    ++ optional (forUsers && !(usersByUnit && !scriptMode)) config.system.build.nixsealManifestForUsers;
  readyUnits = mainUnit ++ forUsersUnit ++ optional (bySnippet != [ ]) "nixseal-secrets-check.service";

  withNeeds = filter (e: e.neededBy != [ ]) (
    map (s: s // { option = "nixseal.secrets"; after = if s.neededForUsers then forUsersUnit else mainUnit; }) (attrValues cfg.secrets)
    ++ map (t: t // { option = "nixseal.templates"; after = mainUnit; }) (attrValues cfg.templates)
  );
  needs = concatMap (e: map (unit: { inherit unit; inherit (e) name option path after; }) e.neededBy) withNeeds;
  serviceNeeds = filter (n: lib.hasSuffix ".service" n.unit) needs;

  # A service this module defines for AssertPathExists alone does not
  # exist: some other definition must name it.
  definedElsewhere = install.servicesDefinedOutside options ./readiness.nix;
  problems = concatMap
    (n:
      let base = lib.removeSuffix ".service" n.unit; in
      if !lib.hasSuffix ".service" n.unit then
        [ "${n.option}.\"${n.name}\".neededBy: \"${n.unit}\" is not a service: only services (systemd.services.<name>) can be kept from starting; list the service that needs it" ]
      else
        optional (!(definedElsewhere ? ${base})) "${n.option}.\"${n.name}\".neededBy: \"${n.unit}\" is not defined in systemd.services: fix the unit's name, or define systemd.services.${base}")
    needs;
in
{
  options.nixseal = {
    secrets = entries optionsLib.secret;
    templates = entries optionsLib.template;
  };

  config = mkMerge [
    (mkIf (readyUnits != [ ]) {
      systemd.targets.nixseal-secrets = {
        description = "nixseal secrets installed";
        # Pulled in at every boot, and by every (re)start of the units it
        # requires, so that a switch that repairs a failed install reaches
        # it again (a restart propagates only to an active target).
        wantedBy = [ "multi-user.target" ] ++ readyUnits;
        requires = readyUnits;
        after = readyUnits;
      };
    })

    (mkIf (bySnippet != [ ]) {
      systemd.services.nixseal-secrets-check = {
        description = "Check that the nixseal secrets installed by activation are complete";
        restartTriggers = bySnippet;
        serviceConfig = {
          Type = "oneshot";
          RemainAfterExit = true;
          ExecStart = map (m: "${install.command cfg.package m} --dry-run") bySnippet;
        };
      };
    })

    {
      # Merged, not listToAttrs: several entries may be needed by one unit.
      systemd.services = mkMerge (map
        (n: {
          ${lib.removeSuffix ".service" n.unit} = {
            unitConfig.AssertPathExists = [ n.path ];
            inherit (n) after;
          };
        })
        serviceNeeds);
      assertions = map (message: { assertion = false; inherit message; }) problems;
    }
  ];
}
