"""Paths as messages show them."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path


def display_path(path: Path) -> str:
    """A path as the user would type it: relative to the cwd when below it."""
    try:
        rel = os.path.relpath(path)
    except (OSError, ValueError):
        return str(path)
    # Outside the cwd a relative path ("../../tmp/x") only confuses.
    return str(path) if rel == ".." or rel.startswith("../") else rel


def home_relative(path: str) -> str:
    """path under the home directory as ~/..., as a shell expands it."""
    home = os.environ.get("HOME", "").rstrip("/")
    return "~" + path[len(home) :] if home and path.startswith(home + "/") else path
