"""Benchmark: evaluating a NixOS host's nixseal declarations, offline.

For 10, 100 and 1,000 secrets (each: a file and an owner, the usual
declaration), evaluates through checks/eval what building the host needs
from the module: the manifest (as JSON), the failed assertions, and the
install unit (which names the manifest file). Each evaluation is one
``nix-instantiate --eval --strict`` process; reported are its wall time
and peak resident memory (ru_maxrss of that child), median of --runs.

Also "nixseal+rules": the secrets come from a rules file (all given to the
host through a group, declared by `nixseal.declareRulesSecrets`), their
files are Nix paths hashed into the store as a build does.

Also "nixseal, no inference": with ``nixseal.inferRestarts = false``, what
finding the services that name secrets' paths costs (the host has n/10
services, each naming eleven secrets' paths, in every variant).

Also "nixseal, submodule": nixseal's own module with its entry type
(modules/lib/record.nix) replaced by ``types.submodule``, on a copy of
modules/ and checks/eval: what the record type saves.

Baselines, in the same run and with the same stubs and definitions:

- "submodule": the same number of secrets declared the way agenix and
  sops-nix declare them, one ``types.submodule`` per secret with agenix's
  seven options (name, file, path, mode, owner, group, symlink), and one
  shell snippet per secret concatenated into an activation script.
- "agenix": agenix's own module, when --agenix names its modules/age.nix.
- "empty": a host without secrets (the fixed cost of lib and stubs).

Usage (from helper/):
    python bench/bench_eval.py [--sizes 10,100,1000] [--runs 3] [--agenix PATH/modules/age.nix]
Needs nix-instantiate and the nixpkgs lib in NIXPKGS_LIB (default /opt/nixpkgs-lib).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
HARNESS = REPO / "checks" / "eval" / "lib.nix"
NIXPKGS_LIB = os.environ.get("NIXPKGS_LIB", "/opt/nixpkgs-lib")

# The host: n secrets with a file and an owner.
SECRETS = """lib.listToAttrs (map (i: lib.nameValuePair "app/secret-${toString i}" {
  file = "/var/lib/secrets/secret-${toString i}.age"; owner = "app"; }) (lib.range 1 n))"""

# n/10 services, each naming ten of the secrets' paths in its script and
# one in EnvironmentFile: what nixseal.inferRestarts reads (every variant
# has them, so that all evaluate the same services).
SERVICES = """lib.listToAttrs (map (j: lib.nameValuePair "app-${toString j}" {
  wantedBy = [ "multi-user.target" ];
  script = lib.concatMapStrings (i: ''
    test -r /run/secrets/app/secret-${toString (j * 10 + i)}
  '') (lib.range 1 10);
  serviceConfig.EnvironmentFile = "-/run/secrets/app/secret-${toString (j * 10 + 1)}";
  serviceConfig.User = "app";
  environment.APP_HOME = "/var/lib/app-${toString j}";
}) (lib.range 0 (n / 10 - 1)))"""

HOST = f"""{{
  networking.hostName = "web1";
  services.openssh.enable = true;
  users.users.app = {{ isSystemUser = true; group = "app"; }};
  users.groups.app = {{ }};
  systemd.services = {SERVICES};
}}"""

NIXSEAL = f"""
  r = h.evalHost {{ modules = [ {HOST} {{ nixseal.secrets = {SECRETS}; }} EXTRA ]; }};
  result = {{
    manifest = builtins.toJSON r.config.nixseal.manifest;
    failed = r.failedAssertions;
    unit = r.config.systemd.services.nixseal-install.serviceConfig.ExecStart or null;
  }};
"""

NO_INFER = "{ nixseal.inferRestarts = false; }"

RULES = f"""
  r = h.evalHost {{ modules = [ {HOST} {{
    nixseal.rules = /. + RULES_PATH; nixseal.declareRulesSecrets = true; }} ]; }};
  result = {{
    manifest = builtins.toJSON r.config.nixseal.manifest;
    failed = r.failedAssertions;
    unit = r.config.systemd.services.nixseal-install.serviceConfig.ExecStart or null;
  }};
"""

# One submodule per secret, as agenix and sops-nix declare them; not their code.
SUBMODULE = f"""
  inherit (lib) mkOption types;
  secretType = types.submodule ({{ config, name, ... }}: {{
    options = {{
      name = mkOption {{ type = types.str; default = name; description = "Name."; }};
      file = mkOption {{ type = types.path; description = "Encrypted file."; }};
      path = mkOption {{
        type = types.str; default = "/run/agenix/${{config.name}}"; description = "Path.";
      }};
      mode = mkOption {{ type = types.str; default = "0400"; description = "Mode."; }};
      owner = mkOption {{ type = types.str; default = "0"; description = "Owner."; }};
      group = mkOption {{ type = types.str; default = "0"; description = "Group."; }};
      symlink = mkOption {{ type = types.bool; default = true; description = "Symlink."; }};
    }};
  }});
  baseline = {{ config, ... }}: {{
    options.baseline.secrets = mkOption {{ type = types.attrsOf secretType; default = {{ }}; }};
    config.system.activationScripts.baseline = {{
      deps = [ "specialfs" "users" "groups" ];
      text = lib.concatMapStrings (s: ''
        install -m ${{s.mode}} -o ${{s.owner}} -g ${{s.group}} /dev/null ${{s.path}}
        age -d -o ${{s.path}} ${{s.file}}
      '') (lib.attrValues config.baseline.secrets);
    }};
  }};
  r = h.evalHost {{
    withNixseal = false; modules = [ {HOST} baseline {{ baseline.secrets = {SECRETS}; }} ];
  }};
  result = {{ script = r.config.system.activationScripts.script; failed = r.failedAssertions; }};
"""

AGENIX = """
  fake = h.fakePkgs { };
  r = h.evalHost {
    withNixseal = false;
    pkgs = fake // { age = fake.coreutils; mount = fake.util-linux; };
    modules = [ HOST (/. + AGENIX_PATH) { age.secrets = SECRETS; } ];
  };
  result = { script = r.config.system.activationScripts.script; failed = r.failedAssertions; };
"""

EMPTY = f"""
  r = h.evalHost {{ modules = [ {HOST} ]; }};
  result = {{
    failed = r.failedAssertions; services = builtins.attrNames r.config.systemd.services;
  }};
"""


def write_rules(directory: Path, n: int) -> Path:
    """A rules file giving n secrets to web1 (through @web), with their files."""
    lines = ["version = 1", "[hosts.web1]", 'key = "age1xyz"', "[groups]", 'web = ["web1"]']
    (directory / "app").mkdir(parents=True, exist_ok=True)
    for i in range(1, n + 1):
        lines += [f'[secrets."app/secret-{i}"]', 'hosts = ["@web"]']
        (directory / "app" / f"secret-{i}.age").write_bytes(b"age-encryption.org/v1\n")
    rules = directory / "secrets.toml"
    rules.write_text("\n".join(lines) + "\n")
    return rules


def expression(body: str, n: int, harness: Path = HARNESS) -> str:
    return (
        f'let h = import {harness} {{ lib-path = "{NIXPKGS_LIB}"; }}; lib = h.lib; n = {n};'
        f"{body} in builtins.seq (builtins.toJSON result) n"
    )


def with_submodules(scratch: Path) -> Path:
    """The harness of a copy of modules/ whose secrets and templates are submodules."""
    copy = scratch / "submodule"
    shutil.copytree(REPO / "modules", copy / "modules")
    shutil.copytree(REPO / "checks" / "eval", copy / "checks" / "eval")
    (copy / "modules" / "lib" / "record.nix").write_text(
        "{ lib }: fields: lib.types.submodule fields\n"
    )
    return copy / "checks" / "eval" / "lib.nix"


def measure(expr: str) -> tuple[float, float]:
    """(seconds, peak MiB) of one evaluation."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        ["nix-instantiate", "--eval", "--strict", "--readonly-mode", "-E", expr],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    # wait4, not wait: the rusage of this one child (its output is one line).
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        err = proc.stderr.read().decode() if proc.stderr else ""
        sys.exit(f"evaluation failed:\n{err}")
    if proc.stderr:
        proc.stderr.close()
    return elapsed, usage.ru_maxrss / 1024


def median(expr: str, runs: int) -> tuple[float, float]:
    samples = [measure(expr) for _ in range(runs)]
    return statistics.median(s[0] for s in samples), statistics.median(s[1] for s in samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,100,1000")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--agenix", metavar="AGE_NIX", help="agenix's modules/age.nix")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    scratch = Path(tempfile.mkdtemp(prefix="nixseal-bench-"))
    variants = {
        "nixseal": (NIXSEAL.replace("EXTRA", ""), HARNESS),
        "nixseal-no-infer": (NIXSEAL.replace("EXTRA", NO_INFER), HARNESS),
        "nixseal+rules": (RULES, HARNESS),
        "nixseal-submodule": (NIXSEAL.replace("EXTRA", ""), with_submodules(scratch)),
        "submodule": (SUBMODULE, HARNESS),
    }
    if args.agenix:
        agenix = (
            AGENIX.replace("AGENIX_PATH", f'"{Path(args.agenix).resolve()}"')
            .replace("HOST", HOST)
            .replace("SECRETS", SECRETS)
        )
        variants["agenix"] = (agenix, HARNESS)

    t0, m0 = median(expression(EMPTY, 0), args.runs)
    print(f"empty host (lib + stubs): {t0:.3f} s, {m0:.1f} MiB")
    header = f"{'secrets':>8} " + " ".join(f"{v + ' s':>19} {v + ' MiB':>21}" for v in variants)
    print(header)
    results: dict[tuple[str, int], tuple[float, float]] = {}
    for n in sizes:
        row = [f"{n:>8}"]
        rules = write_rules(scratch / str(n), n)
        for name, (template, harness) in variants.items():
            body = template.replace("RULES_PATH", f'"{rules}"')
            t, m = median(expression(body, n, harness), args.runs)
            results[(name, n)] = (t, m)
            row.append(f"{t:>19.3f} {m:>21.1f}")
        print(" ".join(row))
    shutil.rmtree(scratch)
    print()
    for base in (v for v in variants if v not in {"nixseal", "nixseal+rules"}):
        for n in sizes:
            t, m = results[("nixseal", n)]
            bt, bm = results[(base, n)]
            print(f"{n:>5} secrets: nixseal / {base}: time {t / bt:.2f}x, memory {m / bm:.2f}x")


if __name__ == "__main__":
    main()
