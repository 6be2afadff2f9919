from __future__ import annotations

import argparse
import types

import pytest

from nixseal import cli


def _verb_that_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    def run(args: argparse.Namespace) -> int:
        raise ValueError("Zq9-PLAINTEXT-in-a-message")

    module = types.SimpleNamespace(add_arguments=lambda parser: None, run=run, EXAMPLES="")
    monkeypatch.setitem(cli.VERBS, "boom", ("boom", "fails"))
    monkeypatch.setattr(cli, "_verb_module", lambda verb: module)


def test_a_bug_is_one_line_without_its_message(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _verb_that_fails(monkeypatch)
    monkeypatch.delenv("NIXSEAL_DEBUG", raising=False)
    assert cli.main(["boom"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("nixseal boom: internal error: ValueError at test_cli.py:")
    assert len(err.splitlines()) == 1
    assert "PLAINTEXT" not in err and "Traceback" not in err


def test_nixseal_debug_shows_the_exception(monkeypatch: pytest.MonkeyPatch) -> None:
    _verb_that_fails(monkeypatch)
    monkeypatch.setenv("NIXSEAL_DEBUG", "1")
    with pytest.raises(ValueError, match="PLAINTEXT"):
        cli.main(["boom"])
