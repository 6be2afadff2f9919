# A small fake `pkgs`: real derivations (so store paths, string context and
# `drvPath` behave as on NixOS) that are never built. Their build commands
# stay readable as attributes (`buildCommand`, `text`) for tests.
{ lib
, system ? "x86_64-linux"
  # Where the fake nixseal package "is": a directory with bin/nixseal, so
  # that commands the module writes can be run here against the real helper.
, nixsealOutPath ? null
}:
let
  mkDerivation = name: attrs:
    let
      drv = derivation (
        {
          inherit name system;
          builder = "/bin/sh";
          args = [
            "-c"
            (attrs.buildCommand or "echo fake > $out")
          ];
        }
        // removeAttrs attrs [
          "meta"
          "passthru"
        ]
      );
    in
    drv
    // {
      meta = attrs.meta or { };
    }
    // attrs.passthru or { }
    // lib.optionalAttrs (attrs ? buildCommand) { inherit (attrs) buildCommand; };

  package = pname: version:
    mkDerivation "${pname}-${version}" {
      inherit pname version;
      meta.mainProgram = pname;
    };

  bash = package "bash" "5.2";

  nixseal =
    if nixsealOutPath == null then
      package "nixseal" "0.1.0"
    else
      {
        type = "derivation";
        name = "nixseal-0.1.0";
        pname = "nixseal";
        version = "0.1.0";
        outPath = nixsealOutPath;
        meta.mainProgram = "nixseal";
      };
in
{
  inherit system bash nixseal;
  stdenv.hostPlatform = lib.systems.elaborate system;
  stdenv.isLinux = (lib.systems.elaborate system).isLinux;
  runtimeShell = "${bash}/bin/bash";
  coreutils = package "coreutils" "9.5";
  findutils = package "findutils" "4.10.0";
  gnugrep = package "gnugrep" "3.11";
  gnused = package "gnused" "4.9";
  systemd = package "systemd" "257";
  userborn = package "userborn" "0.4.0";
  util-linux = package "util-linux" "2.40";

  runCommand = name: env: buildCommand:
    mkDerivation name (env // { inherit buildCommand; });

  writeText = name: text:
    mkDerivation name {
      inherit text;
      passAsFile = [ "text" ];
      buildCommand = ''cp "$textPath" "$out"'';
    };

  writeShellScript = name: text:
    mkDerivation name {
      text = "#!${bash}/bin/bash\n" + text;
      passAsFile = [ "text" ];
      buildCommand = ''cp "$textPath" "$out"; chmod +x "$out"'';
    };
}
