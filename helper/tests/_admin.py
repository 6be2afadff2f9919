"""A throw-away secrets repository for the admin CLI tests.

Verbs run in process through nixseal.cli.main (the entry point's own
code), with stdin, stdout and stderr replaced, so the suite stays fast;
tests about signals run ``python -m nixseal`` as a real process instead.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from conftest import AgeKey, SshKey, make_age_key, make_ssh_key

from nixseal import cli


@dataclass
class Result:
    code: int
    out: bytes
    err: str

    @property
    def text(self) -> str:
        return self.out.decode()


class _Stdin:
    def __init__(self, data: bytes) -> None:
        self.buffer = io.BytesIO(data)

    def isatty(self) -> bool:
        return False

    def read(self) -> str:
        return self.buffer.read().decode()


def run_cli(*argv: str, stdin: bytes = b"", cwd: Path | None = None) -> Result:
    out_raw, err_raw = io.BytesIO(), io.BytesIO()
    out = io.TextIOWrapper(out_raw, encoding="utf-8", write_through=True)
    err = io.TextIOWrapper(err_raw, encoding="utf-8", write_through=True)
    saved = sys.stdin, sys.stdout, sys.stderr
    old_cwd = Path.cwd()
    sys.stdin, sys.stdout, sys.stderr = _Stdin(stdin), out, err  # type: ignore[assignment]
    try:
        if cwd is not None:
            os.chdir(cwd)
        code = cli.main(list(argv))
    finally:
        os.chdir(old_cwd)
        sys.stdin, sys.stdout, sys.stderr = saved
    return Result(code, out_raw.getvalue(), err_raw.getvalue().decode())


@dataclass
class Repo:
    root: Path
    admin: AgeKey
    hosts: dict[str, SshKey] = field(default_factory=dict)

    @property
    def secrets(self) -> Path:
        return self.root / "secrets"

    @property
    def rules(self) -> Path:
        return self.secrets / "secrets.toml"

    def age_file(self, name: str) -> Path:
        return self.secrets / f"{name}.age"

    def host(self, name: str) -> SshKey:
        if name not in self.hosts:
            self.hosts[name] = make_ssh_key(self.root / "keys", name=f"{name}_key")
        return self.hosts[name]

    def write_rules(self, secrets: dict[str, list[str]], extra: str = "", groups: str = "") -> None:
        """secrets: name -> host names (or @group); every host gets a key."""
        lines = ["version = 1", "[admins]", f'alice = "{self.admin.public}"', extra]
        wanted = {h for hs in secrets.values() for h in hs if not h.startswith("@")}
        wanted |= set(self.hosts)
        for h in sorted(wanted):
            lines += [f"[hosts.{h}]", f'key = "{self.host(h).public}"']
        if groups:
            lines += ["[groups]", groups]
        for name, hs in secrets.items():
            lines += [f'[secrets."{name}"]', "hosts = [" + ", ".join(f'"{h}"' for h in hs) + "]"]
        self.rules.write_text("\n".join(lines) + "\n")

    def run(self, *argv: str, stdin: bytes = b"", cwd: Path | None = None) -> Result:
        return run_cli("-i", str(self.admin.path), *argv, stdin=stdin, cwd=cwd or self.root)

    def encrypt(self, name: str, value: bytes) -> None:
        r = self.run("encrypt", name, stdin=value)
        assert r.code == 0, r.err

    def decrypt(self, name: str) -> bytes:
        r = self.run("decrypt", name)
        assert r.code == 0, r.err
        return r.out


def make_repo(tmp_path: Path) -> Repo:
    root = tmp_path / "repo"
    (root / "secrets").mkdir(parents=True)
    (root / "keys").mkdir()
    return Repo(root, make_age_key(root / "keys", "admin.txt"))


def age_decrypt(identity: Path, file: Path) -> bytes:
    """Decrypt with Debian's age CLI."""
    return subprocess.run(
        ["age", "-d", "-i", str(identity), str(file)], check=True, capture_output=True
    ).stdout
