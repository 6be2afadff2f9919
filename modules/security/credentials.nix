# Secrets handed to services as systemd credentials: `credentialFor` adds
# `LoadCredential=` (or, with `sealCredential`, `LoadCredentialEncrypted=`)
# to the units listed, so that a service, `DynamicUser=` ones too, reads
# `$CREDENTIALS_DIRECTORY/<credentialName>` without owner settings. systemd
# copies a credential when the unit starts, so the manifest adds these units
# to the secret's restartUnits (../lib/manifest.nix). A sealed secret is
# stored by the helper as `systemd-creds encrypt` output, which only the
# host key (and TPM2, where present) opens.
{ config, options, lib, ... }:
let
  inherit (lib) mkOption types literalMD attrValues concatMap optional filter any;

  cfg = config.nixseal;
  optionsLib = import ../lib/options.nix { inherit lib; };
  install = import ../lib/install.nix { inherit lib; };

  # systemd's credential names are file names; a `:` would end the id in
  # `LoadCredential=ID:PATH`.
  credentialNameType = types.strMatching "([A-Za-z0-9_-]|[.][A-Za-z0-9_-]|[.][.][A-Za-z0-9._-])[A-Za-z0-9._-]*";

  credentialFields = { config, ... }: {
    options = {
      credentialFor = mkOption {
        type = types.listOf optionsLib.unitNameType;
        default = [ ];
        example = [ "grafana.service" ];
        description = ''
          Services (`.service` units of `systemd.services`) given this
          secret as a systemd credential (`LoadCredential=`): the service
          reads it as `$CREDENTIALS_DIRECTORY/<credentialName>`, whatever
          its user (`DynamicUser=` too), so no `owner` is needed. systemd
          copies credentials when a unit starts: these units are restarted
          when the value changes, as if listed in `restartUnits`.
        '';
      };
      credentialName = mkOption {
        type = credentialNameType;
        default = builtins.replaceStrings [ "/" ] [ "-" ] config.name;
        defaultText = literalMD "the secret's `name`, each `/` replaced by `-`";
        example = "admin-password";
        description = "The credential's id, the file name under `$CREDENTIALS_DIRECTORY`.";
      };
      sealCredential = mkOption {
        type = types.bool;
        default = false;
        description = ''
          Store the secret, as installed, encrypted by `systemd-creds
          encrypt` (with the host key, `/var/lib/systemd/credential.secret`,
          and a TPM2 chip where present), and hand it to the `credentialFor`
          services with `LoadCredentialEncrypted=`: no plaintext copy stays
          in the secrets directory between service starts. Only systemd
          reads the file then; it is useless to a program that reads the
          secret's `path`.
        '';
      };
    };
  };

  secrets = attrValues cfg.secrets;
  handed = filter (s: s.credentialFor != [ ]) secrets;
  sealedMain = any (s: s.sealCredential && !s.neededForUsers) secrets;

  # Definitions of systemd.services from other modules than this one: a
  # unit named in credentialFor must be one of them (this module's own
  # definitions would otherwise make any name look declared).
  declaredElsewhere = install.servicesDefinedOutside options ./credentials.nix;

  option = s: "nixseal.secrets.\"${s.name}\"";
  unitProblems = s: concatMap (unit:
    let service = lib.removeSuffix ".service" unit; in
    if !(lib.hasSuffix ".service" unit) then
      [ "${option s}.credentialFor: \"${unit}\" is not a .service unit (only services load credentials): list the service that reads the secret" ]
    else if !(declaredElsewhere ? ${service}) then
      [ "${option s}.credentialFor: \"${unit}\" is not defined in systemd.services: enable or declare the service, or remove it from the list" ]
    else
      [ ]) s.credentialFor;

  # One id per unit: two secrets giving the same id to one unit would
  # overwrite each other in its credentials directory.
  byUnitAndId = lib.groupBy (x: "${x.unit}\n${x.s.credentialName}") (
    concatMap (s: map (unit: { inherit unit s; }) s.credentialFor) handed
  );
  clashes = filter (xs: builtins.length xs > 1) (attrValues byUnitAndId);
  clashProblem = xs:
    let first = builtins.head xs; in
    "${lib.concatMapStringsSep " and " (x: "${option x.s}.credentialName") xs}: both give \"${first.unit}\" the credential \"${first.s.credentialName}\": set a different credentialName on one of them";

  forUsersProblems = concatMap (s:
    optional s.sealCredential "${option s}.sealCredential: a neededForUsers secret cannot be sealed (users.users.<name>.hashedPasswordFile reads the file itself, and it is installed before users exist): set sealCredential = false, or neededForUsers = false"
  ) (filter (s: s.neededForUsers) secrets);

  # LoadCredential= lines by service name; a list, so that several secrets
  # (and the service's own settings) add one line each.
  line = s: "${s.credentialName}:${s.path}";
  units = lib.foldl' (acc: s:
    let key = if s.sealCredential then "LoadCredentialEncrypted" else "LoadCredential"; in
    lib.foldl' (acc: unit:
      let service = lib.removeSuffix ".service" unit; in
      acc // { ${service} = (acc.${service} or { }) // { ${key} = ((acc.${service} or { }).${key} or [ ]) ++ [ (line s) ]; }; }
    ) acc (filter (lib.hasSuffix ".service") s.credentialFor)
  ) { } handed;

  # The install snippet (script mode) runs before systemd starts, with
  # the file systems of the initrd only.
  varLib = "/var/lib/systemd";
  varLibFs = install.fileSystemOf config varLib;
in
{
  options.nixseal.secrets = mkOption {
    type = types.attrsOf (optionsLib.entryType credentialFields);
  };

  config = lib.mkIf (handed != [ ] || any (s: s.sealCredential) secrets) {
    systemd.services = lib.mapAttrs (_: serviceConfig: { inherit serviceConfig; }) units;

    assertions = map (message: { assertion = false; inherit message; }) (
      concatMap unitProblems handed ++ map clashProblem clashes ++ forUsersProblems
    ) ++ [
      {
        assertion = !(sealedMain && cfg.activation == "script" && !install.inInitrd config varLibFs);
        message = "nixseal.secrets.<name>.sealCredential needs ${varLib} (the host key of systemd-creds) when the activation script installs secrets, but it is on fileSystems.\"${varLibFs}\", mounted later: set fileSystems.\"${varLibFs}\".neededForBoot = true, or nixseal.activation = \"systemd\"";
      }
    ];
  };
}
