# Who owns each installed file: the owner and group of secrets and
# templates, declared once for both and checked against users.users and
# users.groups, so that a typo fails the build rather than that one file at
# activation. (In the home-manager module every file is the user's.)
{ config, lib, ... }:
let
  inherit (lib) mkOption types literalMD attrValues listToAttrs nameValuePair concatMap optional;

  cfg = config.nixseal;
  optionsLib = import ../lib/options.nix { inherit lib; };

  # Looked up by login name (users.users.<attr>.name), built once. A user
  # with enable = false is created by nothing (userborn and sysusers skip
  # it too), so it owns nothing.
  enabledUsers = lib.partition (u: u.enable) (attrValues config.users.users);
  usersByName = listToAttrs (map (u: nameValuePair u.name u) enabledUsers.right);
  disabledByName = listToAttrs (map (u: nameValuePair u.name true) enabledUsers.wrong);
  groupsByName = listToAttrs (map (g: nameValuePair g.name true) (attrValues config.users.groups));
  isId = s: builtins.match "[0-9]+" s != null;

  # `kind`: optionsLib.secret or optionsLib.template.
  ownerFields = kind: { config, ... }: {
    options = {
      owner = mkOption {
        type = types.str;
        default = "root";
        description = "Owner of the ${kind.file}: a user name from `users.users`, or a decimal uid.";
      };
      group = mkOption {
        type = types.str;
        default = usersByName.${config.owner}.group or "root";
        defaultText = literalMD "the owner's primary group (`users.users.<owner>.group`), or `root` when the owner is a uid";
        description = "Group of the ${kind.file}: a group name from `users.groups`, or a decimal gid.";
      };
    };
  };
  entries = kind: mkOption { type = types.attrsOf (optionsLib.entryType (ownerFields kind)); };

  knownOwner = e: usersByName ? ${e.owner} || isId e.owner;
  knownGroup = e: groupsByName ? ${e.group} || isId e.group;
  problems = option: concatMap (e:
    if knownOwner e && knownGroup e then
      [ ]
    else
      optional (!knownOwner e && disabledByName ? ${e.owner}) "${option}.\"${e.name}\".owner: user \"${e.owner}\" is disabled (users.users.${e.owner}.enable = false), so no such user exists: enable it, or set a user that exists (or a decimal uid)"
      ++ optional (!knownOwner e && !(disabledByName ? ${e.owner})) "${option}.\"${e.name}\".owner: user \"${e.owner}\" is not in users.users: declare it there, or set a user that exists (or a decimal uid)"
      ++ optional (!knownGroup e) "${option}.\"${e.name}\".group: group \"${e.group}\" is not in users.groups: declare it there, or set a group that exists (or a decimal gid)");
in
{
  options.nixseal = {
    secrets = entries optionsLib.secret;
    templates = entries optionsLib.template;
  };

  # Secrets needed to create users are installed before users exist, owned
  # by root (./for-users.nix): not looked up here.
  config.assertions = map (message: { assertion = false; inherit message; }) (
    problems "nixseal.secrets" (lib.filter (s: !s.neededForUsers) (attrValues cfg.secrets))
    ++ problems "nixseal.templates" (attrValues cfg.templates)
  );
}
