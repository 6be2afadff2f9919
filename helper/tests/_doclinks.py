"""The links between documentation pages, checked as GitHub resolves them.

A relative link must name a file of the repository, and its #anchor a
heading of that file, with the anchors GitHub gives headings. Links in code
(fenced blocks, code spans) are not links.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

from conftest import REPO_ROOT

OPEN_FENCE = re.compile(r"^\s*(`{3,}|~{3,})")
ATX_HEADING = re.compile(r"^ {0,3}#{1,6}(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
CODE_SPAN = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)", re.DOTALL)
# The target of an inline link or image, wherever its text began (it may
# start on an earlier line): ](target) or ](<target> "title").
LINK_TARGET = re.compile(r"\]\(\s*(?:<([^>\n]*)>|([^\s)]*))(?:\s+(?:\"[^\"]*\"|'[^']*'))?\s*\)")
LINK_DEFINITION = re.compile(r"^ {0,3}\[[^\]]+\]:[ \t]*<?([^\s>]+)>?", re.MULTILINE)
EXTERNAL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")  # https:, mailto:, ...


def prose(path: Path) -> list[str]:
    """The page's lines, with those of fenced code blocks blanked out (line numbers kept)."""
    out: list[str] = []
    fence: str | None = None
    for line in path.read_text().splitlines():
        match = OPEN_FENCE.match(line)
        if fence is None and match:
            fence = match.group(1)
            out.append("")
        elif fence is not None:
            closing = line.strip()
            if closing.startswith(fence) and set(closing) == {fence[0]}:
                fence = None
            out.append("")
        else:
            out.append(line)
    return out


def _blank_code_spans(text: str) -> str:
    """Code spans replaced by spaces, newlines kept: nothing in them is a link."""
    paragraphs = re.split(r"(\n[ \t]*\n)", text)
    return "".join(
        CODE_SPAN.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), p) for p in paragraphs
    )


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: its text as rendered, lower-cased,
    with all punctuation but `-` and `_` dropped and each space a `-`."""
    text = ""
    for n, part in enumerate(re.split(r"((?<!`)`+(?!`).*?(?<!`)`+(?!`))", heading)):
        if n % 2:  # a code span: its content, as is
            text += part.strip("`").strip()
            continue
        plain = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", part)  # a link: its text
        plain = re.sub(r"<[^>]+>", "", plain)  # inline HTML
        plain = re.sub(r"(?<!\w)_+|_+(?!\w)", "", plain)  # _emphasis_, not snake_case
        text += re.sub(r"\\(.)", r"\1", plain)
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The heading anchors of a page; a repeated slug gets -1, -2, ..."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    for line in prose(path):
        match = ATX_HEADING.match(line)
        if not match:
            continue
        slug = github_slug(match.group(1) or "")
        if slug in seen:
            seen[slug] += 1
            slug = f"{slug}-{seen[slug]}"
        else:
            seen[slug] = 0
        found.add(slug)
    return found


def links(path: Path) -> list[tuple[int, str]]:
    """(line, target) of every link and image of a page, outside code."""
    text = _blank_code_spans("\n".join(prose(path)))
    found = [
        (m.start(), m.group(1) if m.group(1) is not None else m.group(2))
        for m in LINK_TARGET.finditer(text)
    ]
    found += [(m.start(), m.group(1)) for m in LINK_DEFINITION.finditer(text)]
    return [(text.count("\n", 0, at) + 1, target) for at, target in sorted(found)]


def broken_links(path: Path, root: Path = REPO_ROOT) -> list[str]:
    """The page's relative links whose file, or whose #anchor in it, does not
    exist. A link must stay inside root (on GitHub, `/x` is root's `x`)."""
    name = path.relative_to(root)
    broken = []
    for line, target in links(path):
        if EXTERNAL.match(target):
            continue
        file, _, anchor = target.partition("#")
        base = root if file.startswith("/") else path.parent
        resolved = (base / unquote(file).lstrip("/")).resolve() if file else path
        if not resolved.is_relative_to(root) or not resolved.exists():
            broken.append(f"{name}:{line}: {target}: no such file")
        elif anchor and resolved.suffix == ".md" and unquote(anchor) not in anchors(resolved):
            broken.append(f"{name}:{line}: {target}: no heading #{anchor} in {resolved.name}")
    return broken
