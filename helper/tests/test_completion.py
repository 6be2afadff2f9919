"""Shell completions (nixseal.cli._completion) run in the real shells, and
the help a person gets from `nixseal`, `nixseal VERB` and `--help`."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from _admin import Repo, make_repo, run_cli
from conftest import HELPER_DIR

from nixseal import cli
from nixseal.cli import _completion


def _needs(shell: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(
        shutil.which(shell) is None, reason=f"needs {shell} (helper/scripts/setup installs it)"
    )


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    r = make_repo(tmp_path)
    r.write_rules({"web1/app-token": ["web1"], "web1/alice": ["web1"], "db/password": ["db1"]})
    return r


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """PATH with a `nixseal` that runs this checkout, as the scripts call it."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    exe = bin_dir / "nixseal"
    exe.write_text(f'#!/bin/sh\nexec {sys.executable} -m nixseal "$@"\n')
    exe.chmod(0o755)
    return {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "PYTHONPATH": str(HELPER_DIR),
        "HOME": str(tmp_path),
    }


def _run(argv: list[str], env: dict[str, str], cwd: Path) -> str:
    return subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, check=True).stdout


def _words(line: str) -> list[str]:
    """The words of a command line, with an empty one when a new word begins."""
    return shlex.split(line) + ([""] if line.endswith(" ") else [])


def _script(shell: str, tmp_path: Path) -> Path:
    path = tmp_path / f"nixseal.{shell}"
    path.write_text(_completion.SCRIPTS[shell](cli.build_parser()))
    return path


# What bash and fish both complete (they filter by the prefix themselves).
_BOTH = [
    ("nixseal ho", ["host"]),
    ("nixseal host ", ["add", "reinstall", "remove"]),
    ("nixseal host remove ", ["db1", "web1"]),
    ("nixseal status ", ["db1", "web1"]),
    ("nixseal edit web1/", ["web1/alice", "web1/app-token"]),
]


BASH = """
source "$1"
COMP_WORDS=("${@:2}"); COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 )); COMPREPLY=()
_nixseal
printf '%s\\n' "${COMPREPLY[@]}"
"""


@_needs("bash")
@pytest.mark.parametrize(
    ("line", "expected"),
    [
        *_BOTH,
        ("nixseal -i key.txt rotate d", ["db/password"]),
        ("nixseal rekey db/password w", ["web1/alice", "web1/app-token"]),
        ("nixseal group set all ", ["db1", "web1"]),
        ("nixseal --log-format ", ["console", "json"]),
        ("nixseal edit --a", ["--allow-empty"]),
        ("nixseal encrypt db/password ", []),  # a FILE: bash's own file completion
        ("nixseal host add ", []),  # a new name is the user's to make up
    ],
)
def test_bash(
    repo: Repo, env: dict[str, str], tmp_path: Path, line: str, expected: list[str]
) -> None:
    argv = ["bash", "-c", BASH, "bash", str(_script("bash", tmp_path)), *_words(line)]
    assert sorted(_run(argv, env, repo.root).split()) == expected


ZSH = """
compadd() { [[ $1 == -- ]] && shift; print -rl -- "$@"; }
_describe() { print -rl -- ${${(P)2}%%:*}; }
_files() { print -r -- '<files>'; }
compdef() { :; }
source "$1"
words=("${@:2}"); CURRENT=$#words
_nixseal
"""


@_needs("zsh")
@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("nixseal host ", ["add", "reinstall", "remove"]),
        ("nixseal host remove ", ["db1", "web1"]),
        ("nixseal edit ", ["db/password", "web1/alice", "web1/app-token"]),
        ("nixseal --log-format ", ["console", "json"]),
        ("nixseal install --manifest ", ["<files>"]),
        ("nixseal encrypt db/password ", ["<files>"]),
        ("nixseal user remove --", ["--help", "--no-rekey", "--rekey", "-h"]),
    ],
)
def test_zsh(
    repo: Repo, env: dict[str, str], tmp_path: Path, line: str, expected: list[str]
) -> None:
    """compadd, _describe and _files stand in for zsh's completion system,
    which runs only in an interactive shell; they print what they are given."""
    argv = ["zsh", "-fc", ZSH, "zsh", str(_script("zsh", tmp_path)), *_words(line)]
    assert sorted(_run(argv, env, repo.root).split()) == expected


@_needs("fish")
@pytest.mark.parametrize(
    ("line", "expected"),
    [
        *_BOTH,
        ("nixseal --rules secrets/secrets.toml decrypt d", ["db/password"]),
        ("nixseal --log-format ", ["console", "json"]),
        ("nixseal encrypt db/password secrets/secrets.t", ["secrets/secrets.toml"]),
        ("nixseal host remove --r", ["--rekey"]),
    ],
)
def test_fish(
    repo: Repo, env: dict[str, str], tmp_path: Path, line: str, expected: list[str]
) -> None:
    """fish's own `complete -C` answers as it would at the prompt."""
    script = _script("fish", tmp_path)
    argv = ["fish", "--no-config", "-c", f"source {script}; complete -C {shlex.quote(line)}"]
    out = _run(argv, env, repo.root).splitlines()
    assert sorted(o.split("\t")[0] for o in out) == expected


def test_every_verb_and_option_is_in_every_script(tmp_path: Path) -> None:
    """Read off the parser: a new verb or option needs no script edited."""
    parser = cli.build_parser()
    for shell in _completion.SCRIPTS:
        text = _script(shell, tmp_path).read_text()
        for verb in cli.VERBS:
            assert verb in text, (shell, verb)
        for flag in ("--allow-empty", "--defer-signals", "--generate-key", "--no-rekey"):
            assert flag.lstrip("-") in text, (shell, flag)
    assert [c.path for c in _completion.commands(parser)][:2] == ["", "install"]


def test_the_completion_verb_prints_scripts_and_lists_names(repo: Repo) -> None:
    r = run_cli("completion", "bash")
    assert r.code == 0 and "complete -o default -F _nixseal nixseal" in r.text
    r = run_cli("completion", "--list", "hosts", cwd=repo.root)
    assert r.code == 0 and r.text == "db1\nweb1\n"
    r = run_cli("completion")
    assert r.code == 2 and "name a shell: bash, zsh or fish" in r.err


# --- help -------------------------------------------------------------------------------


def test_nixseal_alone_prints_the_help() -> None:
    r = run_cli()
    assert r.code == 0
    assert r.text.startswith("usage: nixseal")
    assert "`nixseal VERB --help` shows a verb's options and examples." in r.text
    for verb in cli.VERBS:
        assert f"    {verb} " in r.text


def test_a_verb_with_commands_alone_prints_its_help() -> None:
    for verb in ("host", "admin", "user", "group"):
        r = run_cli(verb)
        assert r.code == 0 and r.text.startswith(f"usage: nixseal {verb}"), r.err
        assert "examples:" in r.text


@pytest.mark.parametrize("verb", sorted(cli.VERBS))
def test_every_verb_help_has_examples_that_parse(
    verb: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.build_parser().parse_args([verb, "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    examples = text.split("\nexamples:\n", 1)[1].splitlines()
    assert examples, text
    for line in examples:
        (command,) = [part for part in line.split("|") if "nixseal " in part]
        command = command.split("#", 1)[0].split(" > ", 1)[0]
        argv = shlex.split(command)
        while "=" in argv[0]:  # EDITOR=nano nixseal ...
            argv.pop(0)
        assert argv[:2] == ["nixseal", verb] or verb in argv, line
        args = cli.build_parser().parse_args(argv[1:])  # exits (2) if it does not parse
        assert args.verb == verb
