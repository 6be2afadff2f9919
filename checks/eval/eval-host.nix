# Evaluate one NixOS host offline and return its `config`.
#   nix-instantiate --eval --strict --json checks/eval/eval-host.nix \
#     --arg modules '[ ./hosts/web1 ]' -A nixseal.manifest
# See ./lib.nix for the arguments (and for `evalHost`, which also returns
# `options` and the failed assertions).
args@{ lib-path ? builtins.getEnv "NIXPKGS_LIB", modules ? [ ], ... }:
let
  harness = import ./lib.nix { inherit lib-path; };
in
(harness.evalHost (removeAttrs args [ "lib-path" ] // { inherit modules; })).config
