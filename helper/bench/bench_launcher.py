"""What the package's way of starting `nixseal install` costs every boot.

    python bench/bench_launcher.py [--runs 60] [--dependencies 8]

A one-secret install into a fresh root, started two ways, interleaved on
the same files:
- wrapped: as nixpkgs wraps a Python program's bin/ script, standing in for
  bin/nixseal: a shell script that sets PATH and PYTHONNOUSERSITE and execs
  the wrapped script, which adds one site directory per dependency of the
  whole package (site.addsitedir, with functools, as nixpkgs' wrapper line
  does; --dependencies of them), then runs the entry point as the pypa
  installer writes it (which imports re). The interpreter's own site
  start-up (its site-packages, sitecustomize) is left out (-S), so this is
  a lower bound of the real wrapper's cost;
- launcher: libexec/nixseal-install as helper/package.nix makes it from
  launcher/nixseal-install.in (`python -I -S`, the package and pyrage on
  the path).
Both go through `env --block-signal` as the package's scripts do. Prints
the medians, the difference and the ratio.
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

HELPER = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(HELPER))

from bench_install import child_env, make_secrets  # noqa: E402

ENV = shutil.which("env") or "/usr/bin/env"


def launcher(out: Path, pyrage_dir: str) -> Path:
    """libexec/nixseal-install, filled in as package.nix's postFixup does."""
    text = (HELPER / "launcher/nixseal-install.in").read_text()
    values = {"env": ENV, "python": sys.executable, "sitePackages": str(HELPER)}
    for name, value in {**values, "pyragePackages": pyrage_dir}.items():
        text = text.replace(f"@{name}@", value)
    path = out / "libexec/nixseal-install"
    path.parent.mkdir(parents=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


def wrapped(out: Path, pyrage_dir: str, dependencies: int) -> Path:
    """bin/nixseal as nixpkgs' wrapPythonPrograms leaves a Python program."""
    sites = [str(HELPER), pyrage_dir]
    for i in range(dependencies - 1):  # structlog, cryptography, cffi, ...: empty here
        site = out / f"dep{i}/lib/site-packages"
        site.mkdir(parents=True)
        sites.append(str(site))
    script = out / "bin/.nixseal-wrapped"
    script.parent.mkdir(parents=True)
    script.write_text(
        f"#!{ENV} -S --block-signal=INT,TERM {sys.executable} -S\n"
        "import sys, site, functools\n"
        f"sys.argv[0] = 'nixseal'\n"
        f"functools.reduce(lambda known, p: site.addsitedir(p, known), {sites!r}, set())\n"
        "import re\n"
        "from nixseal.cli import main\n"
        "if __name__ == '__main__':\n"
        "    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])\n"
        "    sys.exit(main())\n"
    )
    script.chmod(0o755)
    shell = out / "bin/nixseal"
    shell.write_text(
        "#! /bin/bash -e\n"
        f"export PATH='{os.path.dirname(sys.executable)}'${{PATH:+':'}}$PATH\n"
        "export PYTHONNOUSERSITE='true'\n"
        f'exec -a "$0" "{script}" "$@"\n'
    )
    shell.chmod(0o755)
    return shell


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=60)
    parser.add_argument("--dependencies", type=int, default=8)
    args = parser.parse_args()
    import pyrage

    pyrage_dir = str(Path(pyrage.__file__).resolve().parent.parent)
    with tempfile.TemporaryDirectory(prefix="nixseal-bench-launcher-") as tmp:
        work = Path(tmp)
        _, manifest = make_secrets(work, 1)
        env = child_env(work)
        env.pop("PYTHONPATH", None)  # each way finds the package on its own
        ways = {
            "wrapped": [str(wrapped(work / "wrapped", pyrage_dir, args.dependencies)), "install"],
            "launcher": [str(launcher(work / "launcher", pyrage_dir))],
        }
        times: dict[str, list[float]] = {name: [] for name in ways}
        for i in range(args.runs + 2):
            order = list(ways.items()) if i % 2 else list(reversed(ways.items()))
            for name, argv in order:
                root = work / f"root-{name}"
                shutil.rmtree(root, ignore_errors=True)
                root.mkdir()
                cmd = [*argv, "--manifest", str(manifest), "--root", str(root), "--no-mount"]
                start = time.perf_counter()
                subprocess.run(
                    cmd, env=env, stdout=subprocess.DEVNULL, check=True, stderr=subprocess.DEVNULL
                )
                if i >= 2:  # the first two compile the bytecode
                    times[name].append(time.perf_counter() - start)
    med = {name: statistics.median(t) * 1000 for name, t in times.items()}
    print(f"one secret, cold, {args.runs} interleaved runs each")
    print(f"  wrapped (bin/nixseal, {args.dependencies} site dirs): {med['wrapped']:6.1f} ms")
    print(f"  launcher (libexec/nixseal-install):       {med['launcher']:6.1f} ms")
    print(
        f"  the wrapper costs {med['wrapped'] - med['launcher']:.1f} ms more;"
        f" the launcher takes {med['launcher'] / med['wrapped']:.2f}x the wrapped time"
    )


if __name__ == "__main__":
    main()
