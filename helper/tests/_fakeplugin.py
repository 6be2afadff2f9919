"""Keys for the stand-in age plugin tests/fake_age_plugin/age-plugin-fake."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

import pytest
from _fakeop import put_on_path

FAKE_PLUGIN_DIR = Path(__file__).resolve().parent / "fake_age_plugin"
_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_GEN = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)


def _polymod(values: list[int]) -> int:
    chk = 1
    for v in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ v
        for i in range(5):
            if (top >> i) & 1:
                chk ^= _GEN[i]
    return chk


def bech32(hrp: str, data: bytes) -> str:
    """BIP 173 bech32 (what age uses, without the length limit)."""
    acc = bits = 0
    five: list[int] = []
    for b in data:
        acc = (acc << 8) | b
        bits += 8
        while bits >= 5:
            bits -= 5
            five.append((acc >> bits) & 31)
    if bits:
        five.append((acc << (5 - bits)) & 31)
    expanded = [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]
    pm = _polymod(expanded + five + [0] * 6) ^ 1
    check = [(pm >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(_CHARSET[d] for d in five + check)


@dataclass(frozen=True)
class PluginKey:
    recipient: str  # age1fake1...
    identity: str  # AGE-PLUGIN-FAKE-1...


def make_plugin_key() -> PluginKey:
    raw = secrets.token_bytes(32)
    return PluginKey(bech32("age1fake", raw), bech32("age-plugin-fake-", raw).upper())


def install_plugin(monkeypatch: pytest.MonkeyPatch, log: Path, pin: str) -> None:
    put_on_path(monkeypatch, FAKE_PLUGIN_DIR / "age-plugin-fake", log.parent / "plugin-bin")
    monkeypatch.setenv("FAKE_PLUGIN_LOG", str(log))
    monkeypatch.setenv("FAKE_PLUGIN_PIN", pin)
