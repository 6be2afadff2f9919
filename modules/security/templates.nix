# Templates: files rendered at activation from text holding placeholders of
# secrets, for configuration files that mix secret and public settings.
# They go into the main manifest (./secrets.nix), which also checks their
# placeholders; their owners are in ./ownership.nix.
{ config, lib, ... }:
let
  cfg = config.nixseal;
  optionsLib = import ../lib/options.nix { inherit lib; };
in
{
  options.nixseal = {
    templates = lib.mkOption {
      type = lib.types.attrsOf (optionsLib.entryType (optionsLib.templateFields { inherit (cfg) symlinkPath; }));
      default = { };
      description = ''
        Files rendered at activation from text holding placeholders of
        secrets (`config.nixseal.placeholder.<name>`), for configuration
        files that mix secret and public settings. Entries are attribute
        sets, as in `nixseal.secrets` (no functions).
      '';
    };

    placeholder = optionsLib.placeholderOption cfg.secrets;
    placeholders = optionsLib.placeholdersOption cfg.secrets;
  };
}
