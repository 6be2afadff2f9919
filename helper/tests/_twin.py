"""A host for the local twins of the VM tests: a --root directory whose
accounts come from the evaluated configuration, a private mount namespace
that lives for the whole scenario (so the ramfs of each generation
survives from one switch to the next), and the scenario's vocabulary of
checks, in the same words as checks/vm/driver.nix.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conftest import HELPER_DIR, REPO_ROOT

SCENARIO_DIR = REPO_ROOT / "checks/scenarios"
TEST_KEYS = REPO_ROOT / "secrets/test-keys"  # TEST-ONLY KEYS, committed on purpose

# Runs inside the namespace: what a path holds, as root sees it there.
_SNAPSHOT = r"""
import json, os, sys
out = {}
for p in sys.argv[1:]:
    try:
        st = os.stat(p)
        with open(p, "rb") as f:
            body = f.read().decode("utf-8", "replace")
    except OSError:
        out[p] = None
        continue
    link = os.readlink(p) if os.path.islink(p) else None
    out[p] = {"mode": st.st_mode & 0o7777, "uid": st.st_uid, "gid": st.st_gid,
              "content": body, "link": link}
print(json.dumps(out))
"""


def load_scenarios() -> dict[str, dict[str, Any]]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(SCENARIO_DIR.glob("*.json"))}


def evaluate(
    env: dict[str, str],
    nixseal_out: str | None = None,
    modules: list[str] | None = None,
    only: list[str] | None = None,
) -> dict[str, Any]:
    """Every scenario's systems, evaluated offline (files copied into the store).

    nixseal_out: the nixseal package's path that units run the helper from;
    modules: NixOS modules (Nix text) added to every system; only: these
    scenarios alone.
    """
    extra = ["--argstr", "nixsealOutPath", nixseal_out] if nixseal_out else []
    if modules:
        extra += ["--arg", "extraModules", "[ " + " ".join(f"({m})" for m in modules) + " ]"]
    if only:
        extra += ["--arg", "only", "[ " + " ".join(f'"{n}"' for n in only) + " ]"]
    proc = subprocess.run(
        [
            *("nix-instantiate", "--eval", "--read-write-mode", "--strict", "--json"),
            *(str(SCENARIO_DIR / "evaluate.nix"), "--argstr", "libPath", env["NIXPKGS_LIB"]),
            *extra,
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


@dataclass
class Run:
    code: int
    err: str

    @property
    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.err.splitlines() if line.startswith("{")]

    def signalled(self, action: str) -> list[str]:
        done = [e for e in self.events if e["event"] == "install finished"]
        return [u for e in done for u in e.get("signalled", {}).get(action, [])]

    def failed(self) -> list[str]:
        return [e["name"] for e in self.events if e["event"] == "failed"]


class Namespace:
    """A private mount namespace kept alive by a sleeping process.

    A tmpfs is mounted on <root>/run in it, so nothing a twin decrypts
    reaches persistent disk, and mounts made by `nixseal install` (a ramfs
    per mount point) outlive each run, as they do on a host.
    """

    def __init__(self, root: Path) -> None:
        (root / "run").mkdir(parents=True, exist_ok=True)
        script = 'mount -t tmpfs -o mode=0755 nixseal-twin "$1/run" && echo ready && exec sleep 900'
        self.proc = subprocess.Popen(
            ["unshare", "--mount", "sh", "-c", script, "sh", str(root)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline().strip() == "ready", "tmpfs mount failed"

    def run(
        self, argv: list[str], env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        cmd = ["nsenter", "-t", str(self.proc.pid), "-m", "--", *argv]
        full_env = {**os.environ, "PYTHONPATH": str(HELPER_DIR), **(env or {})}
        return subprocess.run(cmd, env=full_env, capture_output=True, text=True, check=False)

    def snapshot(self, paths: list[str]) -> dict[str, Any]:
        proc = self.run([sys.executable, "-c", _SNAPSHOT, *paths])
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)  # type: ignore[no-any-return]

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


def write_manifest(path: Path, manifest: dict[str, Any], root: Path) -> Path:
    """The evaluated manifest, with identity paths inside the twin's rootfs
    (where the twin placed the host's test key, as the VM test does)."""
    doc = dict(manifest)
    doc["identityPaths"] = [str(root) + p for p in manifest["identityPaths"]]
    path.write_text(json.dumps(doc))
    return path


def place_key(src: Path, dest: Path, uid: int = 0, gid: int = 0) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)
    os.chown(dest, uid, gid)
    dest.chmod(0o400)


def committed_key(rel: str) -> Path:
    """A scenario's key file: only ever one of the committed test keys."""
    path = REPO_ROOT / rel
    assert path.parent == TEST_KEYS, f"{rel}: scenarios use only the committed test keys"
    return path


def run_here(argv: list[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(HELPER_DIR)}
    return subprocess.run(argv, env=env, capture_output=True, text=True, check=False)


def nixseal(*args: str) -> list[str]:
    return [sys.executable, "-m", "nixseal", "--log-format", "json", *args]


def password_matches(password: str, crypted: str) -> bool:
    """Does a SHA-crypt hash ($6$salt$...) belong to this password?"""
    _, scheme, salt, _ = crypted.split("$", 3)
    proc = subprocess.run(
        ["openssl", "passwd", f"-{scheme}", "-salt", salt, password],
        capture_output=True,
        text=True,
        check=True,
    )
    return proc.stdout.strip() == crypted
