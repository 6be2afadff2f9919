"""Install events as journal entries (nixseal.util.journal): the datagrams
on a scratch socket here; under real systemd in test_nspawn.py."""

from __future__ import annotations

import io
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from nixseal.util import journal, log


def parse(datagram: bytes) -> dict[str, list[str]]:
    """The native protocol, read back as journald reads it."""
    out: dict[str, list[str]] = {}
    rest = datagram
    while rest:
        line, _, after = rest.partition(b"\n")
        if b"=" in line:
            key, _, value = line.partition(b"=")
            rest = after
        else:
            key = line
            size = int.from_bytes(after[:8], "little")
            value, rest = after[8 : 8 + size], after[8 + size + 1 :]
        out.setdefault(key.decode(), []).append(value.decode())
    return out


@pytest.fixture
def journald(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = tmp_path / "journal.socket"
    server.bind(str(path))
    server.settimeout(2)
    monkeypatch.setattr(journal, "SOCKET", str(path))
    yield server
    server.close()
    log.configure("console", 0)


def _stream(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> io.TextIOWrapper:
    stream = open(tmp_path / "stderr", "w")  # noqa: SIM115 (closed by the test's end)
    st = os.fstat(stream.fileno())
    monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
    return stream


def test_events_become_entries_with_fields(
    journald: socket.socket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stream = _stream(tmp_path, monkeypatch)
    log.configure("console", 0, stream, lean=True)
    logger = log.get_logger().bind(generation=4)
    logger.error(
        "failed",
        kind="secret",
        name="db/password",
        path="/run/secrets/db/password",
        reason="corrupt age file:\nheader",
        kept_previous=True,
    )
    logger.info("units signalled", action="try-restart", units=["a.service", "b.service"])
    logger.info("install finished", previous=3, failed=1, signalled={"restart": ["a.service"]})
    failed, signalled, summary = (parse(journald.recv(65536)) for _ in range(3))
    assert failed["MESSAGE"] == [
        "[error    ] failed generation=4 kind=secret name=db/password "
        "path=/run/secrets/db/password reason='corrupt age file:\\nheader' kept_previous=True"
    ]
    assert failed["PRIORITY"] == ["3"] and failed["SYSLOG_IDENTIFIER"] == ["nixseal"]
    assert failed["NIXSEAL_STATE"] == ["failed"] and failed["NIXSEAL_SECRET"] == ["db/password"]
    assert failed["NIXSEAL_REASON"] == ["corrupt age file:\nheader"]  # binary form
    assert failed["NIXSEAL_GENERATION"] == ["4"] and failed["NIXSEAL_KEPT_PREVIOUS"] == ["true"]
    assert signalled["NIXSEAL_EVENT"] == ["signalled"]
    assert signalled["NIXSEAL_UNITS"] == ["a.service b.service"]
    assert summary["NIXSEAL_EVENT"] == ["summary"] and summary["NIXSEAL_FAILED"] == ["1"]
    assert summary["NIXSEAL_SIGNALLED_RESTART"] == ["a.service"]
    stream.close()
    assert (tmp_path / "stderr").read_text() == ""  # the journal has them, once


def test_without_the_journal_the_lines_go_to_stderr(
    journald: socket.socket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stream = _stream(tmp_path, monkeypatch)
    monkeypatch.setattr(journal, "SOCKET", str(tmp_path / "gone"))
    log.configure("json", 0, stream, lean=True)
    log.get_logger().info("changed", kind="template", name="app.env")
    stream.close()
    assert '"event": "changed"' in (tmp_path / "stderr").read_text()


def test_a_stream_that_is_not_the_journals_is_written_as_before(
    journald: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOURNAL_STREAM", "1:2")
    out = io.StringIO()
    log.configure("console", 0, out, lean=True)
    log.get_logger().info("removed", kind="secret", name="x")
    assert out.getvalue() == "[info     ] removed kind=secret name=x\n"
