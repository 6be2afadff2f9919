"""Shell completion scripts for bash, zsh and fish, read off the parser.

The parser is the one source: a new verb, option or choice is completed
without anyone editing a script. What the parser cannot know, the names in
the rules, the scripts ask `nixseal completion --list KIND` for at the time
of completion (quietly: a shell without rules at hand completes nothing).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass

# Positionals named so hold names from the rules; the kind follows the verb.
_NAME_DESTS = ("name", "names", "members")
_KIND_OF_VERB = {
    "host": "hosts",
    "admin": "admins",
    "user": "users",
    "group": "groups",
    "status": "hosts",
}
LIST_KINDS = ("secrets", "hosts", "admins", "users", "groups")
# Option values that are paths (the rest are free words, completed with nothing).
_PATH_METAVARS = ("PATH", "FILE", "DIR", "IDENTITY")


@dataclass(frozen=True)
class Option:
    flags: tuple[str, ...]
    help: str
    value: str  # "" (a flag), "path", "word", or "choice"
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class Command:
    path: str  # "" for nixseal itself, "host/add" for `nixseal host add`
    commands: tuple[tuple[str, str], ...]  # (name, help) of its subcommands
    options: tuple[Option, ...]
    names: str = ""  # the LIST_KINDS its positionals complete; "" for paths
    first: int = 0  # which positional (from 0) takes a name
    rest: bool = False  # and every one after it (NAME...)

    def names_test(self, n: str) -> str:
        """A shell arithmetic test: does positional number n take a name?"""
        return f"{n} >= {self.first}" if self.rest else f"{n} == {self.first}"


def commands(parser: argparse.ArgumentParser) -> list[Command]:
    """Every command of the parser, nixseal's own first."""
    out: list[Command] = []
    _walk(parser, "", out)
    return out


def _walk(parser: argparse.ArgumentParser, path: str, out: list[Command]) -> None:
    subs: list[tuple[str, str, argparse.ArgumentParser]] = []
    options: list[Option] = []
    names: tuple[str, int, bool] = ("", 0, False)
    positional = 0
    for action in parser._actions:  # argparse has no public walk
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            subs += [(n, helps.get(n, ""), p) for n, p in action.choices.items()]
        elif action.option_strings:
            options.append(_option(action))
        else:
            # a new one's name (`host add NAME`) is the user's to make up
            if action.dest in _NAME_DESTS and not path.endswith("/add"):
                kind = _KIND_OF_VERB.get(path.partition("/")[0], "secrets")
                kind = "hosts" if action.dest == "members" else kind
                names = (kind, positional, action.nargs in ("*", "+"))
            positional += 1
    out.append(Command(path, tuple((n, h) for n, h, _ in subs), tuple(options), *names))
    for name, _, sub in subs:
        _walk(sub, f"{path}/{name}" if path else name, out)


def _option(action: argparse.Action) -> Option:
    flags = tuple(action.option_strings)
    help_text = (action.help or "").replace("%(default)s", str(action.default))
    if action.nargs == 0:
        return Option(flags, help_text, "")
    if action.choices is not None:
        return Option(flags, help_text, "choice", tuple(str(c) for c in action.choices))
    metavar = str(action.metavar or action.dest).upper()
    return Option(flags, help_text, "path" if metavar in _PATH_METAVARS else "word")


def _sh(text: str) -> str:
    """text as one single-quoted word of bash or zsh."""
    return "'" + text.replace("'", "'\\''") + "'"


def _fish(text: str) -> str:
    """text as one single-quoted word of fish (which has \\ and \\' inside)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _steps(cmds: list[Command]) -> list[str]:
    """ "command/subcommand" for each step down the tree ("/host", "host/add")."""
    return [f"{c.path.rpartition('/')[0]}/{c.path.rpartition('/')[2]}" for c in cmds[1:]]


def _valued(cmds: list[Command]) -> str:
    """Every option that takes a value: the word after it is no positional."""
    return " ".join(sorted({f for c in cmds for o in c.options if o.value for f in o.flags}))


# --- bash and zsh (one shape: the loop that finds the command differs only in
# how the words are numbered) -----------------------------------------------------------


def _walk_words(cmds: list[Command], words: str, first: int, end: str) -> list[str]:
    return [
        f"    local valued={_sh(' ' + _valued(cmds) + ' ')}",
        f"    for ((i = {first}; i < {end}; i++)); do",
        f"        w=${{{words}[i]}}",
        f'        [[ $w == --rules ]] && rules=(--rules "${{{words}[i+1]}}")',
        '        case "$at/$w" in',
        f"            ({'|'.join(_steps(cmds))}) at=${{at:+$at/}}$w; n=0 ;;",
        f'            (*) [[ $w == -* || $valued == *" ${{{words}[i-1]}} "* ]] || n=$((n + 1)) ;;',
        "        esac",
        "    done",
    ]


def _value_cases(
    cmds: list[Command], offer: Callable[[Sequence[str]], str], files: str
) -> list[str]:
    """The cases after the walk: an option's value, then an option; what is
    left to the caller is the case of a subcommand or a name.

    offer(words) is the shell's command that offers words, files its own
    completion of paths."""
    lines = []
    for c in cmds:
        for o in (o for o in c.options if o.value):
            action = {"choice": offer(o.choices), "path": files}.get(o.value, ":")
            lines.append(
                f"        ({'|'.join(f'{c.path}/{f}' for f in o.flags)}) {action}; return ;;"
            )
    lines += ["    esac", "    if [[ $cur == -* ]]; then", '        case "$at" in']
    for c in cmds:
        lines.append(
            f"            ({_sh(c.path)}) {offer([f for o in c.options for f in o.flags])} ;;"
        )
    return [*lines, "        esac", "        return", "    fi", '    case "$at" in']


def bash(parser: argparse.ArgumentParser) -> str:
    cmds = commands(parser)
    lines = [
        "# bash completion for nixseal; made by `nixseal completion bash`",
        "_nixseal() {",
        "    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}",
        "    local at='' i w n=0 rules=()",
        *_walk_words(cmds, "COMP_WORDS", 1, "COMP_CWORD"),
        '    case "$at/$prev" in',
    ]
    lines += _value_cases(
        cmds,
        lambda words: f'COMPREPLY=($(compgen -W {_sh(" ".join(words))} -- "$cur"))',
        'COMPREPLY=($(compgen -f -- "$cur"))',
    )
    for c in cmds:
        if c.commands:
            subs = _sh(" ".join(n for n, _ in c.commands))
            lines.append(f'        ({_sh(c.path)}) COMPREPLY=($(compgen -W {subs} -- "$cur")) ;;')
        elif c.names:
            lines.append(
                f"        ({_sh(c.path)}) (( {c.names_test('n')} )) && COMPREPLY=($(compgen -W "
                f'"$(nixseal "${{rules[@]}}" completion --list {c.names} 2>/dev/null)"'
                ' -- "$cur")) ;;'
            )
    lines += ["    esac", "}", "complete -o default -F _nixseal nixseal", ""]
    return "\n".join(lines)


def zsh(parser: argparse.ArgumentParser) -> str:
    cmds = commands(parser)
    lines = [
        "#compdef nixseal",
        "# zsh completion for nixseal; made by `nixseal completion zsh`",
        "_nixseal() {",
        # not `path`: in zsh that is $PATH
        "    local cur=${words[CURRENT]} prev=${words[CURRENT-1]} at='' i w n=0",
        "    local -a rules described",
        *_walk_words(cmds, "words", 2, "CURRENT"),
        '    case "$at/$prev" in',
    ]
    lines += _value_cases(
        cmds, lambda words: f"compadd -- {' '.join(_sh(w) for w in words)}", "_files"
    )
    for c in cmds:
        if c.commands:
            described = " ".join(_sh(f"{n}:{h}") for n, h in c.commands)
            lines.append(
                f"        ({_sh(c.path)}) described=({described}); _describe command described ;;"
            )
        elif c.names:
            lines.append(
                f"        ({_sh(c.path)}) (( {c.names_test('n')} )) && compadd -- "
                f'${{(f)"$(nixseal $rules completion --list {c.names} 2>/dev/null)"}} || _files ;;'
            )
        else:
            lines.append(f"        ({_sh(c.path)}) _files ;;")
    lines += [
        "    esac",
        "}",
        'if [[ $funcstack[1] == _nixseal ]]; then _nixseal "$@"; else compdef _nixseal nixseal; fi',
        "",
    ]
    return "\n".join(lines)


# --- fish -------------------------------------------------------------------------------


def fish(parser: argparse.ArgumentParser) -> str:
    cmds = commands(parser)
    lines = [
        "# fish completion for nixseal; made by `nixseal completion fish`",
        "function __nixseal_at --description 'the command typed so far is $argv[1]'",
        "    # with $argv[2]: the word being typed is positional number $argv[2] (from 0);",
        "    # with $argv[3] = 1: or a later one",
        "    set -l at ''",
        "    set -l n 0",
        "    set -l prev ''",
        "    for w in (commandline -opc)[2..-1]",
        f'        if contains -- "$at/$w" {" ".join(_fish(s) for s in _steps(cmds))}',
        '            test -n "$at"; and set at "$at/$w"; or set at $w',
        "            set n 0",
        "        else if not string match -q -- '-*' $w;"
        f' and not contains -- "$prev" {_valued(cmds)}',
        "            set n (math $n + 1)",
        "        end",
        "        set prev $w",
        "    end",
        '    test "$at" = "$argv[1]"; or return 1',
        "    set -q argv[2]; or return 0",
        '    test $n -eq $argv[2]; or begin; test "$argv[3]" = 1; and test $n -gt $argv[2]; end',
        "end",
        "function __nixseal_names --description 'names of one kind in the rules'",
        "    set -l words (commandline -opc)",
        "    set -l rules",
        "    set -l i (contains -i -- --rules $words); and set rules --rules $words[(math $i + 1)]",
        "    command -q nixseal; and nixseal $rules completion --list $argv[1] 2>/dev/null",
        "end",
        "complete -c nixseal -f",
    ]
    for c in cmds:
        at = f"-n {_fish(f'__nixseal_at {_fish(c.path)}')}"
        for name, help_text in c.commands:
            lines.append(f"complete -c nixseal {at} -a {name} -d {_fish(help_text)}")
        for o in c.options:
            spec = " ".join(f"-l {f[2:]}" if f.startswith("--") else f"-s {f[1:]}" for f in o.flags)
            if o.value == "choice":
                spec += f" -x -a {_fish(' '.join(o.choices))}"
            elif o.value == "path":
                spec += " -r -F"  # a file, and only a file
            elif o.value == "word":
                spec += " -x"
            lines.append(f"complete -c nixseal {at} {spec} -d {_fish(o.help)}")
        if c.names:
            test = f"__nixseal_at {_fish(c.path)} {c.first} {int(c.rest)}"
            names = f"(__nixseal_names {c.names})"
            lines.append(f"complete -c nixseal -n {_fish(test)} -a {_fish(names)}")
            other = f"__nixseal_at {_fish(c.path)}; and not {test}"
            lines.append(f"complete -c nixseal -n {_fish(other)} -F")
        elif not c.commands:
            lines.append(f"complete -c nixseal {at} -F")
    return "\n".join(lines) + "\n"


SCRIPTS = {"bash": bash, "zsh": zsh, "fish": fish}
