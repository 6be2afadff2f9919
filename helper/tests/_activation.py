"""A scratch host for activation tests: a --root directory with accounts,
age files encrypted to a host key, a manifest, and ways to run the helper.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import HELPER_DIR, SshKey, make_ssh_key

from nixseal import cli
from nixseal.age import crypto

PASSWD = "root:x:0:0::/root:/bin/sh\nalice:x:1234:1234::/home/alice:/bin/sh\nbob:x:1300:100::/b:/bin/sh\n"
GROUP = "root:x:0:\nusers:x:100:\nkeys:x:96:\nalice:x:1234:\nweb:x:2000:alice\n"


# `nixseal` with the filesystem failpoint set: SIGKILL before change k.
KILL_AT_STEP = (
    "import os, signal, sys; from nixseal import cli; from nixseal.util import safepath;"
    " safepath.failpoint = lambda n: os.kill(os.getpid(), signal.SIGKILL) if n == {k} else None;"
    " sys.exit(cli.main(sys.argv[1:]))"
)

# `nixseal` that prints, on stdout, every module the run imported.
IMPORTED = """
import sys
before = set(sys.modules)
sys.argv[0] = "nixseal"
from nixseal.cli import main
try:
    main()
finally:
    print(" ".join(sorted(set(sys.modules) - before)))
"""


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def events(self) -> list[dict[str, Any]]:
        """JSON log lines (with --log-format json)."""
        return [json.loads(line) for line in self.err.splitlines() if line.startswith("{")]

    def events_named(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event"] == name]


@dataclass
class Scene:
    tmp: Path
    capsys: pytest.CaptureFixture[str] | None
    key: SshKey
    root: Path
    src: Path
    doc: dict[str, Any] = field(default_factory=dict)

    @property
    def secrets(self) -> list[dict[str, Any]]:
        return self.doc["secrets"]  # type: ignore[no-any-return]

    def add(self, name: str, value: bytes, **fields: Any) -> dict[str, Any]:
        """Encrypt value to the host key and declare it (fields override)."""
        file = self.src / f"{name.replace('/', '_')}.age"
        self.encrypt(file, value)
        entry = {"name": name, "file": str(file), **fields}
        self.secrets.append(entry)
        return entry

    def encrypt(self, file: Path, value: bytes) -> None:
        file.write_bytes(crypto.encrypt(value, [crypto.parse_recipient(self.key.public, "t")]))

    def set_value(self, name: str, value: bytes) -> None:
        entry = next(s for s in self.secrets if s["name"] == name)
        self.encrypt(Path(entry["file"]), value)

    def template(self, name: str, content: str, **fields: Any) -> dict[str, Any]:
        entry = {"name": name, "content": content, **fields}
        self.doc.setdefault("templates", []).append(entry)
        return entry

    def write(self) -> Path:
        path = self.tmp / "manifest.json"
        path.write_text(json.dumps(self.doc))
        return path

    def install(self, *args: str, fmt: str = "json") -> Result:
        """nixseal install in this process (fast); --no-mount unless asked otherwise."""
        argv = ["--log-format", fmt, "install", "--manifest", str(self.write())]
        argv += ["--root", str(self.root), *(args or ("--no-mount",))]
        return self.cli(argv)

    def cli(self, argv: list[str]) -> Result:
        assert self.capsys is not None
        self.capsys.readouterr()
        code = cli.main(argv)
        out, err = self.capsys.readouterr()
        return Result(code, out, err)

    def run_process(
        self,
        *args: str,
        env: dict[str, str] | None = None,
        unshare: bool = False,
        failpoint: int | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """nixseal install as its own process (for kills, locks, mounts);
        with failpoint=k it kills itself just before its k-th filesystem change."""
        argv = [sys.executable, "-m", "nixseal", "--log-format", "json", "install"]
        if failpoint is not None:
            argv[1:3] = ["-c", KILL_AT_STEP.format(k=failpoint)]
        argv += ["--manifest", str(self.write()), "--root", str(self.root), *args]
        if unshare:
            argv = ["unshare", "--mount", *argv]
        full_env = {**os.environ, **(env or {})}
        full_env["PYTHONPATH"] = str(HELPER_DIR)
        return subprocess.run(argv, env=full_env, capture_output=True, text=True, check=False)

    # -- looking at the result ----------------------------------------------

    def live(self, rel: str = "") -> Path:
        return self.root / "run/secrets" / rel if rel else self.root / "run/secrets"

    def generations(self) -> list[int]:
        mp = self.root / "run/secrets.d"
        return sorted(int(p.name) for p in mp.iterdir() if p.name.isdigit())

    def current(self) -> int:
        return int(os.readlink(self.live()).rsplit("/", 1)[-1])

    def read_list(self, which: str) -> list[str]:
        path = self.root / f"run/nixos/activation-{which}-list"
        return path.read_text().split() if path.exists() else []

    def clear_lists(self) -> None:
        for which in ("restart", "reload"):
            (self.root / f"run/nixos/activation-{which}-list").unlink(missing_ok=True)


class Recorder:
    """A Logger that keeps its events, so a test needs no configured logging."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, dict[str, Any]]] = []

    def bind(self, **fields: Any) -> Recorder:
        return self

    def _add(self, level: str, event: str, fields: dict[str, Any]) -> None:
        self.events.append((level, event, fields))

    def debug(self, event: str, **fields: Any) -> None:
        self._add("debug", event, fields)

    def info(self, event: str, **fields: Any) -> None:
        self._add("info", event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._add("warning", event, fields)

    def error(self, event: str, **fields: Any) -> None:
        self._add("error", event, fields)


def make_scene(tmp: Path, capsys: pytest.CaptureFixture[str] | None, **top: Any) -> Scene:
    root = tmp / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/passwd").write_text(PASSWD)
    (root / "etc/group").write_text(GROUP)
    src = tmp / "src"
    src.mkdir()
    key = make_ssh_key(tmp)
    doc: dict[str, Any] = {
        "version": 1,
        "identityPaths": [str(key.private_path)],
        "keepGenerations": 1,
        "secrets": [],
        "restartListPath": "/run/nixos/activation-restart-list",
        "reloadListPath": "/run/nixos/activation-reload-list",
        **top,
    }
    return Scene(tmp, capsys, key, root, src, doc)


def tree(path: Path) -> dict[str, tuple[int, int, int, bytes | str]]:
    """Everything under path, never following a link: mode, uid, gid and
    content or link target."""
    found: dict[str, tuple[int, int, int, bytes | str]] = {}
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            p = Path(dirpath, name)
            st = p.lstat()
            if p.is_symlink():
                body: bytes | str = os.readlink(p)
            elif p.is_file():
                body = p.read_bytes()
            else:
                body = ""
            found[str(p.relative_to(path))] = (st.st_mode, st.st_uid, st.st_gid, body)
    return found
