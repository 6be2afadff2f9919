"""The package's layout: which subpackage may import which.

Read from the source, every import statement (also those inside functions,
which the boot path uses to load crypto only when it decrypts), so a lazy
import cannot hide a wrong direction. The picture in docs/architecture.md:

    cli  ->  engine | repo  ->  age  ->  util  ->  errors, models
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import tomllib
from conftest import HELPER_DIR

PACKAGE = HELPER_DIR / "nixseal"

# layer -> the layers it may import (besides itself)
ALLOWED: dict[str, set[str]] = {
    "models": set(),
    "errors": set(),
    "util": {"errors", "models", "root"},
    "age": {"util", "errors", "models"},
    "engine": {"age", "util", "errors", "models"},
    "repo": {"age", "util", "errors", "models"},
    "cli": {"engine", "repo", "age", "util", "errors", "models", "root"},
    "root": set(),  # nixseal/__init__.py: the first statements, signals only
    "main": {"cli"},  # nixseal/__main__.py
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(HELPER_DIR).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _layer(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "root"
    return "main" if parts[1] == "__main__" else parts[1]


def _imports(path: Path, source: str | None = None) -> list[tuple[int, str]]:
    """(line, imported nixseal module) for every import in the file."""
    tree = ast.parse(path.read_text() if source is None else source, str(path))
    here = _module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [
                (node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "nixseal"
            ]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            if target.split(".")[0] != "nixseal":
                continue
            for alias in node.names:
                # `from nixseal.age import crypto` imports the module nixseal.age.crypto
                sub = f"{target}.{alias.name}"
                is_module = (HELPER_DIR / (sub.replace(".", "/") + ".py")).exists()
                found.append((node.lineno, sub if is_module else target))
    return found


SOURCES = sorted(PACKAGE.rglob("*.py"))


def _edges() -> list[tuple[str, int, str, str]]:
    return [
        (str(p.relative_to(HELPER_DIR)), line, _module_name(p), target)
        for p in SOURCES
        for line, target in _imports(p)
    ]


def test_every_import_runs_down_the_layers() -> None:
    wrong = [
        f"{file}:{line}: {_layer(mod)} imports {target}"
        for file, line, mod, target in _edges()
        if _layer(target) != _layer(mod) and _layer(target) not in ALLOWED[_layer(mod)]
    ]
    assert wrong == []


def test_verbs_never_import_each_other() -> None:
    """Verbs share only private helpers (nixseal.cli._*): what several print alike."""
    wrong = [
        f"{file}:{line}: {mod} imports {target}"
        for file, line, mod, target in _edges()
        if mod.startswith("nixseal.cli.")
        and target.startswith("nixseal.cli.")
        and target != mod
        and not target.rpartition(".")[2].startswith("_")
    ]
    assert wrong == []


def test_models_and_errors_import_nothing_of_nixseal() -> None:
    for leaf in [*sorted((PACKAGE / "models").glob("*.py")), PACKAGE / "errors.py"]:
        assert _imports(leaf) == [], leaf


def test_only_age_crypto_imports_pyrage() -> None:
    importers = []
    for p in SOURCES:
        for node in ast.walk(ast.parse(p.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            if any(n.split(".")[0] == "pyrage" for n in names):
                importers.append(_module_name(p))
    assert set(importers) == {"nixseal.age.crypto"}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from nixseal.repo import rules\n", "repo"),
        ("def f():\n    from nixseal.cli import rekey\n", "cli"),
        ("import nixseal.engine.activation\n", "engine"),
    ],
)
def test_the_check_sees_lazy_and_dotted_imports(source: str, expected: str) -> None:
    # Read as if it were a module of nixseal.age: each form is seen.
    layers = {_layer(t) for _, t in _imports(PACKAGE / "age" / "probe.py", source)}
    assert layers == {expected}


def test_pyproject_lists_every_subpackage() -> None:
    listed = tomllib.loads((HELPER_DIR / "pyproject.toml").read_text())["tool"]["setuptools"][
        "packages"
    ]
    found = sorted(_module_name(p.parent / "__init__.py") for p in PACKAGE.rglob("__init__.py"))
    assert sorted(listed) == found
