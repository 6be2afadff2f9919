# carol's home-manager configuration on web1: her own secret, encrypted to
# her own key in ../../secrets/secrets.toml, decrypted by a user unit into
# $XDG_RUNTIME_DIR/secrets. Use it as `home-manager.users.carol` together
# with the nixseal flake's homeManagerModules.nixseal.
#
# Her key is a TEST-ONLY KEY, committed on purpose in
# ../../secrets/test-keys/carol.agekey: never use it in production.
{ config, ... }:
{
  imports = [ ../../modules/home-manager ];

  home.username = "carol";
  home.homeDirectory = "/home/carol";

  nixseal.rules = ../../secrets/secrets.toml;
  nixseal.identityPaths = [ "${config.home.homeDirectory}/.config/nixseal/key.txt" ];
  nixseal.secrets."carol/api-token" = { };
}
