"""The secret-name and unit-name patterns, the one copy on the Python side.

The rules parser and the manifest parser both check names with these, and
the install path may import this module: it imports nothing but ``re``.
The modules' copy is ``modules/lib/names.nix``; ``tests/test_names.py``
feeds both the same strings, so that a name the build accepts is one the
helper accepts, and the other way round. Use ``fullmatch``.
"""

from __future__ import annotations

import re

# Relative path of [A-Za-z0-9._-] segments joined by "/"; a segment is never
# "." or "..", which would leave the secrets directory.
_SEGMENT = r"(?:[A-Za-z0-9_-]|[.][A-Za-z0-9_-]|[.][.][A-Za-z0-9._-])[A-Za-z0-9._-]*"
SECRET_NAME = re.compile(rf"{_SEGMENT}(?:/{_SEGMENT})*")

# nixpkgs' pattern for systemd unit names (its unitNameType).
UNIT_NAME = re.compile(
    r"[a-zA-Z0-9@%:_.\\-]+[.]"
    r"(?:service|socket|device|mount|automount|swap|target|path|timer|scope|slice)"
)
