# Generators' public outputs (`<name>.pub` beside the `.age` files), read
# from the rules directory at evaluation time: a peer's WireGuard public
# key, an ssh public key for authorized_keys, a CA certificate. Not
# secret: they may be in the Nix store. `rules`: the parsed rules file
# (null without one).
{ rules }:
{ config, lib, ... }:
let
  inherit (lib) mkOption types literalMD;
  cfg = config.nixseal;
  publicLib = import ../lib/public.nix { inherit lib; };
in
{
  options.nixseal.public = mkOption {
    type = types.attrsOf (types.submodule {
      options = {
        text = mkOption {
          type = types.str;
          defaultText = literalMD "the text of `<rules dir>/<name>.pub`";
          description = "The output's text, without its final newline.";
        };
        file = mkOption {
          type = types.path;
          defaultText = literalMD "`<rules dir>/<name>.pub`";
          description = "The `.pub` file holding it, in the rules directory.";
        };
        secret = mkOption {
          type = types.str;
          defaultText = literalMD "the secret of the rules whose generator makes it";
          description = "The secret whose generator made it (`nixseal rotate` it to renew it).";
        };
      };
    });
    readOnly = true;
    default = if rules == null then { } else publicLib.entries (dirOf cfg.rules) rules;
    defaultText = literalMD "the public outputs of the generators of `nixseal.rules`";
    description = ''
      The public outputs of the rules' generators, by name: the public
      half of a `ssh-ed25519`, `age`, `wireguard`, `ca` or `cert` value
      (`<name>.pub`), an `htpasswd` line with `public = true`, and each
      output a command generator lists in `public` (the first as
      `<name>`, the others as `<name>.<output>`). Every host sees all of
      them, not only its own, so that one host's configuration can name
      another's public key. They are read from the rules directory with
      no key and are **not secret**: safe to put in the Nix store, unlike
      a secret's value. Empty without `nixseal.rules`.
    '';
  };
}
