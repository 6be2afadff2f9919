# The public outputs of the rules' generators: the `<name>.pub` files that
# `nixseal rotate` commits beside the `.age` files (a WireGuard or ssh
# public key, a certificate, a hash declared public). They are not
# secret, so reading them at evaluation time and putting them in the Nix
# store is safe; no key is needed to read them.
{ lib }:
let
  inherit (lib) attrNames concatMap listToAttrs nameValuePair removeSuffix;
  rulesLib = import ./rules.nix { inherit lib; };

  entry = dir: secret: name:
    let
      file = dir + "/${name}.pub";
    in
    {
      inherit secret file;
      # Without the final newline, as a value in a configuration wants it.
      text =
        if builtins.pathExists file then removeSuffix "\n" (builtins.readFile file)
        else throw "nixseal: public output \"${name}\": ${toString file} is missing: run `nixseal rotate ${secret}` and commit it";
    };
in
rec {
  # name -> { secret, file, text } for every public output; `dir` is the
  # rules file's directory, `rules` the parsed file.
  entries = dir: rules:
    let
      secrets = rules.secrets or { };
    in
    listToAttrs (concatMap
      (s: map (name: nameValuePair name (entry dir s name)) (rulesLib.outputsOf s secrets.${s}).public)
      (attrNames secrets));

  # The text of one public output, from a rules directory (./secrets).
  publicOf = dir: name:
    let
      all = entries dir (rulesLib.read (dir + "/secrets.toml"));
    in
    (all.${name} or (throw "nixseal.lib.publicOf: ${toString dir}/secrets.toml has no public output \"${name}\" (a key pair's public half, a certificate, or a generator output listed in public)")).text;
}
