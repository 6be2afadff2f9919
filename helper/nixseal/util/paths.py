"""Paths as messages show them."""

from __future__ import annotations

import os
from pathlib import Path


def display_path(path: Path) -> str:
    """A path as the user would type it: relative to the cwd when below it."""
    try:
        rel = os.path.relpath(path)
    except (OSError, ValueError):
        return str(path)
    # Outside the cwd a relative path ("../../tmp/x") only confuses.
    return str(path) if rel == ".." or rel.startswith("../") else rel
