# lib.nixosSystem of the stand-in nixpkgs: the harness's evaluation, plus
# the options of a whole machine that nixseal's stubs leave out, and the
# services the documentation's examples enable.
{ harness, nixosExtra }:
let
  nixosSystem =
    { modules ? [ ], specialArgs ? { }, ... }@args:
    let
      evaluated = harness.evalHost {
        modules = [
          nixosExtra
          ./nixos-services.nix
        ]
        ++ modules;
        withNixseal = false;
        pkgs = null;
        inherit specialArgs;
      };
    in
    {
      inherit (evaluated) config options;
      inherit (evaluated.config._module.args) pkgs;
      _type = "configuration";
      extendModules =
        { modules ? [ ], ... }: nixosSystem (args // { modules = (args.modules or [ ]) ++ modules; });
    };
in
nixosSystem
