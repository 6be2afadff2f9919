"""The flake, evaluated offline, and every Nix file of the repository parsed.

The flake's outputs are evaluated by Nix against a stand-in nixpkgs input
(tests/stub-nixpkgs, completed at test time with the real nixpkgs lib and
nixseal's evaluation harness) passed with --override-input, so a broken
output fails here instead of on a user's machine. Nothing is built: the
stand-in's derivations are fakes that record what they were given.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import (
    HELPER_DIR,
    LAUNCHER,
    NIX_CONFIG,
    NIXPKGS_LIB,
    REPO_ROOT,
    make_ssh_key,
    needs_nix,
    pyrage_site,
)

from nixseal.age import crypto

LINUX = ("x86_64-linux", "aarch64-linux")
SYSTEMS = (*LINUX, "x86_64-darwin", "aarch64-darwin")
STUB = HELPER_DIR / "tests/stub-nixpkgs"
# What a git checkout of the repository holds (see .gitignore).
IGNORED = shutil.ignore_patterns(
    ".venv",
    ".git",
    "__pycache__",
    "*.pyc",
    "*.egg-info",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
    ".hypothesis",
    "result*",
    "build",
)
SCENARIOS = {
    p.stem: json.loads(p.read_text())
    for p in sorted((REPO_ROOT / "checks/scenarios").glob("*.json"))
}
HOSTS = sorted(p.name for p in (REPO_ROOT / "hosts").iterdir() if p.is_dir())

# Applied to each output: a JSON summary of what it evaluates to.
SUMMARIES = {
    "nixosModules": "ms: builtins.mapAttrs (_: m: builtins.isFunction m) ms",
    "homeManagerModules": "ms: builtins.mapAttrs (_: m: builtins.isFunction m) ms",
    "darwinModules": "ms: builtins.mapAttrs (_: m: builtins.isFunction m) ms",
    "overlays": "os: builtins.mapAttrs (_: o: builtins.isFunction o) os",
    "lib": "l: builtins.mapAttrs (_: builtins.isFunction) l",
    "packages": """ps: builtins.mapAttrs (_: builtins.mapAttrs (_: p: {
        inherit (p) type name drvPath; inherit (p.meta) mainProgram;
        deps = p.dependencyNames;
        checkInputs = map (d: d.name) p.nativeCheckInputs;
        inherit (p) disabledTestPaths pythonImportsCheck;
        postFixup = p.postFixup or null;
        postInstall = p.postInstall or null;
        nativeBuildInputs = map (d: d.name) (p.nativeBuildInputs or [ ]);
        wheel = { inherit (p.pyrage.src) url hash; inherit (p.pyrage) format; };
        pyrageInputs = map (d: d.name) (p.pyrage.nativeBuildInputs or [ ]);
      })) ps""",
    "apps": "as: builtins.mapAttrs (_: builtins.mapAttrs (_: a: { inherit (a) type program; })) as",
    "devShells": """ds: builtins.mapAttrs (_: builtins.mapAttrs (_: d: {
        inherit (d) type drvPath packageNames; })) ds""",
    "formatter": "fs: builtins.mapAttrs (_: f: { inherit (f) type name; }) fs",
    "checks": """cs: builtins.mapAttrs (_: builtins.mapAttrs (_: c: {
        inherit (c) type drvPath;
        testScript = c.testScript or null;
        nodes = c.nodes or null;
        failing = if c ? failedBuild then c.failedBuild.failing.drvPath else null;
      })) cs""",
    "nixosConfigurations": """hs: builtins.mapAttrs (_: h: {
        toplevel = h.config.system.build.toplevel.drvPath;
        inherit (h.config.nixseal) manifest;
        package = h.config.nixseal.package.name;
        failed = map (a: a.message) (builtins.filter (a: !a.assertion) h.config.assertions);
      }) hs""",
}


def _nix_env() -> dict[str, str]:
    env = dict(os.environ)
    env["NIX_CONFIG"] = NIX_CONFIG
    return env


@pytest.fixture(scope="module")
def flake_dirs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A copy of the repository (as git would hold it) and the stand-in nixpkgs."""
    base = tmp_path_factory.mktemp("flake")
    repo = base / "repo"
    shutil.copytree(REPO_ROOT, repo, ignore=IGNORED, symlinks=True)
    stub = base / "nixpkgs"
    shutil.copytree(STUB, stub)
    shutil.copytree(NIXPKGS_LIB / "lib", stub / "lib", ignore=shutil.ignore_patterns("tests"))
    shutil.copytree(REPO_ROOT / "checks/eval", stub / "eval")
    return repo, stub


def _nix(repo: Path, stub: Path, *args: str) -> subprocess.CompletedProcess[str]:
    argv = ["nix", *args, "--no-write-lock-file", "--override-input", "nixpkgs", f"path:{stub}"]
    return subprocess.run(argv, env=_nix_env(), capture_output=True, text=True, check=False)


@pytest.fixture(scope="module")
def outputs(flake_dirs: tuple[Path, Path]) -> dict[str, Any]:
    repo, stub = flake_dirs

    def one(output: str) -> tuple[str, Any]:
        proc = _nix(
            repo, stub, "eval", "--json", f"path:{repo}#{output}", "--apply", SUMMARIES[output]
        )
        assert proc.returncode == 0, f"{output}: {proc.stderr}"
        return output, json.loads(proc.stdout)

    with ThreadPoolExecutor(max_workers=3) as pool:
        return dict(pool.map(one, SUMMARIES))


@needs_nix
def test_flake_check_evaluates_every_output(flake_dirs: tuple[Path, Path]) -> None:
    repo, stub = flake_dirs
    proc = _nix(repo, stub, "flake", "check", "--no-build", f"path:{repo}")
    assert proc.returncode == 0, proc.stderr
    assert "error" not in proc.stderr.lower()


@needs_nix
def test_public_outputs(outputs: dict[str, Any]) -> None:
    assert outputs["nixosModules"] == {"nixseal": True, "default": True}
    assert outputs["homeManagerModules"] == {"nixseal": True, "default": True}
    assert outputs["darwinModules"] == {"nixseal": True, "default": True}
    assert outputs["overlays"] == {"default": True}
    assert outputs["lib"] == {"publicOf": True}
    assert sorted(outputs["packages"]) == sorted(SYSTEMS)
    for system, packages in outputs["packages"].items():
        assert sorted(packages) == ["default", "nixseal"]
        pkg = packages["nixseal"]
        assert pkg["type"] == "derivation" and pkg["name"].startswith("nixseal-")
        assert pkg["mainProgram"] == "nixseal"
        assert pkg["deps"][0].startswith("pyrage-") and "structlog" in pkg["deps"]
        assert "tomli" not in pkg["deps"], "tomli only below Python 3.11 (pyproject.toml)"
        assert {"age", "openssh", "git"} <= {n.split("-")[0] for n in pkg["checkInputs"]}
        assert "nixseal.cli.install" in pkg["pythonImportsCheck"]
        wheel = pkg["wheel"]
        arch = system.split("-")[0]
        assert wheel["format"] == "wheel"
        assert wheel["url"].startswith("https://files.pythonhosted.org/packages/")
        if system in LINUX:
            tag = f"manylinux_2_17_{arch}.manylinux2014_{arch}"
        else:  # one wheel for both Macs
            tag = "macosx_10_12_x86_64.macosx_11_0_arm64.macosx_10_12_universal2"
        assert wheel["url"].endswith(f"-cp310-abi3-{tag}.whl")
        patched = "auto-patchelf-hook" in pkg["pyrageInputs"]
        assert patched == (system in LINUX), "autoPatchelfHook on Linux only"
        assert wheel["hash"].startswith("sha256-") and len(wheel["hash"]) == 51
        app = outputs["apps"][system]["default"]
        assert app["type"] == "app" and app["program"].endswith("/bin/nixseal")


@needs_nix
def test_development_outputs(outputs: dict[str, Any]) -> None:
    for system in SYSTEMS:
        shell = outputs["devShells"][system]["default"]
        names = " ".join(shell["packageNames"])
        for tool in ("python3-env[pyrage-", "structlog", "pytest", "age", "nixpkgs-fmt", "ruff"):
            assert tool in names, f"devShell lacks {tool}"
        assert outputs["formatter"][system]["name"] == "nixpkgs-fmt"
    # VM tests and NixOS hosts: Linux only.
    assert sorted(outputs["checks"]) == sorted(LINUX)
    for system in LINUX:
        checks = outputs["checks"][system]
        expected = {f"eval-{h}" for h in HOSTS} | {"nixseal", "lint", "format"}
        for name, scenario in SCENARIOS.items():
            prefix = "build-failure" if scenario.get("kind") == "build-failure" else "vm"
            expected.add(f"{prefix}-{name}")
        assert set(checks) == expected
        assert all(c["type"] == "derivation" for c in checks.values())


@needs_nix
def test_example_hosts_are_nixos_configurations(outputs: dict[str, Any]) -> None:
    configs = outputs["nixosConfigurations"]
    assert sorted(configs) == HOSTS
    for host, config in configs.items():
        assert config["failed"] == [], host
        assert config["toplevel"].endswith(".drv")
        assert config["package"].startswith("nixseal-"), "nixosModules.nixseal sets the package"
        names = {s["name"] for s in config["manifest"]["secrets"]}
        assert names and all(n.startswith((f"{host}/", "shared/")) for n in names), names


@needs_nix
@pytest.mark.parametrize(
    "name", [n for n, s in SCENARIOS.items() if s.get("kind") != "build-failure"]
)
def test_vm_test_runs_its_scenario(name: str, outputs: dict[str, Any]) -> None:
    """Each VM test carries its scenario, and its nodes evaluate."""
    scenario = SCENARIOS[name]
    check = outputs["checks"]["x86_64-linux"][f"vm-{name}"]
    script = check["testScript"]
    _lint_test_script(script, sorted(check["nodes"]))
    assert json.loads(script.split('json.loads(r"""', 1)[1].split('""")', 1)[0]) == scenario
    # The driver gives every word a scenario may use a meaning.
    for word in ("files", "links", "restarted", "notRestarted", "installFails", "order", "active"):
        assert f'step.get("{word}"' in script, word
    assert '"login" in step' in script and "--rollback" in script
    nodes = check["nodes"]
    assert len(nodes) == 1
    node = next(iter(nodes.values()))
    assert node["failedAssertions"] == []
    if scenario.get("kind") == "home-manager":
        assert node["userServices"] == ["nixseal"]
        return
    assert scenario["host"] in nodes
    assert sorted(node["specialisations"]) == sorted(scenario.get("systems", {}))
    for system, spec in scenario.get("systems", {}).items():
        changed = spec.get("files", {})
        files = {s["name"]: s["file"] for s in node["specialisations"][system]["secrets"]}
        for secret, path in changed.items():
            assert files[secret].endswith("-" + Path(path).name), f"{system}: {secret}"


def _lint_test_script(script: str, nodes: list[str]) -> None:
    """A mistake in a testScript fails here, not after a VM has booted: pyflakes'
    checks (undefined names and the like), with the driver's globals declared."""
    declared = "".join(f"{n} = None\n" for n in ["subtest", *nodes])
    ruff = HELPER_DIR.parent / ".venv/bin/ruff"
    if not ruff.exists():
        ruff = Path(shutil.which("ruff") or "ruff")
    proc = subprocess.run(
        [str(ruff), "check", "--no-cache", "--select", "F,E9", "--stdin-filename", "t.py", "-"],
        input=declared + script,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@needs_nix
def test_package_build_leaves_out_tests_that_need_the_repository(
    outputs: dict[str, Any],
) -> None:
    """The package's tests run in the build sandbox on helper/ alone, with no
    Nix and no root: a test module reading the rest of the repository must
    be left out there (disabledTestPaths) or skip without Nix (needs_nix)."""
    disabled = set(outputs["packages"]["x86_64-linux"]["nixseal"]["disabledTestPaths"])
    for path in sorted((HELPER_DIR / "tests").glob("test_*.py")):
        text = path.read_text()
        helpers = [h for h in ("_twin", "_nixeval") if f"from {h} import" in text]
        if "REPO_ROOT" not in text and not helpers:
            continue
        rel = f"tests/{path.name}"
        skipped = "pytestmark = needs_nix" in text and "_twin" not in helpers
        assert rel in disabled or skipped, f"{rel} reads the repository in the build sandbox"


# nixpkgs' installShellCompletion (pkgs/by-name/in/installShellFiles/setup-hook.sh)
# for the --cmd NAME --SHELL FILE form: where each shell looks for them.
INSTALL_SHELL_COMPLETION = r"""
installShellCompletion() {
  local cmd=$2; shift 2
  while [ $# -gt 0 ]; do
    case $1 in
      --bash) install -D -m 644 "$2" "$out/share/bash-completion/completions/$cmd" ;;
      --zsh) install -D -m 644 "$2" "$out/share/zsh/site-functions/_$cmd" ;;
      --fish) install -D -m 644 "$2" "$out/share/fish/vendor_completions.d/$cmd.fish" ;;
    esac
    shift 2
  done
}
"""


@needs_nix
def test_the_package_installs_completions_made_by_its_parser(
    outputs: dict[str, Any], tmp_path: Path
) -> None:
    """postInstall, run as the build runs it: the package's own helper (from
    $out's site-packages) writes the three scripts where each shell looks."""
    package = outputs["packages"]["x86_64-linux"]["nixseal"]
    assert "install-shell-files" in package["nativeBuildInputs"]
    script = package["postInstall"]
    (python,) = re.findall(r"(/nix/store/\S+/bin/python3\.11)", script)
    site = tmp_path / "lib/python3.11/site-packages"
    site.mkdir(parents=True)
    (site / "nixseal").symlink_to(HELPER_DIR / "nixseal")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    run = subprocess.run(
        ["bash", "-euc", INSTALL_SHELL_COMPLETION + script.replace(python, sys.executable)],
        env={**env, "out": str(tmp_path)},
        cwd=tmp_path,
        check=False,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    share = tmp_path / "share"
    bash = (share / "bash-completion/completions/nixseal").read_text()
    assert "complete -o default -F _nixseal nixseal" in bash and "import-agenix" in bash
    assert (share / "zsh/site-functions/_nixseal").read_text().startswith("#compdef nixseal")
    assert "__nixseal_at" in (share / "fish/vendor_completions.d/nixseal.fish").read_text()


def _run_fixup(fixup: str, out: Path) -> None:
    """The package's postFixup on out, with the store paths it names stood in
    by this machine's: env, the interpreter, pyrage's and PyYAML's site
    directories, the launcher's template; the package's own site directory
    holds this helper."""
    (env_path,) = set(re.findall(r"(/nix/store/\S+/bin/env)\b", fixup))
    assert env_path.endswith("-coreutils-9.5/bin/env"), fixup
    (template,) = re.findall(r"(/nix/store/\S+-nixseal-install\.in)", fixup)
    (python,) = set(re.findall(r"(/nix/store/\S+/bin/python3\.\d+)\b", fixup))
    (pyrage_dir,) = set(
        re.findall(r"(/nix/store/\S+-pyrage-\S+/lib/python3\.\d+/site-packages)", fixup)
    )
    (pyyaml_dir,) = set(
        re.findall(r"(/nix/store/\S+-pyyaml\S*/lib/python3\.\d+/site-packages)", fixup)
    )
    site = re.search(r"\$out/(lib/python3\.\d+/site-packages)", fixup)
    assert site is not None, fixup
    (out / site.group(1)).mkdir(parents=True)
    (out / site.group(1) / "nixseal").symlink_to(HELPER_DIR / "nixseal")
    script = fixup.replace(env_path, "/usr/bin/env").replace(template, str(LAUNCHER))
    script = script.replace(pyrage_dir, pyrage_site()).replace(python, sys.executable)
    script = script.replace(pyyaml_dir, str(Path(yaml.__file__).parent.parent))
    run = subprocess.run(
        ["bash", "-euc", script],
        env={**os.environ, "out": str(out)},
        check=False,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr


@needs_nix
def test_the_package_starts_python_with_the_signals_blocked(
    outputs: dict[str, Any], tmp_path: Path
) -> None:
    """The package's postFixup, run on a wrapped script as nixpkgs leaves it:
    its shebang then goes through `env --block-signal`, and the script
    still runs (a signal sent before nixseal's first statement waits for
    it: tests/test_signals.py)."""
    script = tmp_path / "bin/.nixseal-wrapped"
    script.parent.mkdir()
    script.write_text(
        f"#!{sys.executable}\nimport sys\nfrom nixseal.cli import main\nsys.exit(main())\n"
    )
    script.chmod(0o755)
    _run_fixup(outputs["packages"]["x86_64-linux"]["nixseal"]["postFixup"], tmp_path)
    first = script.read_text().splitlines()[0]
    assert first == f"#!/usr/bin/env -S --block-signal=INT,TERM {sys.executable}"
    env = {**os.environ, "PYTHONPATH": str(HELPER_DIR)}
    version = subprocess.run(
        [str(script), "--version"], env=env, capture_output=True, text=True, check=False
    )
    assert version.returncode == 0 and version.stdout.startswith("nixseal "), version.stderr


@needs_nix
def test_the_package_s_launcher_installs_with_only_the_package_pyrage_and_pyyaml(
    outputs: dict[str, Any], tmp_path: Path
) -> None:
    """libexec/nixseal-install, as postFixup makes it: it installs a secret
    with signals blocked until nixseal's first statement, an isolated
    interpreter (no PYTHON* variable counts) and no site directory, so
    nothing outside the package, pyrage and PyYAML is on its path."""
    out = tmp_path / "out"
    (out / "bin").mkdir(parents=True)
    (out / "bin/.nixseal-wrapped").write_text(f"#!{sys.executable}\n")
    _run_fixup(outputs["packages"]["x86_64-linux"]["nixseal"]["postFixup"], out)
    launcher = out / "libexec/nixseal-install"
    assert stat.S_IMODE(launcher.stat().st_mode) == 0o555
    head = launcher.read_text().splitlines()[0]
    assert head == f"#!/usr/bin/env -S --block-signal=INT,TERM {sys.executable} -I -S"
    key = make_ssh_key(tmp_path)
    value = tmp_path / "db.age"
    value.write_bytes(crypto.encrypt(b"hunter2\n", [crypto.parse_recipient(key.public, "t")]))
    # a key of a YAML document: PyYAML is on the launcher's path too
    document = tmp_path / "app.age"
    document.write_bytes(
        crypto.encrypt(b"db:\n  port: 5432\n", [crypto.parse_recipient(key.public, "t")])
    )
    port = {"name": "port", "file": str(document), "format": "yaml", "key": ["db", "port"]}
    manifest = tmp_path / "manifest.json"
    manifest.write_text(
        json.dumps(
            {
                "version": 1,
                "identityPaths": [str(key.private_path)],
                "secrets": [{"name": "db", "file": str(value)}, port],
            }
        )
    )
    root = tmp_path / "root"
    root.mkdir()
    # what the environment would run at start-up, if it counted
    probe = tmp_path / "probe"
    probe.mkdir()
    (probe / "sitecustomize.py").write_text(f"open({str(tmp_path / 'ran')!r}, 'w')\n")
    env = {**os.environ, "PYTHONPATH": str(probe)}
    run = subprocess.run(
        [str(launcher), "--manifest", str(manifest), "--root", str(root), "--no-mount"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert (root / "run/secrets/db").read_bytes() == b"hunter2\n"
    assert (root / "run/secrets/port").read_bytes() == b"5432"
    assert "install finished" in run.stderr
    assert not (tmp_path / "ran").exists()


@needs_nix
def test_build_failure_checks_build_the_failing_manifest(outputs: dict[str, Any]) -> None:
    for name, scenario in SCENARIOS.items():
        if scenario.get("kind") != "build-failure":
            continue
        check = outputs["checks"]["x86_64-linux"][f"build-failure-{name}"]
        assert "nixseal-manifest.json" in check["failing"]


@needs_nix
def test_every_nix_file_parses() -> None:
    files = [
        p
        for p in REPO_ROOT.rglob("*.nix")
        if not any(part in {".venv", ".git", "node_modules"} for part in p.parts)
    ]
    assert len(files) > 20
    proc = subprocess.run(
        ["nix-instantiate", "--parse", *map(str, files)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


def test_flake_lock_pins_nixpkgs_only() -> None:
    lock = json.loads((REPO_ROOT / "flake.lock").read_text())
    assert lock["version"] == 7
    assert lock["nodes"]["root"] == {"inputs": {"nixpkgs": "nixpkgs"}}
    locked = lock["nodes"]["nixpkgs"]["locked"]
    assert locked["type"] == "github" and locked["owner"] == "NixOS"
    assert len(locked["rev"]) == 40 and locked["narHash"].startswith("sha256-")
    assert set(lock["nodes"]) == {"root", "nixpkgs"}
