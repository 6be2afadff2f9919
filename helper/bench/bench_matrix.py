"""The boot-cost matrix: `nixseal install` at the fleet sizes people run.

    python bench/bench_matrix.py [--sizes 1,10,50,100,1000,10000] [--runs 3]

For each size and for files with 1 stanza (the host) and 3 (the host and
two admins, as real repositories have them), in one run on the same files:
- nixseal cold (first boot: every file decrypted), warm (nothing changed)
  and one changed (a switch after one value changed), each a whole process
  as the package runs it (compiled bytecode, no editable-install hook),
  logging as a host does;
- the per-file baseline, one `age -d` process per file, and the
  agenix-style activation script (mkdir, age to a temporary file, chmod,
  mv, chown per secret). Both run on at most --baseline-max files; above
  that they are scaled linearly from that many (marked ~), because at
  10,000 secrets they take minutes and are linear in the files.
Prints a table of medians and ratios, then each target of the boot-cost
issue with its measured figure. As root it runs in a private mount
namespace with outputs on ramfs, as on a host.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from bench_install import (
    INSTALLED_LAYOUT,
    agenix_like,
    baseline,
    child_env,
    fresh,
    in_private_namespace,
    run_nixseal,
    scratch,
)

from nixseal.age import crypto

med = statistics.median


@dataclass
class Row:
    size: int
    stanzas: int
    cold: list[float] = field(default_factory=list)
    warm: list[float] = field(default_factory=list)
    changed: list[float] = field(default_factory=list)
    rss: list[int] = field(default_factory=list)
    age: float = 0.0
    agenix: float = 0.0
    scaled: bool = False  # baselines scaled from --baseline-max files

    def ratio(self, baseline: float, times: list[float]) -> float:
        return baseline / med(times)


def keys(work: Path) -> tuple[Path, list[str]]:
    """The host's ssh key, and two admins' age keys (public halves)."""
    host = work / "ssh_host_ed25519_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host)], check=True)
    admins = []
    for _ in ("alice", "bob"):
        out = subprocess.run(["age-keygen"], capture_output=True, text=True, check=True).stdout
        admins += [line.split(": ", 1)[1] for line in out.splitlines() if "public key" in line]
    return host, admins


def make(
    work: Path, host: Path, admins: list[str], size: int, stanzas: int
) -> tuple[Path, list[object]]:
    """size age files and their manifest; the admins' stanzas come first, as
    `nixseal encrypt` writes them (admins, then hosts)."""
    keys = [*admins[: stanzas - 1], host.with_suffix(".pub").read_text()]
    recipients = [crypto.parse_recipient(k, "bench") for k in keys]
    src = work / f"src-{size}-{stanzas}"
    src.mkdir()
    secrets = []
    for i in range(size):
        file = src / f"s{i:05d}.age"
        file.write_bytes(crypto.encrypt(f"value-{i}-{os.urandom(8).hex()}\n".encode(), recipients))
        secrets.append({"name": f"app{i % 10}/s{i:05d}", "file": str(file)})
    manifest = work / f"manifest-{size}-{stanzas}.json"
    manifest.write_text(
        json.dumps({"version": 1, "identityPaths": [str(host)], "secrets": secrets})
    )
    return manifest, recipients


def measure(
    row: Row,
    made: tuple[Path, list[object]],
    host: Path,
    out: Path,
    env: dict[str, str],
    args: argparse.Namespace,
) -> None:
    manifest, recipients = made

    def install(root: Path) -> float:
        elapsed, peak = run_nixseal(manifest, root, env, INSTALLED_LAYOUT)
        row.rss.append(peak)
        return elapsed

    secrets = json.loads(manifest.read_text())["secrets"]
    files = [s["file"] for s in secrets]
    for _ in range(args.runs):
        row.cold.append(install(fresh(out / "root")))
    row.warm = [install(out / "root") for _ in range(args.runs)]
    for i in range(args.runs):
        # a new value for one file: the rest are reused
        changed = Path(files[i % len(files)])
        changed.write_bytes(crypto.encrypt(f"changed-{i}\n".encode(), recipients))
        row.changed.append(install(out / "root"))
    sample = files[: args.baseline_max]
    row.scaled = len(sample) < len(files)
    scale = len(files) / len(sample)
    row.age = med([baseline(host, sample, out / "age") for _ in range(args.baseline_runs)]) * scale
    row.agenix = agenix_like(host, sample, out / "agenix") * scale


def table(rows: list[Row]) -> None:
    head = (
        f"{'secrets':>7} {'stanzas':>7} {'cold s':>8} {'warm s':>8} {'1 changed':>9} {'age s':>9} "
        f"{'agenix s':>9} {'age/cold':>8} {'age/warm':>8} {'agenix/cold':>11} {'MiB':>6}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        mark = "~" if r.scaled else " "
        print(
            f"{r.size:>7} {r.stanzas:>7} {med(r.cold):8.3f} {med(r.warm):8.3f} "
            f"{med(r.changed):9.3f} {mark}{r.age:8.3f} {mark}{r.agenix:8.3f} "
            f"{r.ratio(r.age, r.cold):7.1f}x "
            f"{r.ratio(r.age, r.warm):7.1f}x {r.ratio(r.agenix, r.cold):10.1f}x "
            f"{max(r.rss) / 1024:6.1f}"
        )


def targets(rows: list[Row]) -> None:
    def find(size: int, stanzas: int) -> Row | None:
        return next((r for r in rows if r.size == size and r.stanzas == stanzas), None)

    checks: list[tuple[str, str, bool]] = []
    if (r := find(1, 1)) is not None:
        ms = med(r.cold) * 1000
        checks.append(("1 secret, whole process, cold: <= 30 ms", f"{ms:.1f} ms", ms <= 30))
    if (r := find(10, 1)) is not None:
        a, g = r.ratio(r.age, r.cold), r.ratio(r.agenix, r.cold)
        checks.append(("10 secrets cold: >= 1.0x per-file age", f"{a:.2f}x", a >= 1.0))
        checks.append(("10 secrets cold: >= 3.5x agenix-style script", f"{g:.2f}x", g >= 3.5))
    if (r := find(100, 1)) is not None:
        a, w = r.ratio(r.age, r.cold), r.ratio(r.age, r.warm)
        checks.append(("100 secrets cold: >= 5x per-file age", f"{a:.1f}x", a >= 5))
        checks.append(("100 secrets warm: >= 8x per-file age", f"{w:.1f}x", w >= 8))
    if (r := find(1000, 3)) is not None:
        a, mib = r.ratio(r.age, r.cold), max(r.rss) / 1024
        checks.append(("1,000 secrets, 3 stanzas, cold: >= 15x per-file age", f"{a:.1f}x", a >= 15))
        checks.append(
            ("1,000 secrets, 3 stanzas: peak memory < 50 MiB", f"{mib:.1f} MiB", mib < 50)
        )
    for stanzas in (1, 3):
        if (r := find(10000, stanzas)) is not None:
            s = med(r.cold)
            checks.append(
                (f"10,000 secrets, {stanzas} stanza(s), cold: < 1.5 s", f"{s:.3f} s", s < 1.5)
            )
    print()
    for what, figure, met in checks:
        print(f"{'met ' if met else 'MISS'}  {what:<55} {figure}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,10,50,100,1000,10000")
    parser.add_argument("--stanzas", default="1,3")
    parser.add_argument("--runs", type=int, default=3, help="nixseal runs per cell")
    parser.add_argument("--baseline-runs", type=int, default=1)
    parser.add_argument("--baseline-max", type=int, default=1000)
    args = parser.parse_args()
    ramfs = in_private_namespace(__file__)
    sizes = [int(s) for s in args.sizes.split(",")]
    stanza_counts = [int(s) for s in args.stanzas.split(",")]
    rows = []
    with scratch("nixseal-matrix-", ramfs) as (work, out):
        host, admins = keys(work)
        env = child_env(work)
        for size in sizes:
            for stanzas in stanza_counts:
                made = make(work, host, admins, size, stanzas)
                if not rows:  # fills the bytecode cache
                    run_nixseal(made[0], fresh(out / "warmup"), env, INSTALLED_LAYOUT)
                row = Row(size, stanzas)
                measure(row, made, host, out, env, args)
                rows.append(row)
    where = "ramfs" if ramfs else "the temporary directory's filesystem (not root)"
    print(f"cpus: {os.cpu_count()}, outputs on {where}, nixseal medians of {args.runs} runs")
    print("~: baseline run on the first --baseline-max files and scaled linearly")
    table(rows)
    targets(rows)


if __name__ == "__main__":
    main()
