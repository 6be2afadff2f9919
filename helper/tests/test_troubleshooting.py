"""docs/troubleshooting.md explains every message nixseal can print.

The messages are read from the code, not from a list kept by hand, so a new
message fails this test until the page explains it:

- Python (nixseal/*.py): the string arguments of every ``raise X(...)``, of
  every exception built for later (``...Error(...)``, ``...Failure(...)``),
  of log events (``.warning(...)``, ``.error(...)``), of ``print(...)`` to
  stderr or saying error/warning/note, and of ``.append(...)`` to the lists
  verbs collect their failures in; the strings kept in variables that are
  parts of messages (``hint``, ``fix``, ...); and every string of the few
  functions that build message text (MESSAGE_FUNCTIONS).
- Nix (modules/**/*.nix): every string after ``throw`` or ``message =``, and
  every other string that reads as a message (it starts with ``nixseal.`` /
  ``nixseal:`` or holds ``": "``), except option documentation.
- argparse: the kinds of usage errors the command line's parsers can make.

A message is documented when its constant fragments (the text between
interpolations, stripped of spaces and punctuation at their ends) appear in
order in one paragraph of the page, whitespace normalized: the page writes
the interpolated parts as placeholders (``<NAME>``, ``<PATH>``), which the
check skips over as wildcards. Fragments shorter than MIN_FRAGMENT say
nothing on their own and are not looked for.
"""

from __future__ import annotations

import argparse
import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass

from conftest import HELPER_DIR, REPO_ROOT

PAGE = REPO_ROOT / "docs/troubleshooting.md"
PACKAGE = HELPER_DIR / "nixseal"
MODULES = REPO_ROOT / "modules"

# Functions whose every string is message text (fragments they return or add).
MESSAGE_FUNCTIONS = {
    "check.py": {"findings", "fix_for"},  # the lines of `nixseal check`
    "drift.py": {"_compare"},  # details in those lines
    "crypto.py": {"_explain"},  # why a decryption failed
    "op.py": {"explain"},  # the fix added to op's own words
    "manifest.py": {"_kind"},  # "expected a list, got <KIND>"
    "cli.py": {"_where"},  # internal errors
    "repo.py": {"create_command"},  # the fix for a missing file
}
# Variables that hold a part of a message.
MESSAGE_PARTS = {"hint", "fix", "why", "detail", "KEY_FIX", "SIGN_IN_HINT", "REPLACED"}
# Lists verbs collect failures and findings in, printed later.
MESSAGE_LISTS = {"problems", "failed", "findings", "extra"}
LOG_LEVELS = {"warning", "error"}
# Calls whose strings are looked for or used as arguments, not shown.
STRING_TESTS = {"startswith", "endswith", "split", "rsplit", "partition", "removeprefix", "decode"}
MARKERS = ("error:", "warning:", "note:")
# A fragment shorter than this says nothing on its own (": ", "; ", "s").
MIN_FRAGMENT = 4

# Messages no user can meet, each with the reason.
EXCLUDED = {
    "unknown generator kind": "the rules parser accepts only known kinds before any generator runs",
    "password length must be positive": "the rules parser accepts lengths from 1 to 4096 only",
    "op whoami: unexpected output": "no verb calls op.whoami()",
    "not an age secret key": "no verb calls crypto.age_public_key()",
    "no recipients to encrypt to": "repo.ciphertext_for refuses a secret without recipients first",
}


@dataclass(frozen=True)
class Message:
    where: str  # file:line
    fragments: tuple[str, ...]  # constant text between interpolations

    @property
    def text(self) -> str:
        return "{...}".join(self.fragments)


def normalize(text: str) -> str:
    return " ".join(text.split())


def distinctive(fragment: str) -> str:
    """The fragment without the spaces and punctuation at its ends."""
    return normalize(fragment).strip(" :;,.'\"()[]{}")


# -- Python -------------------------------------------------------------------


def _fragments(node: ast.AST) -> list[str]:
    """Constant text of a string or f-string; nothing for other expressions."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.JoinedStr):
        return [
            v.value for v in node.values if isinstance(v, ast.Constant) and isinstance(v.value, str)
        ]
    return []


def _call_name(call: ast.Call) -> str:
    func = call.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return ""


def _receiver(call: ast.Call) -> str:
    """`failed` for `failed.append(...)` and `out.failed.append(...)`."""
    if isinstance(call.func, ast.Attribute):
        target = call.func.value
        if isinstance(target, ast.Name):
            return target.id
        if isinstance(target, ast.Attribute):
            return target.attr
    return ""


def _call_strings(call: ast.Call) -> list[str]:
    args = [*call.args, *(k.value for k in call.keywords)]
    return [f for a in args for f in _fragments(a)]


def _is_message_print(call: ast.Call) -> bool:
    if _call_name(call) != "print":
        return False
    to_stderr = any(
        k.arg == "file" and isinstance(k.value, ast.Attribute) and k.value.attr == "stderr"
        for k in call.keywords
    )
    return to_stderr or any(m in f for f in _call_strings(call) for m in MARKERS)


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and _fragments(body[0].value):
                ids.add(id(body[0].value))
    return ids


def _tested_strings(tree: ast.AST) -> set[int]:
    """Strings a function looks for in other text ("x" in reason, .startswith("x"))."""
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) or (
            isinstance(node, ast.Call) and _call_name(node) in STRING_TESTS
        ):
            ids |= {id(sub) for sub in ast.walk(node)}
    return ids


def _is_message_call(call: ast.Call) -> bool:
    """An exception built, a log event, a message printed, or one kept for later."""
    name = _call_name(call)
    return (
        name.endswith(("Error", "Failure"))
        or _is_message_print(call)
        or (name in LOG_LEVELS and isinstance(call.func, ast.Attribute))
        or (name == "append" and _receiver(call) in MESSAGE_LISTS)
    )


def python_messages(source: str, filename: str) -> Iterator[Message]:
    tree = ast.parse(source)
    docstrings = _docstrings(tree)

    def message(node: ast.AST, fragments: list[str]) -> Iterator[Message]:
        if any(f.strip() for f in fragments):
            yield Message(f"{filename}:{getattr(node, 'lineno', 0)}", tuple(fragments))

    for node in ast.walk(tree):
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
            yield from message(node, _call_strings(node.exc))
        elif isinstance(node, ast.Call) and _is_message_call(node):
            yield from message(node, _call_strings(node))
        elif isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            named = {t.id for t in targets if isinstance(t, ast.Name)}
            if named & MESSAGE_PARTS and node.value is not None:
                for sub in ast.walk(node.value):
                    yield from message(sub, _fragments(sub))
        elif isinstance(node, ast.FunctionDef) and node.name in MESSAGE_FUNCTIONS.get(
            filename, set()
        ):
            skip = docstrings | _tested_strings(node)
            for sub in ast.walk(node):
                if id(sub) not in skip and isinstance(sub, ast.Constant | ast.JoinedStr):
                    yield from message(sub, _fragments(sub))


def all_python_messages() -> list[Message]:
    found: dict[Message, None] = {}  # a raise of a ...Error(...) is found twice
    for path in sorted(PACKAGE.glob("*.py")):
        found.update(dict.fromkeys(python_messages(path.read_text(), path.name)))
    return list(found)


# -- Nix ------------------------------------------------------------------------


@dataclass(frozen=True)
class NixString:
    start: int
    end: int
    fragments: tuple[str, ...]


def nix_strings(text: str) -> list[NixString]:
    """Every "..." string of a Nix file (nested ones too), with its constant fragments.

    A small scanner, not a parser: it knows comments, "..." and ''...''
    strings and ${...} interpolations, which is all it needs to find
    where strings begin and end.
    """
    found: list[NixString] = []
    n = len(text)

    def string(i: int) -> int:  # text[i] == '"'
        start, frags = i, [""]
        i += 1
        while i < n:
            if text[i] == "\\":
                frags[-1] += text[i + 1 : i + 2]
                i += 2
            elif text[i] == '"':
                found.append(NixString(start, i + 1, tuple(frags)))
                return i + 1
            elif text.startswith("${", i):
                i = expression(i + 2, inside=True)
                frags.append("")
            else:
                frags[-1] += text[i]
                i += 1
        return n

    def indented(i: int) -> int:  # text[i:i+2] == "''"
        i += 2
        while i < n:
            if text.startswith(("'''", "''$", "''\\"), i):
                i += 3
            elif text.startswith("''", i):
                return i + 2
            elif text.startswith("${", i):
                i = expression(i + 2, inside=True)
            else:
                i += 1
        return n

    def expression(i: int, inside: bool) -> int:
        depth = 0
        while i < n:
            if text[i] == "#":
                end = text.find("\n", i)
                i = n if end < 0 else end
            elif text.startswith("/*", i):
                end = text.find("*/", i)
                i = n if end < 0 else end + 2
            elif text[i] == '"':
                i = string(i)
            elif text.startswith("''", i):
                i = indented(i)
            elif text[i] == "{":
                depth += 1
                i += 1
            elif text[i] == "}":
                if depth == 0 and inside:
                    return i + 1
                depth -= 1
                i += 1
            else:
                i += 1
        return n

    expression(0, inside=False)
    return sorted(found, key=lambda s: s.start)


_NIX_DOCS = re.compile(r"(?i)(description|text|example)\s*=\s*(literal\w+\s*)?\(?\s*$")
_NIX_MESSAGE_CONTEXT = re.compile(r"(throw|message\s*=)\s*\(?\s*$")


def nix_messages(text: str, filename: str) -> Iterator[Message]:
    joined: list[NixString] = []
    last = -1  # the last string not inside another's ${...}
    for s in nix_strings(text):
        if last >= 0 and s.start < joined[last].end:
            joined.append(s)  # nested: never merged
        elif last >= 0 and re.fullmatch(r"\s*\+\s*", text[joined[last].end : s.start]):
            # "a" + "b": one message written over several lines
            frags = joined[last].fragments
            merged = (*frags[:-1], frags[-1] + s.fragments[0], *s.fragments[1:])
            joined[last] = NixString(joined[last].start, s.end, merged)
        else:
            joined.append(s)
            last = len(joined) - 1
    for s in joined:
        frags = s.fragments
        before = text[max(0, s.start - 60) : s.start]
        const = "".join(frags)
        lead = next((f for f in frags if f), "")
        if _NIX_DOCS.search(before):
            continue
        if (
            _NIX_MESSAGE_CONTEXT.search(before)
            or re.match(r"nixseal[.:]", lead)
            or (": " in const and len(const) >= 30)
        ):
            line = text.count("\n", 0, s.start) + 1
            yield Message(f"{filename}:{line}", frags)


def all_nix_messages() -> list[Message]:
    found: list[Message] = []
    for path in sorted(MODULES.rglob("*.nix")):
        found += nix_messages(path.read_text(), str(path.relative_to(REPO_ROOT)))
    return found


# -- argparse ---------------------------------------------------------------------


def argparse_messages() -> set[str]:
    """What argparse can say about the command lines nixseal's parsers accept."""
    from nixseal.cli import build_parser

    said = {"unrecognized arguments"}
    todo = [build_parser()]
    while todo:
        parser = todo.pop()
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                todo += list(action.choices.values())
                said.add("invalid choice")
            elif action.choices is not None:
                said.add("invalid choice")
            if action.required:
                said.add("the following arguments are required")
            if action.option_strings and action.nargs is None:
                said.add("expected one argument")
        if parser._mutually_exclusive_groups:
            said.add("not allowed with argument")
    return said


# -- the checks ---------------------------------------------------------------------


def paragraphs(page: str) -> list[str]:
    """The page's paragraphs (blocks between blank lines), whitespace normalized."""
    return [normalize(p) for p in re.split(r"\n\s*\n", page) if p.strip()]


def in_order(needed: list[str], text: str) -> bool:
    at = 0
    for part in needed:
        found = text.find(part, at)
        if found < 0:
            return False
        at = found + len(part)
    return True


def undocumented(messages: list[Message], page: str) -> list[str]:
    """Messages whose fragments are not found, in order, in one paragraph of the page."""
    blocks = paragraphs(page)
    missing = []
    for m in messages:
        if any(key in m.text for key in EXCLUDED):
            continue
        needed = [d for f in m.fragments if len(d := distinctive(f)) >= MIN_FRAGMENT]
        if needed and not any(in_order(needed, b) for b in blocks):
            missing.append(f"{m.where}: {m.text!r} (looked for {needed})")
    return missing


def test_every_python_message_is_documented() -> None:
    missing = undocumented(all_python_messages(), PAGE.read_text())
    assert not missing, "docs/troubleshooting.md does not explain:\n" + "\n".join(missing)


def test_every_nix_message_is_documented() -> None:
    missing = undocumented(all_nix_messages(), PAGE.read_text())
    assert not missing, "docs/troubleshooting.md does not explain:\n" + "\n".join(missing)


def test_every_usage_error_is_documented() -> None:
    text = normalize(PAGE.read_text())
    missing = sorted(m for m in argparse_messages() if m not in text)
    assert not missing, f"docs/troubleshooting.md does not explain argparse's {missing}"


def test_exclusions_are_still_in_the_code() -> None:
    """An exclusion whose message is gone must go too."""
    texts = [m.text for m in all_python_messages() + all_nix_messages()]
    stale = [key for key in EXCLUDED if not any(key in t for t in texts)]
    assert not stale, f"EXCLUDED names messages the code no longer has: {stale}"


def test_a_new_message_fails_the_check() -> None:
    """The extraction sees each kind of message site; an unexplained one is reported."""
    source = '''
def f(x):
    """A docstring is no message."""
    if x:
        raise UsageError(f"{x}: frobnicated beyond repair")
    log.warning("flux capacitor overheated", reason=x)
    print(f"nixseal frob: note: {x} wobbles", file=sys.stderr)
    failed.append(f"{x}: lost in the mail")
    return QuuxError("quux exploded")
'''
    found = list(python_messages(source, "new.py"))
    texts = {distinctive(f) for m in found for f in m.fragments}
    assert texts >= {
        "frobnicated beyond repair",
        "flux capacitor overheated",
        "nixseal frob: note",
        "wobbles",
        "lost in the mail",
        "quux exploded",
    }
    assert "A docstring is no message" not in texts
    assert len(undocumented(found, "nothing here")) == len(found)

    nix = """{ config, lib, ... }: {
  options.x = lib.mkOption { description = "Not a message: documentation."; };
  config.assertions = [ {
    assertion = false;
    message = "nixseal.x is ${toString 1} sideways: straighten it";
  } ];
  config.warnings = lib.optional true ("nixseal: the x are "
    + "upside down (${lib.concatStringsSep ", " [ "a" ]}): turn them over");
  y = throw "nixseal: y cannot be";
}"""
    found = list(nix_messages(nix, "new.nix"))
    texts = {distinctive(f) for m in found for f in m.fragments}
    assert {"nixseal.x is", "sideways: straighten it", "turn them over"} <= texts
    assert "nixseal: the x are upside down" in texts
    assert "nixseal: y cannot be" in texts
    assert not any("documentation" in t for t in texts)
