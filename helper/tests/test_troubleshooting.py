"""docs/troubleshooting.md explains every message nixseal can print.

The messages are read from the code, not from a list kept by hand, so a new
message fails this test until the page explains it:

- Python (nixseal/**/*.py): the strings of every message site: ``raise
  X(...)``, an exception built for later (``...Error(...)``,
  ``...Failure(...)``), a log event (``.warning(...)``, ``.error(...)``), a
  ``print(...)`` to stderr, saying error/warning/note, or shaped as a
  finding (``f"{where}: ..."``). From each site the text is followed to where
  it comes from, by the code's structure rather than by names kept here: a
  variable to what is assigned, appended or looped over into it (in its
  function, else its module, else a module-level constant of the package),
  an attribute (``outcome.failed``) to what any module puts in it, and a
  call to what that function returns. Renaming a function or a variable
  therefore changes nothing here.
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

LOG_LEVELS = {"warning", "error"}
# Calls whose result is made of their arguments' text.
PASS_THROUGH = {"join", "str", "format", "tuple", "list", "sorted", "sub", "strip"}
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
    "Non-base64 digit found": "header.b64decode's callers say 'bad armor base64' or 'bad base64'",
    "non-ASCII character": "header.b64decode's callers say 'bad armor base64' or 'bad base64'",
    "is not JSON serializable": "fastjson.dumps gets what the install builds; JSON logs pass repr",
}
# nixseal.util.lean's errors: mistakes in nixseal's own declarations, which
# fail at import in the tests, never on a user's machine.
EXCLUDED |= {
    text: "a mistake in nixseal's code, met by its tests"
    for text in (
        "Got unexpected field names",
        "a field without a default follows one with a default",
        "field names cannot start with an underscore",
        "arguments, got",
        "a NamedTuple derives from NamedTuple alone",
        "generator didn't",
    )
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


def _call_strings(call: ast.Call) -> list[str]:
    args = [*call.args, *(k.value for k in call.keywords)]
    return [f for a in args for f in _fragments(a)]


def _finding_shaped(call: ast.Call) -> bool:
    """print(f"{where}: ...") to stdout: the lines `check` and `rekey` report."""
    first = call.args[0] if call.args else None
    return (
        isinstance(first, ast.JoinedStr)
        and len(first.values) > 1
        and isinstance(first.values[0], ast.FormattedValue)
        and isinstance(first.values[1], ast.Constant)
        and str(first.values[1].value).startswith(": ")
    )


def _is_message_print(call: ast.Call) -> bool:
    if _call_name(call) != "print":
        return False
    to_stderr = any(
        k.arg == "file" and isinstance(k.value, ast.Attribute) and k.value.attr == "stderr"
        for k in call.keywords
    )
    return (
        to_stderr
        or _finding_shaped(call)
        or any(m in f for f in _call_strings(call) for m in MARKERS)
    )


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and _fragments(body[0].value):
                ids.add(id(body[0].value))
    return ids


def _tested_strings(tree: ast.AST) -> set[int]:
    """Strings the code looks for in other text ("x" in reason, .startswith("x"))."""
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) or (
            isinstance(node, ast.Call) and _call_name(node) in STRING_TESTS
        ):
            ids |= {id(sub) for sub in ast.walk(node)}
    return ids


def _is_message_call(call: ast.Call) -> bool:
    """An exception built, a log event, or a message printed."""
    name = _call_name(call)
    return (
        name.endswith(("Error", "Failure"))
        or _is_message_print(call)
        or (name in LOG_LEVELS and isinstance(call.func, ast.Attribute))
    )


Scope = ast.Module | ast.FunctionDef | ast.AsyncFunctionDef
Source = tuple[ast.AST, str]  # an expression, the file it is in


class Flow:
    """Where the text of an expression comes from, across the package."""

    def __init__(self, files: dict[str, ast.Module]) -> None:
        self.scope_of: dict[int, Scope] = {}  # id(node) -> innermost function or module
        self.file_of: dict[int, str] = {}
        self.into: dict[tuple[int, str], list[ast.AST]] = {}  # (id(scope), name) -> values
        self.attrs: dict[str, list[Source]] = {}  # attribute name -> values, any file
        self.constants: dict[str, list[Source]] = {}  # module-level name -> values
        self.returns: dict[str, list[Source]] = {}  # function name -> returned values
        self.fields: dict[str, list[str]] = {}  # class name -> its annotated fields, in order
        for tree in files.values():
            for node in ast.walk(tree):
                if isinstance(node, ast.ClassDef):
                    self.fields[node.name] = [
                        s.target.id
                        for s in node.body
                        if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name)
                    ]
        self.module_of = files
        for filename, tree in files.items():
            self._index(tree, tree, filename)

    def _index(self, node: ast.AST, scope: Scope, filename: str) -> None:
        for child in ast.iter_child_nodes(node):
            inner = child if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef) else scope
            self.scope_of[id(child)] = inner
            self.file_of[id(child)] = filename
            for target, value in self._stores(child):
                self._store(target, value, scope, filename)
            if isinstance(child, ast.Return) and child.value is not None:  # noqa: SIM102
                if isinstance(scope, ast.FunctionDef | ast.AsyncFunctionDef):
                    self.returns.setdefault(scope.name, []).append((child.value, filename))
            self._index(child, inner, filename)

    def _stores(self, node: ast.AST) -> list[tuple[ast.expr, ast.expr]]:
        if isinstance(node, ast.Call) and not isinstance(node.func, ast.Attribute):
            # Drift(name, path, status, detail=...): what a record's fields hold
            fields = self.fields.get(_call_name(node), [])
            stores: list[tuple[ast.expr, ast.expr]] = [
                (ast.Attribute(ast.Name("_"), f, ast.Store()), a)
                for f, a in zip(fields, node.args, strict=False)
            ]
            return stores + [
                (ast.Attribute(ast.Name("_"), k.arg, ast.Store()), k.value)
                for k in node.keywords
                if k.arg
            ]
        if isinstance(node, ast.Dict):
            # {"findings": findings} ... e["findings"]: a report's fields
            return [
                (ast.Attribute(ast.Name("_"), f"[{k.value}]", ast.Store()), v)
                for k, v in zip(node.keys, node.values, strict=True)
                if isinstance(k, ast.Constant) and isinstance(k.value, str)
            ]
        if isinstance(node, ast.Assign):
            return [(t, node.value) for t in node.targets]
        if isinstance(node, ast.AugAssign | ast.AnnAssign) and node.value is not None:
            return [(node.target, node.value)]
        if isinstance(node, ast.For | ast.comprehension):
            return [(node.target, node.iter)]
        if isinstance(node, ast.NamedExpr):
            return [(node.target, node.value)]
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("append", "extend", "insert", "add")
        ):
            return [(node.func.value, a) for a in node.args]
        return []

    def _store(self, target: ast.AST, value: ast.AST, scope: Scope, filename: str) -> None:
        if isinstance(target, ast.Name):
            self.into.setdefault((id(scope), target.id), []).append(value)
            if isinstance(scope, ast.Module):
                self.constants.setdefault(target.id, []).append((value, filename))
        elif isinstance(target, ast.Attribute):
            self.attrs.setdefault(target.attr, []).append((value, filename))
        elif isinstance(target, ast.Tuple | ast.List):
            for element in target.elts:
                self._store(element, value, scope, filename)

    def texts(self, node: ast.AST) -> Iterator[ast.Constant | ast.JoinedStr]:
        """The strings node's text is made of: the literals in it where they
        are text (not a key, an index or another call's argument), then
        through variables, attributes and calls to where they come from."""
        seen: set[int] = set()
        todo: list[ast.AST] = [node]
        while todo:
            expr = todo.pop()
            if id(expr) in seen:
                continue
            seen.add(id(expr))
            if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
                yield expr
            elif isinstance(expr, ast.JoinedStr):
                yield expr
                todo += [v.value for v in expr.values if isinstance(v, ast.FormattedValue)]
            elif isinstance(expr, ast.BinOp | ast.BoolOp | ast.IfExp):
                todo += [expr.left, expr.right] if isinstance(expr, ast.BinOp) else []
                todo += expr.values if isinstance(expr, ast.BoolOp) else []
                todo += [expr.body, expr.orelse] if isinstance(expr, ast.IfExp) else []
            elif isinstance(expr, ast.List | ast.Tuple | ast.Set | ast.Starred):
                todo += expr.elts if not isinstance(expr, ast.Starred) else [expr.value]
            elif isinstance(expr, ast.ListComp | ast.GeneratorExp):
                todo.append(expr.elt)
            elif isinstance(expr, ast.Name):
                # its function's, else its module's, else a constant imported from elsewhere
                scope = self.scope_of.get(id(expr))
                local = self.into.get((id(scope), expr.id)) if scope is not None else None
                module = self.into.get((id(self.module_of[self.file_of[id(expr)]]), expr.id))
                todo += local or module or [v for v, _ in self.constants.get(expr.id, [])]
            elif isinstance(expr, ast.Attribute):
                todo += [v for v, _ in self.attrs.get(expr.attr, [])]
            elif isinstance(expr, ast.Subscript) and isinstance(expr.slice, ast.Constant):
                todo += [v for v, _ in self.attrs.get(f"[{expr.slice.value!s}]", [])]
            elif isinstance(expr, ast.Call):
                name = _call_name(expr)
                if name in PASS_THROUGH:
                    # "; ".join(parts), str(x), "{}".format(x): the parts are the text
                    todo += expr.args
                todo += [v for v, _ in self.returns.get(name, [])]

    def where(self, node: ast.AST) -> str:
        return f"{self.file_of.get(id(node), '?')}:{getattr(node, 'lineno', 0)}"


def _joins_problems(call: ast.Call) -> bool:
    """ "; ".join(problems): several messages made one line (a table's cell)."""
    func = call.func
    return (
        isinstance(func, ast.Attribute)
        and func.attr == "join"
        and isinstance(func.value, ast.Constant)
        and func.value.value == "; "
    )


def _message_sites(tree: ast.AST) -> Iterator[tuple[ast.AST, list[ast.AST], bool]]:
    """(site, its arguments, whether its own literals are message text).

    Any print is followed to the parts it takes from elsewhere (a report's
    findings reach the terminal through a table row); only a message-shaped
    one is itself a message."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
            call, own = node.exc, True
        elif isinstance(node, ast.Call) and _is_message_call(node):
            call, own = node, True
        elif isinstance(node, ast.Call) and (_call_name(node) == "print" or _joins_problems(node)):
            call, own = node, False
        else:
            continue
        yield node, [*call.args, *(k.value for k in call.keywords if k.arg != "file")], own


def python_messages_of(files: dict[str, str]) -> list[Message]:
    """Every message of these sources (file name -> text), followed to its parts."""
    trees = {name: ast.parse(text) for name, text in files.items()}
    flow = Flow(trees)
    skip: set[int] = set()
    for tree in trees.values():
        skip |= _docstrings(tree) | _tested_strings(tree)
    found: dict[Message, None] = {}  # a raise of a ...Error(...) is found twice
    for filename, tree in trees.items():
        for site, args, is_message in _message_sites(tree):
            # The site's own literals are one message, in order...
            own = [f for a in args for f in _fragments(a)] if is_message else []
            if any(f.strip() for f in own):
                found[Message(f"{filename}:{site.lineno}", tuple(own))] = None  # type: ignore[attr-defined]
            # ...and each part it takes from elsewhere is looked for on its own.
            for arg in args:
                for text in flow.texts(arg):
                    fragments = _fragments(text)
                    if text in args or id(text) in skip or not any(f.strip() for f in fragments):
                        continue
                    found[Message(flow.where(text), tuple(fragments))] = None
    return list(found)


def python_messages(source: str, filename: str) -> list[Message]:
    return python_messages_of({filename: source})


def all_python_messages() -> list[Message]:
    files = {
        str(path.relative_to(PACKAGE)): path.read_text() for path in sorted(PACKAGE.rglob("*.py"))
    }
    return python_messages_of(files)


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
    """The extraction sees each kind of message site and follows its parts,
    whatever the functions and variables are called; an unexplained message
    is reported."""
    source = '''
REASON_PART = "the gears are stripped"

@dataclass(frozen=True)
class Report:
    name: str
    note: str = ""

def zorp(x):
    """A docstring is no message."""
    if x == "unused":
        return "left on the shelf"
    return f"{x} is out of phase"

def f(x):
    woes = []
    if x:
        raise UsageError(f"{x}: frobnicated beyond repair")
    log.warning("flux capacitor overheated", reason=x)
    print(f"nixseal frob: note: {x} wobbles", file=sys.stderr)
    woes.append(f"{x}: lost in the mail")
    blurb = f"because {REASON_PART}"
    r = Report(x, note="ran out of ink")
    print(f"{x}: {zorp(x)} ({blurb}); {r.note}")
    cells = {"findings": ["; ".join(woes)]}
    for w in woes:
        print(w, file=sys.stderr)
    print("  ".join(cells["findings"]))
    return QuuxError("quux exploded")
'''
    found = list(python_messages(source, "new.py"))
    texts = {distinctive(f) for m in found for f in m.fragments}
    assert texts >= {
        "frobnicated beyond repair",
        "flux capacitor overheated",
        "nixseal frob: note",
        "wobbles",
        "lost in the mail",  # a list printed later
        "quux exploded",
        "is out of phase",  # what a function called in a message returns
        "left on the shelf",
        "because",  # a variable's text
        "the gears are stripped",  # a module constant
        "ran out of ink",  # a record's field
    }
    assert "A docstring is no message" not in texts
    assert "unused" not in texts, "a string compared with is looked for, not shown"
    worded = [m for m in found if any(len(distinctive(f)) >= MIN_FRAGMENT for f in m.fragments)]
    assert len(undocumented(found, "nothing here")) == len(worded)

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
