"""Benchmark: `nixseal rekey` against what agenix's CLI does per file.

Setup: N secrets, each encrypted to 2 admin age keys and 3 host ssh-ed25519
keys. Then one host key changes, so every file is stale, and both sides
re-encrypt all N files:

- nixseal: one `python -m nixseal rekey` process (start-up included).
- baseline (agenix -r): per file, `nix-instantiate --eval --json --strict`
  of the secrets.nix for the file's publicKeys, one `age -d` and one
  `age -e` (plaintext through a pipe, which is cheaper than agenix's temp
  file, so the baseline is if anything flattered).

Also times `nixseal check` and `nixseal audit` on 1,000 secrets and 200
hosts. Prints medians and ratios. Usage:
    python bench/bench_rekey.py [--sizes 100,1000] [--runs 5] [--baseline-sample 100]
At sizes above --baseline-sample the baseline runs on that many files and
is extrapolated linearly (it is per-file work, so linear by construction).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HELPER = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(HELPER))

from nixseal.age import crypto  # noqa: E402


def ssh_key(directory: Path, name: str) -> tuple[Path, str]:
    path = directory / name
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"root@{name}", "-f", str(path)],
        check=True,
    )
    return path, path.with_suffix(".pub").read_text().strip()


def age_key(directory: Path, name: str) -> tuple[Path, str]:
    secret, public = crypto.generate_age_identity()
    path = directory / name
    path.write_text(secret + "\n")
    return path, public


class World:
    """A secrets repo with N secrets in nixseal and agenix layout."""

    def __init__(self, root: Path, n: int, n_hosts: int = 3) -> None:
        self.root = root
        self.secrets = root / "secrets"
        self.secrets.mkdir(parents=True)
        keys = root / "keys"
        keys.mkdir()
        self.admins = [age_key(keys, f"admin{i}") for i in range(2)]
        self.hosts = [ssh_key(keys, f"host{i}") for i in range(n_hosts)]
        self.host_keys = [pub for _, pub in self.hosts]
        self.names = [f"app{i // 50}/secret{i:05}" for i in range(n)]
        self.n_hosts = n_hosts

    def rules_text(self, host_keys: list[str]) -> str:
        lines = ["version = 1", "[admins]"]
        lines += [f'admin{i} = "{pub}"' for i, (_, pub) in enumerate(self.admins)]
        for i, key in enumerate(host_keys):
            lines += [f"[hosts.host{i}]", f'key = "{key}"']
        for j, name in enumerate(self.names):
            # 3 hosts per secret, spread over all hosts
            hs = [f'"host{(j + k) % len(host_keys)}"' for k in range(min(3, len(host_keys)))]
            lines += [f'[secrets."{name}"]', f"hosts = [{', '.join(hs)}]", 'rotate_after = "90d"']
        return "\n".join(lines) + "\n"

    def agenix_text(self, host_keys: list[str]) -> str:
        admins = " ".join(f'"{pub}"' for _, pub in self.admins)
        entries = []
        for j, name in enumerate(self.names):
            hs = " ".join(f'"{host_keys[(j + k) % len(host_keys)]}"' for k in range(3))
            entries.append(f'  "{name}.age".publicKeys = [ {admins} {hs} ];')
        return "{\n" + "\n".join(entries) + "\n}\n"

    def populate(self) -> None:
        from nixseal.repo.context import Context, encrypt_secret
        from nixseal.repo.rules import load_rules
        from nixseal.repo.state import State

        (self.secrets / "secrets.toml").write_text(self.rules_text(self.host_keys))
        rules = load_rules(self.secrets / "secrets.toml")
        ctx = Context(rules, State.load(rules), [])
        for name in self.names:
            encrypt_secret(ctx, name, f"value of {name}\n".encode(), new_value=True, save=False)
        ctx.state.save()

    def make_stale(self) -> None:
        """Host 0 gets a new key: every secret listing host0 is stale."""
        _, new_pub = ssh_key(self.root / "keys", "host0-new")
        keys = [new_pub, *self.host_keys[1:]]
        (self.secrets / "secrets.toml").write_text(self.rules_text(keys))
        (self.secrets / "secrets.nix").write_text(self.agenix_text(keys))


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["NIX_CONFIG"] = (
        "experimental-features = nix-command flakes\nsubstituters =\neval-cache = false\n"
    )
    return e


def nixseal(world: World, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "nixseal", "-q", "-i", str(world.admins[0][0]), *args],
        cwd=world.root,
        capture_output=True,
        env=env(),
        check=False,
    )


def run_nixseal_rekey(world: World) -> float:
    t = time.perf_counter()
    proc = nixseal(world, "rekey")
    elapsed = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"nixseal rekey failed: {proc.stderr.decode()}")
    return elapsed


def run_baseline(world: World, names: list[str]) -> float:
    identity = str(world.admins[0][0])
    rules = world.secrets / "secrets.nix"
    t = time.perf_counter()
    for name in names:
        file = f"{name}.age"
        expr = f'(let rules = import {rules}; in rules."{file}".publicKeys)'
        keys = json.loads(
            subprocess.run(
                ["nix-instantiate", "--json", "--eval", "--strict", "-E", expr],
                capture_output=True,
                check=True,
                env=env(),
            ).stdout
        )
        path = world.secrets / file
        plain = subprocess.run(
            ["age", "--decrypt", "-i", identity, str(path)], capture_output=True, check=True
        ).stdout
        args = ["age", "--encrypt"]
        for k in keys:
            args += ["--recipient", k]
        subprocess.run([*args, "-o", str(path)], input=plain, check=True)
    return time.perf_counter() - t


def snapshot(world: World) -> Path:
    snap = world.root / "pristine"
    shutil.copytree(world.secrets, snap)
    return snap


def restore(world: World, snap: Path) -> None:
    shutil.rmtree(world.secrets)
    shutil.copytree(snap, world.secrets)


def bench_rekey(n: int, runs: int, sample: int, tmp: Path) -> dict[str, float]:
    world = World(tmp / f"rekey-{n}", n)
    world.populate()
    world.make_stale()
    snap = snapshot(world)
    ours = []
    for _ in range(runs):
        restore(world, snap)
        ours.append(run_nixseal_rekey(world))
    check = nixseal(world, "check")
    if check.returncode != 0:
        raise SystemExit(f"check after rekey failed: {check.stdout.decode()[:500]}")
    base_n = min(n, sample)
    base = []
    for _ in range(max(1, runs // 2 if n > sample else runs)):
        restore(world, snap)
        base.append(run_baseline(world, world.names[:base_n]) * n / base_n)
    return {
        "n": n,
        "nixseal": statistics.median(ours),
        "baseline": statistics.median(base),
        "baseline_sampled": float(base_n < n),
        "baseline_files": base_n,
    }


def bench_check_audit(n: int, hosts: int, runs: int, tmp: Path) -> dict[str, float]:
    world = World(tmp / f"check-{n}", n, n_hosts=hosts)
    world.populate()
    subprocess.run(["git", "init", "-q"], cwd=world.root, check=True)
    subprocess.run(["git", "add", "-A"], cwd=world.root, check=True)
    subprocess.run(
        ["git", "-c", "user.name=b", "-c", "user.email=b@example.org", "commit", "-qm", "x"],
        cwd=world.root,
        check=True,
    )
    out: dict[str, float] = {"n": n, "hosts": hosts}
    for verb in ("check", "audit"):
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            proc = nixseal(world, verb)
            times.append(time.perf_counter() - t)
            if proc.returncode != 0:
                raise SystemExit(f"{verb} failed: {proc.stdout.decode()[:300]}{proc.stderr!r}")
        out[verb] = statistics.median(times)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="100,1000")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--baseline-sample", type=int, default=200)
    args = ap.parse_args()
    for tool in ("age", "nix-instantiate", "ssh-keygen", "git"):
        if shutil.which(tool) is None:
            raise SystemExit(f"needs {tool} on PATH")
    with tempfile.TemporaryDirectory(prefix="nixseal-bench-") as d:
        tmp = Path(d)
        print("rekey: 2 admins (age), 3 hosts (ssh-ed25519) per secret; every file stale")
        print(f"{'secrets':>8} {'nixseal s':>10} {'baseline s':>11} {'ratio':>7}  note")
        for n in (int(s) for s in args.sizes.split(",")):
            r = bench_rekey(n, args.runs, args.baseline_sample, tmp)
            note = (
                f"baseline: {r['baseline_files']} files timed, extrapolated"
                if r["baseline_sampled"]
                else "baseline: all files"
            )
            ratio = r["baseline"] / r["nixseal"]
            print(f"{n:>8} {r['nixseal']:>10.3f} {r['baseline']:>11.2f} {ratio:>6.1f}x  {note}")
        c = bench_check_audit(1000, 200, args.runs, tmp)
        print("check/audit: 1000 secrets, 200 hosts, files in git (process start included)")
        print(f"  check: {c['check']:.3f} s   audit: {c['audit']:.3f} s   (median of {args.runs})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
