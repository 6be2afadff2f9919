"""Secrets sealed as systemd credentials (engine/seal.py, through install).

A stand-in systemd-creds records its arguments and what it read on stdin
and prints a sealed form that differs at every run, as the real one's
does; the last tests use this machine's own systemd-creds, which works
without a booted systemd.
"""

from __future__ import annotations

import base64
import json
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from _activation import Scene, make_scene

from nixseal.engine.seal import seal
from nixseal.errors import NixsealError

# Logs its argv (one JSON line per run) and the size of its stdin, then
# prints NAME:NONCE:base64(stdin); exits 3 with a message while CREDS_LOG.fail exists.
STAND_IN = """import base64, json, os, sys
data = sys.stdin.buffer.read()
with open(os.environ["CREDS_LOG"], "a") as log:
    log.write(json.dumps({"argv": sys.argv[1:], "stdin": len(data)}) + "\\n")
if os.path.exists(os.environ["CREDS_LOG"] + ".fail"):
    print("Failed to determine local credential key: No such device", file=sys.stderr)
    sys.exit(3)
name = sys.argv[2].split("=", 1)[1]
sys.stdout.buffer.write(b"%s:%s:%s\\n" % (name.encode(), os.urandom(4).hex().encode(), base64.b64encode(data)))
"""

REAL = shutil.which("systemd-creds")


class Creds:
    def __init__(self, tmp: Path) -> None:
        self.program = tmp / "systemd-creds"
        # sys.executable: build sandboxes (Nix) have no /usr/bin/env.
        self.program.write_text(f"#!{sys.executable}\n{STAND_IN}")
        self.program.chmod(0o755)
        self.log = tmp / "creds.log"

    def runs(self) -> list[dict[str, object]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def fail(self, failing: bool = True) -> None:
        flag = Path(f"{self.log}.fail")
        if failing:
            flag.touch()
        else:
            flag.unlink(missing_ok=True)


@pytest.fixture
def creds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Creds:
    c = Creds(tmp_path)
    monkeypatch.setenv("CREDS_LOG", str(c.log))
    return c


@pytest.fixture
def scene(tmp_path: Path, capsys: pytest.CaptureFixture[str], creds: Creds) -> Scene:
    return make_scene(tmp_path, capsys, systemdCreds=str(creds.program))


def unseal(data: bytes) -> tuple[str, bytes]:
    name, _, b64 = data.strip().split(b":")
    return name.decode(), base64.b64decode(b64)


def test_a_sealed_secret_is_stored_as_systemd_creds_made_it(scene: Scene, creds: Creds) -> None:
    scene.add("grafana/admin-password", b"hunter2", seal="grafana-admin-password", mode="0440")
    scene.add("plain", b"p")
    r = scene.install()
    assert r.code == 0, r.err
    sealed = scene.live("grafana/admin-password")
    assert unseal(sealed.read_bytes()) == ("grafana-admin-password", b"hunter2")
    assert b"hunter2" not in sealed.read_bytes()
    assert stat.S_IMODE(sealed.stat().st_mode) == 0o440
    assert scene.live("plain").read_bytes() == b"p"
    # The plaintext went on stdin only: never an argument, never a file.
    (run,) = creds.runs()
    assert run == {"argv": ["encrypt", "--name=grafana-admin-password", "-", "-"], "stdin": 7}
    assert "hunter2" not in r.err + r.out


def test_an_unchanged_sealed_value_restarts_nothing(scene: Scene, creds: Creds) -> None:
    scene.add("s", b"v1", seal="s", restartUnits=["app.service"])
    assert scene.install().code == 0
    first = scene.live("s").read_bytes()

    scene.set_value("s", b"v1")  # re-encrypted, same value
    r = scene.install()
    assert r.code == 0, r.err
    # Sealed again (its file holds no plaintext to reuse), and different
    # bytes, yet unchanged: the plaintext's digest decides.
    assert scene.live("s").read_bytes() != first
    (summary,) = r.events_named("install finished")
    assert summary["unchanged"] == 1 and summary.get("changed", 0) == 0
    assert scene.read_list("restart") == []
    assert not any("altered" in e["event"] for e in r.events)

    scene.set_value("s", b"v2")
    r = scene.install()
    assert r.code == 0 and [e["name"] for e in r.events_named("changed")] == ["s"]
    assert scene.read_list("restart") == ["app.service"]
    assert unseal(scene.live("s").read_bytes())[1] == b"v2"
    assert len(creds.runs()) == 3


def test_a_failing_systemd_creds_fails_that_secret_alone(scene: Scene, creds: Creds) -> None:
    scene.add("s", b"old", seal="s", restartUnits=["s.service"])
    scene.add("other", b"o1", restartUnits=["other.service"])
    assert scene.install().code == 0
    before = scene.live("s").read_bytes()

    creds.fail()
    scene.set_value("s", b"new")
    scene.set_value("other", b"o2")
    r = scene.install(fmt="console")
    assert r.code == 1
    assert scene.live("s").read_bytes() == before  # its previous value, still sealed
    assert scene.live("other").read_bytes() == b"o2"
    (line,) = [x for x in r.err.splitlines() if x.startswith("[error")]
    assert (
        "s" in line
        and "systemd-creds encrypt failed: Failed to determine local credential key" in line
    )
    assert "new" not in line and "old" not in line
    assert scene.read_list("restart") == ["other.service"]

    # It recovers once systemd-creds works again, and the kept value was trusted.
    creds.fail(False)
    scene.clear_lists()
    r = scene.install()
    assert r.code == 0, r.err
    assert unseal(scene.live("s").read_bytes())[1] == b"new"
    assert scene.read_list("restart") == ["s.service"]


def test_a_missing_systemd_creds_fails_that_secret_alone(scene: Scene, tmp_path: Path) -> None:
    scene.doc["systemdCreds"] = str(tmp_path / "nowhere/systemd-creds")
    scene.add("s", b"v", seal="s")
    scene.add("other", b"o")
    r = scene.install()
    assert r.code == 1
    (failed,) = r.events_named("failed")
    assert failed["name"] == "s" and failed["kept_previous"] is False
    assert (
        failed["reason"]
        == f"cannot run {tmp_path}/nowhere/systemd-creds: No such file or directory"
    )
    assert not scene.live("s").exists() and scene.live("other").read_bytes() == b"o"


def test_a_plaintext_previous_value_is_sealed_not_shared(scene: Scene, creds: Creds) -> None:
    entry = scene.add("s", b"v", restartUnits=["s.service"])
    assert scene.install().code == 0
    plain_inode = scene.live("s").stat().st_ino
    entry["seal"] = "s"
    r = scene.install()
    assert r.code == 0, r.err
    assert scene.live("s").stat().st_ino != plain_inode
    assert unseal(scene.live("s").read_bytes()) == ("s", b"v")
    assert scene.read_list("restart") == []  # the same value
    # ...and back: the sealed file is no plaintext to reuse, so it is decrypted.
    del entry["seal"]
    r = scene.install()
    assert r.code == 0 and scene.live("s").read_bytes() == b"v"
    assert not any("altered" in e["event"] for e in r.events)


def test_seal_passes_the_reason_not_the_value(creds: Creds) -> None:
    creds.fail()
    with pytest.raises(NixsealError) as err:
        seal(str(creds.program), "db", b"secret-value")
    assert str(err.value) == (
        "systemd-creds encrypt failed: Failed to determine local credential key: No such device"
    )


# --- this machine's systemd-creds ---------------------------------------------------


def _real_works() -> bool:
    if REAL is None:
        return False
    proc = subprocess.run(
        [REAL, "encrypt", "--with-key=host", "--name=probe", "-", "-"],
        input=b"x",
        capture_output=True,
        check=False,
    )
    return proc.returncode == 0


needs_real = pytest.mark.skipif(
    not _real_works(), reason="systemd-creds cannot encrypt with the host key here"
)


@needs_real
def test_the_real_systemd_creds_seals_what_it_decrypts(tmp_path: Path) -> None:
    assert REAL is not None
    sealed = seal(REAL, "db-password", b"hunter2\n")
    assert b"hunter2" not in sealed
    out = tmp_path / "db-password"
    out.write_bytes(sealed)
    opened = subprocess.run(
        [REAL, "decrypt", "--name=db-password", str(out), "-"], capture_output=True, check=True
    )
    assert opened.stdout == b"hunter2\n"
    # The id is sealed in: under another name systemd refuses it.
    other = subprocess.run(
        [REAL, "decrypt", "--name=other", str(out), "-"], capture_output=True, check=False
    )
    assert other.returncode != 0


@needs_real
def test_an_install_with_the_real_systemd_creds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert REAL is not None
    scene = make_scene(tmp_path, capsys, systemdCreds=REAL)
    scene.add("api/token", b"tok", seal="api-token")
    r = scene.install()
    assert r.code == 0, r.err
    opened = subprocess.run(
        [REAL, "decrypt", "--name=api-token", str(scene.live("api/token")), "-"],
        capture_output=True,
        check=True,
    )
    assert opened.stdout == b"tok"
