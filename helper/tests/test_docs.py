"""Every command in the documentation runs, and prints what the page shows.

Each page of docs/ and README.md is one terminal session (tests/_docs.py).
docs/getting-started.md starts from an empty directory; every other page
starts from where getting started ends (a repository with an admin, two
hosts, two secrets, both hosts deployed), copied afresh for each page.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from _docs import (
    Shared,
    Workspace,
    copy_workspace,
    fresh_workspace,
    parse_page,
    prepare_shared,
    run_session,
)
from conftest import REPO_ROOT, needs_nix, needs_root

pytestmark = [needs_nix, needs_root]

GETTING_STARTED = REPO_ROOT / "docs/getting-started.md"
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
    result = run_session(GETTING_STARTED, ws, ws.env(shared, admin_identity=False))
    if result.failure:
        pytest.fail(f"docs/getting-started.md, which every page starts from:\n{result.failure}")
    return ws.root


def _workspace(tmp_path: Path, request: pytest.FixtureRequest) -> Workspace:
    fleet_root: Path = request.getfixturevalue("fleet")
    return copy_workspace(fleet_root, tmp_path / "ws")


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_page_runs(
    page: Path, tmp_path: Path, shared: Shared, request: pytest.FixtureRequest
) -> None:
    if page == GETTING_STARTED:
        request.getfixturevalue("fleet")  # runs the page, and fails when it fails
        return
    ws = _workspace(tmp_path, request)
    result = run_session(page, ws, ws.env(shared, admin_identity=True))
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
        blocks = parse_page(page)
        assert any(b.kind in {"sh", "console"} for b in blocks), f"{page.name} runs nothing"


LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _slugs(page: Path) -> set[str]:
    """Heading anchors as GitHub makes them."""
    slugs: set[str] = set()
    seen: dict[str, int] = {}
    in_fence = False
    for line in page.read_text().splitlines():
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
        if in_fence or not line.startswith("#"):
            continue
        text = line.lstrip("#").strip().lower()
        slug = re.sub(r"[^\w\- ]", "", text).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        slugs.add(slug if n == 0 else f"{slug}-{n}")
    return slugs


def test_links_between_pages_resolve() -> None:
    broken = []
    for page in PAGES:
        text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
        text = re.sub(r"`[^`\n]*`", "", text)  # code spans are not links
        for target in LINK.findall(text):
            if re.match(r"[a-z]+:", target):
                continue  # external
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            if not dest.exists():
                broken.append(f"{page.name}: {target} (no such file)")
            elif anchor and dest.suffix == ".md" and anchor not in _slugs(dest):
                broken.append(f"{page.name}: {target} (no such heading)")
    assert not broken, "\n".join(broken)
