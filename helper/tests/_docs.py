"""Running the documentation: every command in docs/*.md and README.md.

A page is one terminal session. Its ```sh and ```console blocks run in
document order in one bash process, so `cd` and `export` carry over as they
do for a reader typing along. ```console blocks are transcripts: `$ `
lines are commands and the lines after them their expected output (stdout
and stderr merged; a line `...` matches any lines, `...` inside a line any
text). A command must exit 0 unless its line ends with `# exits N`.

An HTML comment right before a fence is a directive (invisible on a
rendered page); see DIRECTIVES. Blocks of other kinds are not run; ```nix,
```toml and ```json blocks must still parse, and no unrun block may hold a
`$ ` prompt, so that no command escapes the test. A session must reach the
end of its page.

The session's stand-ins for tools that need a NixOS fleet (nixos-rebuild,
colmena, ssh, ssh-keyscan, nix, systemctl, op, $EDITOR) live in
tests/doc_standins and tests/fake_op; docs/architecture.md says what each
one does. sops is the real one, from the virtualenv.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

import tomllib
from conftest import HELPER_DIR, NIX_CONFIG, NIXPKGS_LIB, REPO_ROOT

STANDINS = HELPER_DIR / "tests/doc_standins"
FAKE_OP_DIR = HELPER_DIR / "tests/fake_op"
STUB_NIXPKGS = HELPER_DIR / "tests/stub-nixpkgs"
VENV_BIN = REPO_ROOT / ".venv/bin"

DIRECTIVES = {
    "file": "write the block to PATH at this point of the session",
    "append": "append the block to PATH",
    "module": "a NixOS module: of host HOST from here on, or evaluated alone",
    "home-module": "a home-manager module, evaluated alone",
    "in-repo": "run the sh block at the repository root, in a shell of its own",
    "skip": "not run, for the reason given",
}
RUN_KINDS = {"sh", "console"}
# The info string's first word is the kind; any words after it are ignored.
FENCE = re.compile(r"^( *)(```+)\s*([^\s`]*)[^`]*$")
DIRECTIVE = re.compile(r"^\s*<!--\s*doc-test:\s*(.*?)\s*-->\s*$")
# A comment that looks meant as a directive: one the parser would not see (a
# typo, or a blank line before the fence) would silently run a block that
# should be skipped, or leave a file unwritten.
MEANT_AS_DIRECTIVE = re.compile(r"^\s*<!--\s*doc-test")
EXITS = re.compile(r"#\s*exits\s+(\d+)\s*$")


class DocError(Exception):
    """A page's block cannot be parsed or its directive is wrong."""


@dataclass(frozen=True)
class Block:
    page: str
    line: int  # of the opening fence, 1-based
    kind: str  # the info string's first word ("" when none)
    text: str
    directive: tuple[str, ...]  # ("file", "flake.nix"), ("skip", "why"), or ()

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"


@dataclass(frozen=True)
class Command:
    block: Block
    index: int
    text: str
    expected: tuple[str, ...]
    exits: int


def parse_page(path: Path) -> list[Block]:
    blocks: list[Block] = []
    lines = path.read_text().splitlines()
    name = str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)
    i = 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            if MEANT_AS_DIRECTIVE.match(lines[i]) and not (
                DIRECTIVE.match(lines[i]) and i + 1 < len(lines) and FENCE.match(lines[i + 1])
            ):
                raise DocError(
                    f"{name}:{i + 1}: a doc-test directive is a whole line"
                    " `<!-- doc-test: WORD ARGS -->` right before a code block"
                )
            i += 1
            continue
        indent, ticks, kind = len(match.group(1)), match.group(2), match.group(3)
        start = i
        body: list[str] = []
        i += 1
        while i < len(lines) and lines[i].strip() != ticks:
            body.append(lines[i][indent:] if lines[i][:indent].isspace() else lines[i])
            i += 1
        if i == len(lines):
            raise DocError(f"{name}:{start + 1}: code block never closed")
        i += 1
        directive: tuple[str, ...] = ()
        if start > 0 and (d := DIRECTIVE.match(lines[start - 1])):
            word, _, rest = d.group(1).partition(" ")
            if word not in DIRECTIVES:
                raise DocError(f"{name}:{start}: unknown doc-test directive {word!r}")
            directive = (word, rest.strip()) if rest.strip() else (word,)
            _check_directive(f"{name}:{start + 1}", kind, directive)
        blocks.append(Block(name, start + 1, kind, "\n".join(body) + "\n", directive))
    return blocks


def _check_directive(where: str, kind: str, directive: tuple[str, ...]) -> None:
    word, arg = directive[0], directive[1] if len(directive) > 1 else ""
    if word in {"file", "append"} and not arg:
        raise DocError(f"{where}: `{word}` needs a path")
    if word in {"module", "home-module"} and kind != "nix":
        raise DocError(f"{where}: `{word}` is for ```nix blocks")
    if word == "module" and " " in arg:
        raise DocError(f"{where}: `module` takes one host name")
    if word in {"home-module", "in-repo"} and arg:
        raise DocError(f"{where}: `{word}` takes no argument")
    if word == "in-repo" and kind != "sh":
        raise DocError(f"{where}: `in-repo` is for ```sh blocks")


def commands(block: Block) -> list[Command]:
    """A console block's commands with their expected output."""
    result: list[Command] = []
    current: list[str] | None = None
    expected: list[str] = []

    def close() -> None:
        if current is not None:
            text = "\n".join(current)
            match = EXITS.search(current[-1])
            exits = int(match.group(1)) if match else 0
            result.append(Command(block, len(result), text, tuple(expected), exits))

    lines = block.text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("$ "):
            close()
            current = [line[2:]]
            expected = []
            while current[-1].endswith("\\") and i + 1 < len(lines):
                i += 1
                current.append(lines[i])
        elif current is None:
            if line.strip():
                raise DocError(f"{block.where}: console output before any `$ ` command")
        else:
            expected.append(line.rstrip())
        i += 1
    close()
    return result


def output_matches(expected: tuple[str, ...], actual: str) -> bool:
    parts: list[str] = []
    for line in expected:
        if line.strip() == "...":
            parts.append(r"(?:[^\n]*\n)*?")
        else:
            parts.append(".*".join(re.escape(p) for p in line.split("...")) + r"\n")
    lines = [line.rstrip() for line in actual.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    text = "".join(f"{line}\n" for line in lines)
    while expected and not expected[-1]:
        expected = expected[:-1]
        parts.pop()
    return re.fullmatch("".join(parts), text) is not None


HEREDOC_END = "__NIXSEAL_DOC_EOF__"


def page_path(path: str) -> str:
    """A page's PATH as one shell word: a leading `~/` is $HOME, nothing else
    expands (no variables, globs or word splitting)."""
    if path == "~" or path.startswith("~/"):
        return '"$HOME"' + shlex.quote(path[1:]) if len(path) > 1 else '"$HOME"'
    return shlex.quote(path)


def _heredoc(target: str, text: str, append: bool, where: str) -> str:
    """Shell that writes text to target (one shell word), creating its directory."""
    if HEREDOC_END in text.splitlines():
        raise DocError(f"{where}: the block holds a line {HEREDOC_END}")
    op = ">>" if append else ">"
    return (
        f'mkdir -p -- "$(dirname -- {target})"\n'
        f"cat {op} {target} <<'{HEREDOC_END}'\n{text}{HEREDOC_END}\n"
    )


def session_script(blocks: list[Block]) -> tuple[str, list[Command]]:
    """The bash script of a page's session, and the console commands it runs.

    Before each block (and each console command) the script records where it
    is in $DOC_STATE/at, so that a failure names its block; it records `end`
    last, so that a session cut short (an `exit 0` on the page) fails too.
    """
    out = ['set -euo pipefail\n__doc_at() { printf "%s\\n" "$1" > "$DOC_STATE/at"; }\n']
    console: list[Command] = []
    modules = 0
    for n, block in enumerate(blocks):
        word = block.directive[0] if block.directive else ""
        if word in {"skip", "in-repo"}:
            continue
        out.append(f"__doc_at {n}\n")
        if word in {"file", "append"}:
            target = page_path(block.directive[1])
            out.append(_heredoc(target, block.text, word == "append", block.where))
        elif word in {"module", "home-module"}:
            modules += 1
            host = block.directive[1] if len(block.directive) == 2 else ""
            if word == "module" and host:
                # Named after the page too: a page's hosts keep the modules
                # that getting started gave them.
                stem = Path(block.page).stem
                target = f'"$DOC_MODULES"/{shlex.quote(f"{host}/{stem}-{modules:03d}.nix")}'
                out.append(_heredoc(target, block.text, False, block.where))
            else:
                kind = "home" if word == "home-module" else "nixos"
                path = f'"$DOC_STATE"/module-{modules:03d}.nix'
                out.append(_heredoc(path, block.text, False, block.where))
                out.append(f"doc-eval-module {kind} {path}\n")
        elif block.kind == "sh":
            out.append(block.text)
        elif block.kind == "console":
            for cmd in commands(block):
                console.append(cmd)
                k = len(console) - 1
                out.append(
                    f"__doc_at {n}.{cmd.index}\nset +e\n{{\n{cmd.text}\n}} </dev/null"
                    f' >"$DOC_STATE/out.{k}" 2>&1\necho $? >"$DOC_STATE/rc.{k}"\nset -e\n'
                )
    out.append("__doc_at end\n")
    return "".join(out), console


def check_unrun(block: Block) -> None:
    """What is not run must at least parse, and hide no command."""
    if block.directive or block.kind in RUN_KINDS:
        return
    if any(line.startswith("$ ") for line in block.text.splitlines()):
        raise DocError(f"{block.where}: `$ ` prompt in a ```{block.kind} block that is not run")
    if block.kind == "toml":
        try:
            tomllib.loads(block.text)
        except tomllib.TOMLDecodeError as err:
            raise DocError(f"{block.where}: TOML does not parse: {err}") from None
    elif block.kind == "json":
        try:
            json.loads(block.text)
        except json.JSONDecodeError as err:
            raise DocError(f"{block.where}: JSON does not parse: {err}") from None
    elif block.kind == "nix":
        proc = subprocess.run(
            ["nix-instantiate", "--parse", "-E", block.text],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise DocError(f"{block.where}: Nix does not parse: {proc.stderr.strip()}")


@dataclass(frozen=True)
class Shared:
    """What every session reads: the stand-in nixpkgs and a copy of nixseal."""

    nixpkgs: Path
    nixseal: Path


def prepare_shared(base: Path) -> Shared:
    from test_flake import IGNORED

    nixpkgs = base / "nixpkgs"
    shutil.copytree(STUB_NIXPKGS, nixpkgs)
    shutil.copytree(NIXPKGS_LIB / "lib", nixpkgs / "lib", ignore=shutil.ignore_patterns("tests"))
    shutil.copytree(REPO_ROOT / "checks/eval", nixpkgs / "eval")
    nixseal = base / "nixseal"
    shutil.copytree(REPO_ROOT, nixseal, ignore=IGNORED, symlinks=True)
    return Shared(nixpkgs, nixseal)


@dataclass(frozen=True)
class Workspace:
    root: Path

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def cwd(self) -> Path:
        return self.home / "infra"

    @property
    def state(self) -> Path:
        return self.root / "state"

    @property
    def runtime(self) -> Path:
        """The session's $XDG_RUNTIME_DIR: private and on tmpfs, as a login's
        /run/user/UID is (shm, since /run/user may not exist where tests run)."""
        digest = hashlib.sha256(str(self.root).encode()).hexdigest()[:16]
        return Path("/dev/shm") / f"nixseal-doc-{digest}"

    def env(self, shared: Shared, *, admin_identity: bool) -> dict[str, str]:
        path = [str(STANDINS), str(FAKE_OP_DIR), str(VENV_BIN), os.environ.get("PATH", "")]
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("NIXSEAL_", "OP_", "FAKE_OP", "GIT_", "PYTEST", "LC_", "XDG_"))
        }
        env.update(
            HOME=str(self.home),
            USER="alice",
            LOGNAME="alice",
            PATH=":".join(path),
            EDITOR=str(STANDINS / "editor"),
            # The same output on every machine: help text is wrapped at
            # $COLUMNS, `ls` and `sort` order by locale.
            COLUMNS="80",
            LANG="C.UTF-8",
            # Python's stdout is line-buffered on a terminal but not into a
            # file: unbuffered, a transcript keeps the order of stdout and
            # stderr lines that a reader sees.
            PYTHONUNBUFFERED="1",
            NIX_CONFIG=NIX_CONFIG,
            NIXPKGS_LIB=str(NIXPKGS_LIB),
            DOC_STATE=str(self.state),
            DOC_HOSTS=str(self.root / "hosts"),
            DOC_MODULES=str(self.root / "modules"),
            DOC_NIXPKGS=str(shared.nixpkgs),
            DOC_NIXSEAL=str(shared.nixseal),
            FAKE_OP_VAULT=str(self.root / "1password.json"),
        )
        self.runtime.mkdir(mode=0o700, exist_ok=True)
        env["XDG_RUNTIME_DIR"] = str(self.runtime)
        env.pop("VISUAL", None)
        if admin_identity:
            env["NIXSEAL_IDENTITY"] = str(self.home / ".config/nixseal/admin.key")
        return env


def fresh_workspace(root: Path) -> Workspace:
    ws = Workspace(root)
    for d in (ws.cwd, ws.state, root / "hosts", root / "modules"):
        d.mkdir(parents=True, exist_ok=True)
    (ws.home / ".gitconfig").write_text(
        "[user]\n\tname = Alice\n\temail = alice@example.com\n"
        "[init]\n\tdefaultBranch = main\n[advice]\n\tdetachedHead = false\n"
    )
    (root / "1password.json").write_text(
        json.dumps(
            {
                "account": {
                    "url": "example.1password.com",
                    "email": "alice@example.com",
                    "user_type": "HUMAN",
                },
                "app_integration": True,
                "vaults": [{"id": "infra0000000000000000000000", "name": "Infra", "items": []}],
            },
            indent=2,
        )
    )
    return ws


def copy_workspace(source: Path, target: Path) -> Workspace:
    """A copy that keeps owners and modes (host roots hold other uids' files)."""
    subprocess.run(["cp", "-a", str(source), str(target)], check=True)
    ws = Workspace(target)
    for stale in ws.state.iterdir():
        if stale.is_file():
            stale.unlink()
    return ws


@dataclass(frozen=True)
class Result:
    failure: str | None
    log: str


def split_at(page: Path, heading: str) -> int:
    """The line of a page's heading (1-based): sessions run the blocks
    before it, or from it on."""
    for n, line in enumerate(page.read_text().splitlines(), 1):
        if line.strip() == heading:
            return n
    raise DocError(f"{page.name}: no heading {heading!r}")


def run_session(
    page: Path,
    ws: Workspace,
    env: dict[str, str],
    timeout: int = 900,
    *,
    lines: tuple[int, int] | None = None,
) -> Result:
    """Run the page's session, or (lines) that of its blocks from the first
    line up to (not including) the second."""
    blocks = parse_page(page)
    for block in blocks:
        check_unrun(block)
    if lines is not None:
        blocks = [b for b in blocks if lines[0] <= b.line < lines[1]]
    for block in blocks:
        if block.directive[:1] == ("in-repo",) and (failure := _run_in_repo(block, env)):
            return Result(failure, "")
    script, console = session_script(blocks)
    returncode, log = _run(["bash", "-c", script], ws.cwd, env, timeout)
    died_in = None  # the console command the session stopped in, if it did
    for k, cmd in enumerate(console):
        out_file, rc_file = ws.state / f"out.{k}", ws.state / f"rc.{k}"
        if not rc_file.exists():
            died_in = k
            break
        actual = out_file.read_text(errors="replace")
        rc = int(rc_file.read_text())
        where = f"{cmd.block.where} command {cmd.index + 1} `{cmd.text}`"
        if rc != cmd.exits:
            return Result(f"{where}: exit status {rc}, expected {cmd.exits}\n{actual}", log)
        if not output_matches(cmd.expected, actual):
            shown = "\n".join(cmd.expected)
            return Result(
                f"{where}: output differs\n--- expected\n{shown}\n--- actual\n{actual}", log
            )
    at = (ws.state / "at").read_text().strip() if (ws.state / "at").exists() else "0"
    if returncode == 0 and at == "end":
        return Result(None, log)
    block = blocks[int(at.split(".")[0])] if at != "end" else blocks[-1]
    if returncode is None:
        what = f"timed out after {timeout} s"
    elif returncode == 0:
        what = "ended the session early (exit 0): the blocks after it did not run"
    else:
        what = f"failed (exit {returncode})"
    report = f"{block.where}: the ```{block.kind} block {what}\n{block.text}"
    if "." in at and died_in is not None and (ws.state / f"out.{died_in}").exists():
        # The console command itself stopped the shell (`exit`, an unset
        # variable under `set -u`): what it printed went to its output file.
        cmd = console[died_in]
        output = (ws.state / f"out.{died_in}").read_text(errors="replace")
        report += f"--- output of `{cmd.text}`\n{output}"
    return Result(f"{report}--- session output (tail)\n{log[-4000:]}", log)


def _run(argv: list[str], cwd: Path, env: dict[str, str], timeout: int) -> tuple[int | None, str]:
    """Exit status (None on timeout) and output of argv, in a process group of
    its own, so that a timeout also ends what it started (a stuck tool)."""
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        start_new_session=True,
    )
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):  # all of it ended meanwhile
            os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        return None, output
    return proc.returncode, output


def _run_in_repo(block: Block, env: dict[str, str]) -> str | None:
    # TMPDIR: what the commands leave in temporary directories goes with the session.
    repo_env = dict(env, PATH=f"{VENV_BIN}:{os.environ.get('PATH', '')}", TMPDIR=env["DOC_STATE"])
    argv = ["bash", "-euo", "pipefail", "-c", block.text]
    returncode, output = _run(argv, REPO_ROOT, repo_env, 600)
    if returncode == 0:
        return None
    what = "timed out after 600 s" if returncode is None else f"failed (exit {returncode})"
    return f"{block.where}: the in-repo block {what}\n{block.text}--- output\n{output}"
