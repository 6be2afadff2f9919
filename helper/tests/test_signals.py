"""SIGINT and SIGTERM at any instant: one line, exit 130 or 143, no traceback.

Two attacks, both as real processes:
- at random instants from the exec of the launcher to the end of an
  install (interpreter start-up, imports, decryption, the switch), over
  many runs, through the package's launcher (Python started with the two
  signals blocked) and through `python -m nixseal` behind the same block;
  every run must end with one line and 128+N, or finish normally, and
  leave a complete generation live;
- deterministically, in the middle of each import the install makes: an
  import hook sends the signal as the module starts to load.
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _activation import IMPORTED, Scene, make_scene
from conftest import HELPER_DIR, pyrage_site, write_launcher

BUDGET = 5.0  # seconds of random runs per signal
LINE = re.compile(r"nixseal( install)?: (interrupted|terminated)")
NOISE = ("Traceback", "Exception ignored", "Fatal Python error", "KeyboardInterrupt")
COUNT = 30
BLOCKED = ["env", "--block-signal=INT,TERM", sys.executable]


def launcher(tmp: Path) -> Path:
    """What the package installs as bin/nixseal: Python behind `env --block-signal`."""
    script = tmp / "bin/nixseal"
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(
        f"#!/usr/bin/env -S --block-signal=INT,TERM {sys.executable}\n"
        "import sys\n"
        "from nixseal.cli import main\n"
        "sys.exit(main())\n"
    )
    script.chmod(0o755)
    return script


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(HELPER_DIR)}


def _versions(scene: Scene) -> set[str]:
    return {scene.live(f"s{i}").read_text().split("-")[0] for i in range(COUNT)}


@pytest.fixture
def scene(tmp_path: Path) -> Scene:
    s = make_scene(tmp_path, None)
    for i in range(COUNT):
        s.add(f"s{i}", f"0-{i}".encode(), restartUnits=[f"s{i}.service"])
    s.write()
    return s


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_at_a_random_instant_is_one_line(scene: Scene, sig: signal.Signals) -> None:
    script = launcher(scene.tmp)
    blocked = [*BLOCKED, "-m", "nixseal"]
    tail = ["--log-format", "json", "install", "--manifest", str(scene.tmp / "manifest.json")]
    tail += ["--root", str(scene.root), "--no-mount"]
    lean = write_launcher(
        scene.tmp / "libexec/nixseal-install", sys.executable, str(HELPER_DIR), pyrage_site()
    )
    lean_tail = [t for t in tail if t != "install"]
    start = time.monotonic()
    subprocess.run([str(script), *tail], env=_env(), check=True, capture_output=True)
    full = time.monotonic() - start  # a whole run, signal-free
    rng = random.Random(f"signals-{sig}")
    counts = {"interrupted": 0, "finished": 0, "before any code": 0}
    version = 0
    deadline = time.monotonic() + BUDGET
    while time.monotonic() < deadline:
        version += 1
        for i in range(COUNT):
            scene.set_value(f"s{i}", f"{version}-{i}".encode())
        # bin/nixseal, env and python by hand, libexec/nixseal-install (the verb is its own)
        argv = [[str(script), *tail], [*blocked, *tail], [str(lean), *lean_tail]][version % 3]
        delay = rng.uniform(0, full * 1.1)
        proc = subprocess.Popen(argv, env=_env(), stderr=subprocess.PIPE, text=True)
        time.sleep(delay)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
        assert not any(n in err for n in NOISE), (delay, err)
        lines = err.splitlines()
        if proc.returncode == 128 + sig:
            said = [line for line in lines if LINE.fullmatch(line)]
            assert len(said) == 1 and lines[-1] == said[0], (delay, err)
            assert said[0].endswith("interrupted" if sig == signal.SIGINT else "terminated")
            counts["interrupted"] += 1
        elif proc.returncode == -sig and not err:
            counts["before any code"] += 1  # in the exec of env itself
        else:
            # done before the signal (or during the interpreter's exit)
            assert proc.returncode in (0, -sig), (delay, proc.returncode, err)
            assert '"install finished"' in err, err
            counts["finished"] += 1
        # a complete generation is live: every file of one version, old or new
        if scene.live().exists():
            assert len(_versions(scene)) == 1, (delay, _versions(scene))
    print(f"signal {sig.name}: {version} runs, {counts}")
    assert counts["interrupted"] >= version // 3, counts
    proc = subprocess.run(
        [str(script), *tail], env=_env(), capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert _versions(scene) == {str(version)}


# The hook, in the child: sends the signal as TARGET starts loading.
HOOK = """
import os, sys
TARGET, SIG = sys.argv.pop(1), int(sys.argv.pop(1))
class Hook:
    @staticmethod
    def find_spec(name, path=None, target=None):
        if name == TARGET:
            os.kill(os.getpid(), SIG)
        return None
sys.meta_path.insert(0, Hook)
sys.argv[0] = "nixseal"
from nixseal.cli import main
sys.exit(main())
"""


def test_a_signal_in_the_middle_of_any_import_is_one_line(scene: Scene) -> None:
    tail = ["--log-format", "json", "install", "--manifest", str(scene.tmp / "manifest.json")]
    tail += ["--root", str(scene.root), "--no-mount"]
    # every module the install imports (it decrypts: the age file changed)
    scene.set_value("s0", b"x-0")
    listing = subprocess.run(
        [sys.executable, "-c", IMPORTED, *tail],
        env=_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    modules = listing.stdout.split()
    # each newly imported package once (its outermost new module), and
    # every module of nixseal
    new = set(modules)

    def outermost(name: str) -> str:
        parts = name.split(".")
        return next(
            ".".join(parts[:i]) for i in range(1, len(parts) + 1) if ".".join(parts[:i]) in new
        )

    tops = sorted({outermost(m) for m in modules} | {m for m in modules if "nixseal" in m})
    expected = {"nixseal.cli", "nixseal.engine.activation", "nixseal.util.events", "pyrage"}
    assert expected <= set(tops)
    for n, module in enumerate(tops):
        sig = (signal.SIGINT, signal.SIGTERM)[n % 2]
        scene.set_value("s0", f"{n}-0".encode())
        proc = subprocess.run(
            # blocked as the package's launcher does: for "nixseal" itself the
            # signal comes before the package's first statement
            [*BLOCKED, "-c", HOOK, module, str(int(sig)), *tail],
            env=_env(),
            check=False,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 128 + sig, (module, proc.returncode, proc.stderr)
        assert not any(noise in proc.stderr for noise in NOISE), (module, proc.stderr)
        said = [line for line in proc.stderr.splitlines() if LINE.fullmatch(line)]
        assert len(said) == 1 and proc.stderr.splitlines()[-1] == said[0], (module, proc.stderr)
    print(f"{len(tops)} imports interrupted")


# In the child: the signal arrives while pyrage initialises, inside the
# Python code its Rust initialisation runs (an exception there panics).
AUDIT = """
import os, sys
SIG = int(sys.argv.pop(1))
fired = []
def hook(event, args):
    # pyrage compiles and runs "import sys; sys.modules[...] = ..." as it
    # initialises: the signal is handled in the first bytecode of that code
    if event == "compile" and not fired and b"sys.modules['pyrage.x25519']" in args[0]:
        fired.append(1)
        os.kill(os.getpid(), SIG)
sys.addaudithook(hook)
sys.argv[0] = "nixseal"
from nixseal.cli import main
code = main()
sys.exit(code if fired else 99)
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_inside_an_extensions_initialisation_is_one_line(
    scene: Scene, sig: signal.Signals
) -> None:
    tail = ["--log-format", "json", "install", "--manifest", str(scene.tmp / "manifest.json")]
    tail += ["--root", str(scene.root), "--no-mount"]
    proc = subprocess.run(
        [sys.executable, "-c", AUDIT, str(int(sig)), *tail],
        env=_env(),
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 128 + sig, (proc.returncode, proc.stderr)
    assert not any(n in proc.stderr for n in (*NOISE, "panicked")), proc.stderr
    assert proc.stderr.splitlines()[-1] == "nixseal install: " + (
        "interrupted" if sig == signal.SIGINT else "terminated"
    )


# In the child: the signal arrives between a log line and its newline (print
# writes them apart), in a verb and after it.
HALF_LINE = """
import os, sys
SIG, WHEN = int(sys.argv.pop(1)), sys.argv.pop(1)
sys.argv[0] = "nixseal"
from nixseal.util import signals
from nixseal.cli import main
write = signals._WholeLines.write
def half(self, text):
    n = write(self, text)
    if not text.endswith("\\n") and WHEN in text:
        os.kill(os.getpid(), SIG)
    return n
signals._WholeLines.write = half
sys.exit(main())
"""


@pytest.mark.parametrize("when", ['"installed"', "error:"])
def test_a_signal_between_a_line_and_its_newline_starts_a_line_of_its_own(
    scene: Scene, when: str
) -> None:
    tail = ["--log-format", "json", "install", "--manifest", str(scene.tmp / "manifest.json")]
    tail += ["--root", str(scene.root), "--no-mount"]
    if when == "error:":  # after the verb: its error line, then the signal's
        tail[-2] = str(scene.root / "nowhere")
    proc = subprocess.run(
        [sys.executable, "-c", HALF_LINE, str(int(signal.SIGTERM)), when, *tail],
        env=_env(),
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = proc.stderr.splitlines()
    assert proc.returncode == 143, proc.stderr
    assert lines[-1] == "nixseal install: terminated", proc.stderr
    assert when in lines[-2] and lines[-2].endswith(("}", "not a directory")), proc.stderr
