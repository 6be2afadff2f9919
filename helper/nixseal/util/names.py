"""Secret names, unit names and launchd labels: the one copy of their rules on the Python side.

The rules parser and the manifest parser both check names with these. The
modules' copy is ``modules/lib/names.nix`` (as regular expressions);
``tests/test_names.py`` feeds both the same strings, so that a name the
build accepts is one the helper accepts, and the other way round. Plain
string tests rather than ``re``: the install path checks every name at
every boot, and importing re costs it about 8 ms.
"""

from __future__ import annotations

SEGMENT_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-"
# nixpkgs' unitNameType: [a-zA-Z0-9@%:_.\-]+[.](service|socket|...)
_UNIT_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789@%:_.\\-"
_UNIT_TYPES = frozenset(
    [
        *("service", "socket", "device", "mount", "automount", "swap"),
        *("target", "path", "timer", "scope", "slice"),
    ]
)
# A launchd job's label (macOS), as restartUnits name them there: reverse-DNS
# words such as "org.nixos.nginx" (Homebrew's: "homebrew.mxcl.postgresql@16").
# Never a "/", since it follows a domain in launchctl's service targets
# (system/<label>), and never ".", "-" or "@" first.
_LABEL_CHARS = SEGMENT_CHARS + "@"


def only(text: str, chars: str) -> bool:
    """Whether text is not empty and every character of it is one of chars."""
    return bool(text) and not text.strip(chars)


def is_segment(text: str) -> bool:
    """One segment of a secret name: [A-Za-z0-9._-]+, never "." or ".."
    (which would leave the secrets directory)."""
    return only(text, SEGMENT_CHARS) and text not in (".", "..")


def is_secret_name(text: str) -> bool:
    """A relative path of segments joined by "/"."""
    return all(is_segment(s) for s in text.split("/"))


def is_unit_name(text: str) -> bool:
    stem, dot, kind = text.rpartition(".")
    return bool(dot) and kind in _UNIT_TYPES and only(stem, _UNIT_CHARS)


def is_launchd_label(text: str) -> bool:
    return only(text, _LABEL_CHARS) and text[0] not in ".-@"
