{
  imports = [ ./secrets.nix ];
}
