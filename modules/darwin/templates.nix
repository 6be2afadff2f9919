# Templates, as in the NixOS module (../security/templates.nix), whose
# restartUnits name launchd jobs. They go into the main manifest
# (./secrets.nix), which checks their placeholders.
{ config, lib, ... }:
let
  cfg = config.nixseal;
  optionsLib = import ../lib/options.nix { inherit lib; };
in
{
  options.nixseal = {
    templates = lib.mkOption {
      type = lib.types.attrsOf (optionsLib.entryType (optionsLib.templateFields {
        inherit (cfg) symlinkPath;
        services = optionsLib.launchdServices;
      }));
      default = { };
      description = ''
        Files rendered when secrets are installed, from text holding
        placeholders of secrets (`config.nixseal.placeholder.<name>`).
        Entries are attribute sets, as in `nixseal.secrets` (no functions).
      '';
    };

    placeholder = optionsLib.placeholderOption cfg.secrets;
    placeholders = optionsLib.placeholdersOption cfg.secrets;
  };
}
