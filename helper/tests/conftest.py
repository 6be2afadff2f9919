"""Fixtures shared by every test module.

Area-specific helpers live in the test module that needs them (or a
``tests/_<area>.py`` module); this file only holds what several areas use.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

HELPER_DIR = Path(__file__).resolve().parent.parent
REPO_ROOT = HELPER_DIR.parent
NIXPKGS_LIB = Path(os.environ.get("NIXPKGS_LIB", "/opt/nixpkgs-lib"))

# Tests evaluate the same flake from several processes at once; Nix's
# per-flake SQLite eval cache then reports "busy" and the lookup of an
# output fails as if it were missing, so the cache stays off.
NIX_CONFIG = "experimental-features = nix-command flakes\nsubstituters =\neval-cache = false\n"
# A normal user cannot open the system's store without a daemon (Debian's
# nix-bin has none): evaluate against a store of the user's own, which Nix
# creates on first use (sources copied there; nothing is built). Its paths
# still read /nix/store/...; on disk they are under USER_STORE.
USER_STORE: Path | None = None
if os.geteuid() != 0:
    _cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    USER_STORE = _cache / "nixseal-tests" / "nix"
    NIX_CONFIG += f"store = {USER_STORE}\n"
# Every Nix a test starts gets these settings, however it builds its environment.
os.environ["NIX_CONFIG"] = os.environ.get("NIX_CONFIG", "") + "\n" + NIX_CONFIG


LAUNCHER = HELPER_DIR / "launcher/nixseal-install.in"


def pyrage_site() -> str:
    """The directory this interpreter finds pyrage in."""
    import pyrage

    return str(Path(pyrage.__file__).resolve().parent.parent)


def write_launcher(
    path: Path, python: str, site: str, pyrage_dir: str, pyyaml_dir: str | None = None
) -> Path:
    """libexec/nixseal-install as helper/package.nix makes it, with these paths
    (PyYAML's: pyrage's unless given, as one site directory holds both here)."""
    text = LAUNCHER.read_text()
    values = {"env": "/usr/bin/env", "python": python, "sitePackages": site}
    dirs = {"pyragePackages": pyrage_dir, "pyyamlPackages": pyyaml_dir or pyrage_dir}
    for name, value in {**values, **dirs}.items():
        text = text.replace(f"@{name}@", value)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


def on_disk(text: str) -> str:
    """text with the store paths it names made the paths this process can open."""
    return text if USER_STORE is None else text.replace("/nix/store/", f"{USER_STORE}/nix/store/")


def _can_unshare() -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "--mount", "true"], check=False, capture_output=True)
    return probe.returncode == 0


IS_ROOT_NS = _can_unshare()

needs_root = pytest.mark.skipif(
    not IS_ROOT_NS, reason="needs root and unshare --mount (private mount namespace)"
)
needs_age = pytest.mark.skipif(shutil.which("age") is None, reason="needs the age CLI")
needs_nix = pytest.mark.skipif(
    shutil.which("nix-instantiate") is None or not (NIXPKGS_LIB / "lib").is_dir(),
    reason=f"needs nix-instantiate and the nixpkgs lib at NIXPKGS_LIB ({NIXPKGS_LIB})",
)


@dataclass(frozen=True)
class AgeKey:
    secret: str
    public: str
    path: Path  # identity file holding secret


@dataclass(frozen=True)
class SshKey:
    private_path: Path
    public: str  # "ssh-ed25519 AAAA... comment"


def make_age_key(directory: Path, name: str = "age-key.txt") -> AgeKey:
    from nixseal.age import crypto

    secret, public = crypto.generate_age_identity()
    path = directory / name
    path.write_text(f"# created: test\n# public key: {public}\n{secret}\n")
    path.chmod(0o600)
    return AgeKey(secret, public, path)


def make_ssh_key(directory: Path, kind: str = "ed25519", name: str | None = None) -> SshKey:
    path = directory / (name or f"ssh_host_{kind}_key")
    args = ["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", f"test-{kind}", "-f", str(path)]
    if kind == "rsa":
        args += ["-b", "2048"]
    subprocess.run(args, check=True)
    return SshKey(path, path.with_suffix(".pub").read_text().strip())


@pytest.fixture
def age_key(tmp_path: Path) -> AgeKey:
    return make_age_key(tmp_path)


@pytest.fixture
def ssh_key(tmp_path: Path) -> SshKey:
    return make_ssh_key(tmp_path)


@pytest.fixture
def nix_env(tmp_path: Path) -> dict[str, str]:
    """Environment for running Nix 2.x offline from tests."""
    env = dict(os.environ)
    env["NIX_CONFIG"] = NIX_CONFIG
    env["NIXPKGS_LIB"] = str(NIXPKGS_LIB)
    return env


@pytest.fixture
def shm_dir() -> Iterator[Path]:
    """A private directory on /dev/shm, where edits and generators keep plaintext."""
    from nixseal.repo import edit

    if (
        not Path("/dev/shm").is_dir()
        or edit.filesystem_type(Path("/dev/shm")) not in edit.MEMORY_FS
    ):
        pytest.skip("needs /dev/shm on tmpfs")
    d = Path(tempfile.mkdtemp(dir="/dev/shm", prefix="nixseal-test-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)
