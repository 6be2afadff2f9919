# pyrage (Python bindings of the Rust age crate) is not in nixpkgs.
# Building it from source needs a vendored-cargo hash; the wheels on PyPI
# are self-contained (abi3), so they are installed as they are: on Linux
# (one wheel per architecture) with their libraries patched for the store;
# on macOS one universal2 wheel serves both architectures and links only
# the system's libraries, so it needs no patching.
{ lib, stdenv, buildPythonPackage, fetchurl, autoPatchelfHook, pythonOlder }:
let
  version = "1.4.0";
  # Hashes are the sha256 that PyPI publishes for these files.
  wheels = {
    x86_64-linux = {
      url = "https://files.pythonhosted.org/packages/d9/f0/41da7d88cfdad2eba492f3275ec50a65916ccd3a78140fb15875569ad1ff/pyrage-1.4.0-cp310-abi3-manylinux_2_17_x86_64.manylinux2014_x86_64.whl";
      hash = "sha256-f06wy8K0ruXerJhixHs4lYZt9VVBU5Ua+CLpxYHmhVg=";
    };
    aarch64-linux = {
      url = "https://files.pythonhosted.org/packages/5a/cb/d88aaab0b89141802473f6139fe8e05519d1b6ac06bff8231a1378a5674f/pyrage-1.4.0-cp310-abi3-manylinux_2_17_aarch64.manylinux2014_aarch64.whl";
      hash = "sha256-+GizYMzT+DYybUK1Mvrj6OuDQKiMygo5wK4Q/OaPbMU=";
    };
    aarch64-darwin = universal2;
    x86_64-darwin = universal2;
  };
  universal2 = {
    url = "https://files.pythonhosted.org/packages/13/bb/6b167a449e95ecf0eaf4277c949a89a29dfc08cc533f710a9e6f12bef513/pyrage-1.4.0-cp310-abi3-macosx_10_12_x86_64.macosx_11_0_arm64.macosx_10_12_universal2.whl";
    hash = "sha256-vPQXeuqRqfSJUduAAcE4W6r7rmLMFdaR70Pv66q2uNs=";
  };
  system = stdenv.hostPlatform.system;
  wheel = wheels.${system} or (throw "pyrage ${version}: no wheel for ${system}; supported: ${lib.concatStringsSep ", " (lib.attrNames wheels)}");
in
buildPythonPackage {
  pname = "pyrage";
  inherit version;
  format = "wheel";
  disabled = pythonOlder "3.10";

  src = fetchurl {
    inherit (wheel) url hash;
  };

  # The Linux extension links against libgcc_s (unwinding) and glibc only.
  nativeBuildInputs = lib.optionals stdenv.hostPlatform.isLinux [ autoPatchelfHook ];
  buildInputs = lib.optionals stdenv.hostPlatform.isLinux [ stdenv.cc.cc.lib ];

  pythonImportsCheck = [
    "pyrage"
    "pyrage.x25519"
    "pyrage.ssh"
  ];

  meta = {
    description = "Python bindings for the age file encryption format (rage)";
    homepage = "https://github.com/woodruffw/pyrage";
    license = lib.licenses.mit;
    platforms = lib.attrNames wheels;
    sourceProvenance = [ lib.sourceTypes.binaryNativeCode ];
  };
}
