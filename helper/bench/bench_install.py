"""Benchmark `nixseal install` against one `age` process per file.

    python bench/bench_install.py [--secrets 1000] [--runs 5] [--baseline-runs 3]

Creates N secrets encrypted to a fresh ssh-ed25519 host key and measures,
in the same run, on the same files:
- baseline: `age -d -i KEY -o OUT FILE`, one process per file;
- a second reference: a shell script doing per secret what agenix's
  activation script does (mkdir -p of the dirname, age --decrypt to a
  temporary file under a umask, chmod, mv -f; then chown), run once;
- nixseal cold: `python -m nixseal install` into an empty root (first boot:
  every file is decrypted), interpreter start included, logging as on a
  host (one info event per secret, to a file standing in for the journal);
- nixseal warm: the same into a root holding the previous generation (a
  switch where the age files did not change);
- one secret end to end (interpreter start included);
- peak memory (ru_maxrss: the largest of the nixseal process and its
  decryption workers) at N secrets;
- pyrage's decryption cost per file in this process, and what it implies:
  the best ratio any implementation using it can reach on this machine.
Prints medians and ratios. The nixseal child gets its bytecode compiled
once into a private cache (as an installed package has it), without
touching the source tree. As root, the bench runs in a private mount
namespace with its outputs on ramfs, as on a host (/run, mountPoint);
otherwise outputs go to the temporary directory's filesystem (slower file
creation for both sides), which the output says.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

HELPER = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(HELPER))

from nixseal.age import crypto  # noqa: E402


def make_secrets(work: Path, count: int) -> tuple[Path, Path]:
    key = work / "ssh_host_ed25519_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    recipient = crypto.parse_recipient(key.with_suffix(".pub").read_text(), "bench")
    src = work / "src"
    src.mkdir()
    secrets = []
    for i in range(count):
        file = src / f"s{i:04d}.age"
        file.write_bytes(crypto.encrypt(f"value-{i}-{os.urandom(8).hex()}\n".encode(), [recipient]))
        secrets.append({"name": f"app{i % 10}/s{i:04d}", "file": str(file)})
    manifest = work / f"manifest-{count}.json"
    manifest.write_text(json.dumps({"version": 1, "identityPaths": [str(key)], "secrets": secrets}))
    return key, manifest


def child_env(work: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
    env["PYTHONPATH"] = str(HELPER)
    return env


# The development virtualenv holds nixseal as an editable install, whose
# import hook costs every start ~10 ms that an installed package does not
# pay; this launcher puts the package and its dependencies on sys.path
# directly, as an installed package would have them.
INSTALLED_LAYOUT = [
    sys.executable,
    "-S",
    "-c",
    "import sys; sys.path[:0] = sys.argv[1:3]; del sys.argv[1:3];"
    " from nixseal.cli import main; sys.exit(main())",
    str(HELPER),
    sysconfig.get_paths()["purelib"],
]
DEV_VENV = [sys.executable, "-m", "nixseal"]


def run_nixseal(
    manifest: Path, root: Path, env: dict[str, str], launcher: list[str] = DEV_VENV
) -> tuple[float, int]:
    """Wall time and peak RSS (KiB) of one `python -m nixseal install`.

    Logs as the NixOS unit does (console format, info events), into a file
    beside root that stands in for the journal.
    """
    argv = [*launcher, "install", "--manifest", str(manifest)]
    argv += ["--root", str(root), "--no-mount"]
    log = root.with_name(root.name + ".log")
    with log.open("wb") as err:
        start = time.perf_counter()
        # cwd: `python -m` puts it first on sys.path; it must be this helper's.
        proc = subprocess.Popen(argv, env=env, cwd=HELPER, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"nixseal install failed: {log.read_text()}")
    return elapsed, usage.ru_maxrss


def fresh(root: Path) -> Path:
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir()
    return root


def baseline(key: Path, files: list[str], out: Path) -> float:
    fresh(out)
    start = time.perf_counter()
    for i, file in enumerate(files):
        subprocess.run(["age", "-d", "-i", str(key), "-o", str(out / str(i)), file], check=True)
    return time.perf_counter() - start


def agenix_like(key: Path, files: list[str], out: Path) -> float:
    """One shell script doing per secret what agenix's activation script does."""
    fresh(out)
    lines = ["set -e"]
    for i, file in enumerate(files):
        path = out / f"app{i % 10}" / str(i)
        lines += [
            f'mkdir -p "$(dirname "{path}")"',
            "(",
            "  umask u=r,g=,o=",
            f'  test -f "{file}" || echo "missing {file}"',
            f'  test -d "$(dirname "{path}.tmp")" || echo "no directory"',
            f'  age --decrypt -i "{key}" -o "{path}.tmp" "{file}"',
            ")",
            f'chmod 0400 "{path}.tmp"',
            f'mv -f "{path}.tmp" "{path}"',
        ]
    lines += [f'chown 0:0 "{out / f"app{i % 10}" / str(i)}"' for i in range(len(files))]
    script = out.with_name(out.name + ".sh")
    script.write_text("\n".join(lines) + "\n")
    start = time.perf_counter()
    subprocess.run(["bash", str(script)], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def decrypt_cost(key: Path, files: list[str]) -> float:
    """pyrage's seconds per file, in this process (files already in memory)."""
    identities = crypto.load_identity_file(key)
    data = [Path(f).read_bytes() for f in files]
    runs = []
    for _ in range(3):
        start = time.perf_counter()
        for d in data:
            crypto.decrypt(d, identities, "bench")
        runs.append((time.perf_counter() - start) / len(data))
    return statistics.median(runs)


def in_private_namespace(script: str = __file__) -> bool:
    """Re-run script (this one) under `unshare --mount` when root; True inside it."""
    if os.environ.get("NIXSEAL_BENCH_NS") == "1":
        return True
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    env = {**os.environ, "NIXSEAL_BENCH_NS": "1"}
    argv = ["unshare", "--mount", sys.executable, script, *sys.argv[1:]]
    raise SystemExit(subprocess.run(argv, env=env, check=False).returncode)


@contextlib.contextmanager
def scratch(prefix: str, ramfs: bool) -> Iterator[tuple[Path, Path]]:
    """A work directory and, inside it, the outputs' directory (a ramfs when
    in a private mount namespace, as on a host)."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        work = Path(tmp)
        out = work / "out"
        out.mkdir()
        if ramfs:
            subprocess.run(["mount", "-t", "ramfs", "none", str(out)], check=True)
        try:
            yield work, out
        finally:
            if ramfs:
                subprocess.run(["umount", str(out)], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--secrets", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--baseline-runs", type=int, default=3)
    parser.add_argument("--agenix-runs", type=int, default=1, help="0: skip that reference")
    parser.add_argument("--single-runs", type=int, default=20)
    args = parser.parse_args()
    if shutil.which("age") is None:
        raise SystemExit("the age CLI is needed for the baseline")
    ramfs = in_private_namespace()
    with scratch("nixseal-bench-", ramfs) as (work, out):
        key, manifest = make_secrets(work, args.secrets)
        files = [s["file"] for s in json.loads(manifest.read_text())["secrets"]]
        one = work / "manifest-1.json"
        doc = json.loads(manifest.read_text())
        one.write_text(json.dumps({**doc, "secrets": doc["secrets"][:1]}))
        env = child_env(work)
        run_nixseal(one, fresh(out / "warmup"), env)  # fills the bytecode cache

        base = [baseline(key, files, out / "age-out") for _ in range(args.baseline_runs)]
        agenix = [agenix_like(key, files, out / "agenix") for _ in range(args.agenix_runs)]
        per_file = decrypt_cost(key, files)
        cold, rss = [], []
        for _ in range(args.runs):
            elapsed, peak = run_nixseal(manifest, fresh(out / "root"), env)
            cold.append(elapsed)
            rss.append(peak)
        warm = [run_nixseal(manifest, out / "root", env)[0] for _ in range(args.runs)]
        single = [run_nixseal(one, fresh(out / "one"), env)[0] for _ in range(args.single_runs)]
        single_installed = [
            run_nixseal(one, fresh(out / "one"), env, INSTALLED_LAYOUT)[0]
            for _ in range(args.single_runs)
        ]
        startup = []
        for _ in range(args.single_runs):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", "pass"], env=env, check=True)
            startup.append(time.perf_counter() - start)

    med = statistics.median
    n = args.secrets
    where = "ramfs" if ramfs else "the temporary directory's filesystem (not root)"
    print(f"secrets: {n} (ssh-ed25519 host key), cpus: {os.cpu_count()}, outputs on {where}")
    runs = f"({args.baseline_runs} runs)"
    print(f"baseline, one age process per file: median {med(base):8.3f} s  {runs}")
    if agenix:
        print(
            f"reference, agenix-like script:      median {med(agenix):8.3f} s  "
            f"({args.agenix_runs} runs)"
        )
    print(f"nixseal install, cold (first boot):  median {med(cold):8.3f} s  ({args.runs} runs)")
    print(f"nixseal install, warm (unchanged):   median {med(warm):8.3f} s  ({args.runs} runs)")
    print(f"ratio baseline / cold: {med(base) / med(cold):6.1f}x   (target >= 40x)")
    print(f"ratio baseline / warm: {med(base) / med(warm):6.1f}x")
    if agenix:
        print(f"ratio agenix-like / cold: {med(agenix) / med(cold):6.1f}x")
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    crypto_floor = n * per_file / (cpus or 1)
    floor = crypto_floor + med(startup)
    print(
        f"pyrage decrypt: {per_file * 1000:.3f} ms per file, {n} files over {cpus} cpus: "
        f">= {crypto_floor:.3f} s; so baseline / cold <= {med(base) / crypto_floor:.1f}x, "
        f"<= {med(base) / floor:.1f}x with interpreter start"
    )
    print(f"one secret end to end, dev venv: median {med(single) * 1000:6.1f} ms (target < 100 ms)")
    print(f"  of which interpreter start (python -c pass): {med(startup) * 1000:6.1f} ms")
    print(
        f"one secret, installed layout (no editable hook): median "
        f"{med(single_installed) * 1000:6.1f} ms"
    )
    print(f"peak memory at {n} secrets: {max(rss) / 1024:6.1f} MiB (target < 50 MiB)")


if __name__ == "__main__":
    main()
