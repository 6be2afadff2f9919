# The rules file (`nixseal.rules`): which secrets it gives this host, and a
# build that fails, naming the secret and the fix, when a declared secret
# is not given to the host there (so not encrypted to its key). `rules`:
# the file as ./secrets.nix has parsed it (null without one).
{ rules }:
{ config, lib, ... }:
let
  cfg = config.nixseal;
  optionsLib = import ../lib/options.nix { inherit lib; };
  rulesLib = import ../lib/rules.nix { inherit lib; };

  host = cfg.hostName;
  forHost = rulesLib.forHost rules host;
  rulesFile = toString cfg.rules;

  problems = rulesLib.problems {
    rulesPath = cfg.rules;
    who = forHost;
    secrets = lib.attrValues cfg.secrets;
    unknown = "nixseal.hostName: host \"${host}\" is not in [hosts] of the rules file ${rulesFile}: add it (nixseal host add ${host}) or set nixseal.hostName to the host's name there";
    notGiven = s: "nixseal.secrets.\"${s.name}\": the rules file ${rulesFile} does not give secret \"${s.document}\" to host \"${host}\": add \"${host}\" to hosts of [secrets.\"${s.document}\"] and run nixseal rekey, or remove nixseal.secrets.\"${s.name}\"";
    notInRules = s: "nixseal.secrets.\"${s.name}\": the rules file ${rulesFile} has no [secrets.\"${s.document}\"] for host \"${host}\": add it with hosts = [\"${host}\"] and create the file (nixseal edit ${s.document}), or remove nixseal.secrets.\"${s.name}\"";
  };
in
{
  options.nixseal = optionsLib.rulesOptions {
    subject = "host";
    nameOption = "nixseal.hostName";
    rulesNames = if rules == null then [ ] else forHost.names;
  };

  config = {
    nixseal.secrets = lib.mkIf cfg.declareRulesSecrets (lib.genAttrs cfg.rulesSecrets (_: { }));
    assertions = map (message: { assertion = false; inherit message; }) problems;
  };
}
