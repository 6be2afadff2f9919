# Who owns each installed file. macOS's accounts live in its directory
# service, most of them (`_www`, the admin's own) never declared in
# nix-darwin's users.users, so names are not checked at build time: the
# helper resolves them when it installs (an unknown name fails that entry
# alone, naming it). The group defaults to the owner's primary group, as
# the system knows it then.
{ lib, ... }:
let
  inherit (lib) mkOption types;
  optionsLib = import ../lib/options.nix { inherit lib; };

  ownerFields = kind: { ... }: {
    options = {
      owner = mkOption {
        type = types.str;
        default = "root";
        description = "Owner of the ${kind.file}: a macOS user name (`users.users`, or any account the system has), or a decimal uid.";
      };
      group = mkOption {
        type = types.nullOr types.str;
        default = null;
        description = "Group of the ${kind.file}: a group name or a decimal gid; `null`, the owner's primary group (`staff`, gid 20, for most users).";
      };
    };
  };
  entries = kind: mkOption { type = types.attrsOf (optionsLib.entryType (ownerFields kind)); };
in
{
  options.nixseal = {
    secrets = entries optionsLib.secret;
    templates = entries optionsLib.template;
  };
}
