# The nixseal helper and CLI. `nixseal install` runs at every boot and
# switch; the admin verbs run on admins' machines. One package for both.
{ lib, stdenv, python3Packages, age, openssh, git, coreutils, installShellFiles, zsh, fish, sops }:
let
  pyrage = python3Packages.callPackage ./pyrage.nix { };
  # Only what the package needs: a change to docs or tests elsewhere in the
  # repository must not rebuild the helper of every host.
  src = lib.cleanSourceWith {
    src = ./.;
    filter = path: type:
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
  nativeBuildInputs = [ installShellFiles ];
  # As pyproject.toml: tomllib is in the standard library from 3.11 on.
  dependencies = [
    pyrage
    python3Packages.structlog
    # passphrase-protected OpenSSH keys of admins (never on the boot path)
    python3Packages.cryptography
    python3Packages.bcrypt
    # the rules file edited with its comments kept (host, admin, user, group)
    python3Packages.tomlkit
    # .sops.yaml and sops documents (import-sops), and structured secrets'
    # YAML documents (imported by an install only when the manifest has a
    # yaml entry)
    python3Packages.pyyaml
  ] ++ lib.optionals (python3Packages.pythonOlder "3.11") [ python3Packages.tomli ];

  nativeCheckInputs = [
    python3Packages.pytestCheckHook
    python3Packages.hypothesis
    age
    openssh
    git # the audit tests commit to a scratch repository
    zsh # the completions, tried in their shells
    fish
    sops # import-sops, against the real one
  ];
  # The suite skips (with a reason) what the build sandbox cannot offer:
  # root and mount namespaces (needs_root), Nix and a nixpkgs lib
  # (needs_nix: the module evaluation tests). These modules test the
  # repository around the package (example hosts and secrets, scenarios,
  # the flake) and read it at import time: the source here is helper/ only,
  # so they run from a checkout (docs/testing.md).
  disabledTestPaths = [
    "tests/test_docs.py"
    "tests/test_examples.py"
    "tests/test_flake.py"
    # pyrage's wheels downloaded from PyPI, and pyrage.nix (outside the source)
    "tests/test_pyrage.py"
    "tests/test_troubleshooting.py"
    "tests/test_twins.py"
    # a Debian guest under systemd-nspawn: root, and the network to build it
    "tests/test_boot_graph.py"
    "tests/test_nspawn.py"
    "tests/test_nspawn_credentials.py"
    "tests/test_readiness.py"
    "tests/test_restarts.py"
  ];
  # Completions made by the parser of this very build, so they list exactly
  # its verbs and options. Before the wrapping of postFixup: the build's
  # PYTHONPATH holds the dependencies, and $out's site-packages is added.
  postInstall = lib.optionalString (stdenv.buildPlatform.canExecute stdenv.hostPlatform) ''
    nixseal() {
      PYTHONPATH="$out/${python3Packages.python.sitePackages}:''${PYTHONPATH:-}" \
        ${python3Packages.python.interpreter} -m nixseal "$@"
    }
    installShellCompletion --cmd nixseal \
      --bash <(nixseal completion bash) \
      --zsh <(nixseal completion zsh) \
      --fish <(nixseal completion fish)
  '';
  # Python starts with SIGINT and SIGTERM blocked; nixseal unblocks them as
  # its first statement, once its own handlers are in place. A signal sent
  # during the interpreter's start-up (a stop at boot, a Ctrl-C during a
  # switch) then ends the run with one line and 130 or 143, not with a
  # traceback from Python's default handler. After wrapPythonPrograms
  # (buildPythonApplication's own postFixup), the wrapped script's shebang
  # goes through env.
  #
  # libexec/nixseal-install is what the modules run: the install alone,
  # with an isolated interpreter that reads no site directory and finds
  # exactly this package, pyrage and PyYAML (launcher/nixseal-install.in
  # says why).
  postFixup = ''
    sed -i '1s|^#! *\(.*\)$|#!${coreutils}/bin/env -S --block-signal=INT,TERM \1|' \
      "$out/bin/.nixseal-wrapped"
    head -n 1 "$out/bin/.nixseal-wrapped" | grep -q -- '--block-signal=INT,TERM'

    mkdir -p "$out/libexec"
    sed -e 's|@env@|${coreutils}/bin/env|' \
      -e 's|@python@|${python3Packages.python.interpreter}|' \
      -e "s|@sitePackages@|$out/${python3Packages.python.sitePackages}|" \
      -e 's|@pyragePackages@|${pyrage}/${python3Packages.python.sitePackages}|' \
      -e 's|@pyyamlPackages@|${python3Packages.pyyaml}/${python3Packages.python.sitePackages}|' \
      ${./launcher/nixseal-install.in} > "$out/libexec/nixseal-install"
    chmod 0555 "$out/libexec/nixseal-install"
    ! grep -q '@[a-zA-Z]*@' "$out/libexec/nixseal-install"
    test -d "${pyrage}/${python3Packages.python.sitePackages}/pyrage"
    test -d "${python3Packages.pyyaml}/${python3Packages.python.sitePackages}/yaml"
  '' + lib.optionalString (stdenv.buildPlatform.canExecute stdenv.hostPlatform) ''
    "$out/libexec/nixseal-install" --help > /dev/null
  '';
  pythonImportsCheck = [
    "nixseal"
    "nixseal.cli"
    "nixseal.cli.install"
    "nixseal.engine.activation"
  ];

  passthru = { inherit pyrage; };

  meta = {
    description = "Secrets management for NixOS: age-encrypted secrets in git, installed at activation";
    license = lib.licenses.mit;
    mainProgram = "nixseal";
    platforms = pyrage.meta.platforms;
  };
}
