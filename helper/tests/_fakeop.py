"""The stand-in ``op`` (tests/fake_op/op) and a 1Password account for it.

install() puts the fake first on PATH for the test's process (verbs run
in process, and op.py runs ``op`` as a child that inherits the
environment), signs it in with a service-account token, and points it at a
vault file outside the secrets repository: that file plays 1Password, the
one place outside age files where values may live.
"""

from __future__ import annotations

import base64
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

FAKE_OP_DIR = Path(__file__).resolve().parent / "fake_op"
PKCS8_ED25519_PREFIX = bytes.fromhex("302e020100300506032b657004220420")


@dataclass
class FakeOp:
    dir: Path
    monkeypatch: pytest.MonkeyPatch

    @property
    def vault_file(self) -> Path:
        return self.dir / "vault.json"

    @property
    def log_file(self) -> Path:
        return self.dir / "calls.jsonl"

    def data(self) -> dict[str, Any]:
        if not self.vault_file.exists():
            return {"vaults": []}
        result: dict[str, Any] = json.loads(self.vault_file.read_text())
        return result

    def save(self, data: dict[str, Any]) -> None:
        self.vault_file.write_text(json.dumps(data, indent=2))

    def add_item(
        self,
        vault: str,
        title: str,
        fields: dict[str, str],
        category: str = "PASSWORD",
        section: str | None = None,
    ) -> dict[str, Any]:
        """An item whose fields (label -> value) are concealed, optionally in one section."""
        data = self.data()
        vaults = data.setdefault("vaults", [])
        v = next((x for x in vaults if x["name"] == vault), None)
        if v is None:
            v = {"id": f"v{len(vaults)}", "name": vault, "items": []}
            vaults.append(v)
        item: dict[str, Any] = {
            "id": f"item{sum(len(x['items']) for x in vaults)}",
            "title": title,
            "version": 1,
            "category": category,
            "sections": [{"id": "s1", "label": section}] if section else [],
            "fields": [],
        }
        for i, (label, value) in enumerate(fields.items()):
            f: dict[str, Any] = {"id": f"f{i}", "type": "CONCEALED", "label": label, "value": value}
            if section:
                f["section"] = {"id": "s1", "label": section}
            item["fields"].append(f)
        v["items"].append(item)
        self.save(data)
        return item

    def add_ssh_key_item(self, vault: str, title: str, seed: bytes, openssh: bytes) -> None:
        """An SSH Key item: "private key" reads as PKCS#8 unless ?ssh-format=openssh."""
        der = PKCS8_ED25519_PREFIX + seed
        pkcs8 = (
            "-----BEGIN PRIVATE KEY-----\n"
            + base64.b64encode(der).decode()
            + "\n-----END PRIVATE KEY-----\n"
        )
        item = self.add_item(vault, title, {"private key": pkcs8}, category="SSH_KEY")
        data = self.data()
        for v in data["vaults"]:
            for it in v["items"]:
                if it["id"] == item["id"]:
                    it["fields"][0]["ssh_formats"] = {"openssh": {"value": openssh.decode()}}
        self.save(data)

    def value(self, vault: str, title: str, label: str) -> str:
        for v in self.data()["vaults"]:
            if v["name"] != vault:
                continue
            for it in v["items"]:
                if it["title"] == title:
                    for f in it["fields"]:
                        if f["label"] == label:
                            return str(f["value"])
        raise KeyError(f"{vault}/{title}/{label}")

    def calls(self) -> list[list[str]]:
        if not self.log_file.exists():
            return []
        return [json.loads(line)["argv"] for line in self.log_file.read_text().splitlines()]

    def stdin_sizes(self) -> list[int]:
        if not self.log_file.exists():
            return []
        return [json.loads(line)["stdin"] for line in self.log_file.read_text().splitlines()]

    def sign_out(self) -> None:
        self.monkeypatch.delenv("OP_SERVICE_ACCOUNT_TOKEN", raising=False)

    def uninstall(self) -> None:
        """No op on PATH at all."""
        self.monkeypatch.setenv("PATH", str(self.dir / "empty-bin"))


def put_on_path(monkeypatch: pytest.MonkeyPatch, script: Path, bin_dir: Path) -> None:
    """Copy a stand-in executable into bin_dir, first on PATH, run by this Python.

    Its shebang is rewritten to sys.executable: build sandboxes (Nix) have
    no /usr/bin/env.
    """
    bin_dir.mkdir(parents=True, exist_ok=True)
    text = script.read_text().split("\n", 1)[1]
    target = bin_dir / script.name
    target.write_text(f"#!{sys.executable}\n{text}")
    target.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")


def install(monkeypatch: pytest.MonkeyPatch, directory: Path) -> FakeOp:
    directory.mkdir(parents=True, exist_ok=True)
    fake = FakeOp(directory, monkeypatch)
    put_on_path(monkeypatch, FAKE_OP_DIR / "op", directory / "bin")
    monkeypatch.setenv("FAKE_OP_VAULT", str(fake.vault_file))
    monkeypatch.setenv("FAKE_OP_LOG", str(fake.log_file))
    for key in list(os.environ):
        if key.startswith("OP_SESSION_"):
            monkeypatch.delenv(key)
    monkeypatch.delenv("FAKE_OP_SIGNED_OUT", raising=False)
    monkeypatch.setenv("OP_SERVICE_ACCOUNT_TOKEN", "ops_test_token")
    return fake


def files_containing(needle: bytes, *roots: Path) -> list[Path]:
    """Every regular file under roots whose bytes contain needle."""
    hits = []
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file() and needle in path.read_bytes():
                hits.append(path)
    return hits


def write_rules(repo: Any, secrets: dict[str, str], hosts: tuple[str, ...] = ("web1",)) -> None:
    """A rules file for an _admin.Repo; secrets: name -> extra TOML lines of its table."""
    lines = ["version = 1", "[admins]", f'alice = "{repo.admin.public}"']
    for h in hosts:
        lines += [f"[hosts.{h}]", f'key = "{repo.host(h).public}"']
    host_list = ", ".join(f'"{h}"' for h in hosts)
    for name, extra in secrets.items():
        lines += [f'[secrets."{name}"]', f"hosts = [{host_list}]", extra]
    repo.rules.write_text("\n".join(lines) + "\n")


def private_tmpdir(monkeypatch: pytest.MonkeyPatch, directory: Path) -> Path:
    """Point TMPDIR (and tempfile) at directory, so tests can search what lands there."""
    import tempfile

    directory.mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("TMPDIR", str(directory))
    monkeypatch.setattr(tempfile, "tempdir", None)
    return directory
