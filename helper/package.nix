# The nixseal helper and CLI. `nixseal install` runs at every boot and
# switch; the admin verbs run on admins' machines. One package for both.
{
  lib,
  python3Packages,
  age,
  openssh,
}:
let
  pyrage = python3Packages.callPackage ./pyrage.nix { };
  # Only what the package needs: a change to docs or tests elsewhere in the
  # repository must not rebuild the helper of every host.
  src = lib.cleanSourceWith {
    src = ./.;
    filter =
      path: type:
      let
        rel = lib.removePrefix (toString ./. + "/") (toString path);
        top = builtins.head (lib.splitString "/" rel);
      in
      builtins.elem top [
        "pyproject.toml"
        "nixseal"
        "tests"
      ]
      && !(lib.hasSuffix ".pyc" rel)
      && baseNameOf rel != "__pycache__";
  };
in
python3Packages.buildPythonApplication {
  pname = "nixseal";
  version = (lib.importTOML ./pyproject.toml).project.version;
  pyproject = true;
  inherit src;

  build-system = [ python3Packages.setuptools ];
  dependencies = [
    pyrage
    python3Packages.structlog
  ];

  nativeCheckInputs = [
    python3Packages.pytestCheckHook
    python3Packages.hypothesis
    age
    openssh
  ];
  # The suite skips (with a reason) what the build sandbox cannot offer:
  # root and mount namespaces, Nix evaluation. These modules test the
  # repository around the package (example secrets, scenarios, the flake)
  # and need all of it: they run from a checkout (docs/testing.md).
  disabledTestPaths = [
    "tests/test_examples.py"
    "tests/test_flake.py"
    "tests/test_twins.py"
  ];
  pythonImportsCheck = [
    "nixseal"
    "nixseal.cli"
    "nixseal.install"
  ];

  passthru = { inherit pyrage; };

  meta = {
    description = "Secrets management for NixOS: age-encrypted secrets in git, installed at activation";
    license = lib.licenses.mit;
    mainProgram = "nixseal";
    platforms = pyrage.meta.platforms;
  };
}
