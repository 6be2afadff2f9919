# lib.nixosSystem of the stand-in nixpkgs: the harness's evaluation, plus
# the options of a whole machine that nixseal's stubs leave out.
{ harness, nixosExtra }:
{ modules ? [ ], specialArgs ? { }, ... }:
let
  evaluated = harness.evalHost {
    modules = [ nixosExtra ] ++ modules;
    withNixseal = false;
    pkgs = null;
    inherit specialArgs;
  };
in
{
  inherit (evaluated) config options;
  inherit (evaluated.config._module.args) pkgs;
  _type = "configuration";
}
