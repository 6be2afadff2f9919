"""What the reader verbs (host, admin, user, group) print after an edit,
and the rekey they offer: one wording for all four."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from nixseal.models.repo import ReaderKind
from nixseal.repo import rekey
from nixseal.repo.context import Context, rules_path_from_args
from nixseal.repo.readers import ReadersChange, add_reader, edit, remove_reader
from nixseal.repo.rules import Rules

# Past this many names a command line helps no one: `nixseal rekey` alone
# touches only the stale files.
_NAMES_MAX = 5


_KEY_HELP = {
    ReaderKind.HOST: "ssh-ed25519/ssh-rsa/age1 key string, a .pub file, ssh-keyscan output "
    "(file, or - for stdin)",
    ReaderKind.ADMIN: "age1 or ssh-ed25519/ssh-rsa public key, a .pub file, or - for stdin",
    ReaderKind.USER: "age1 or ssh-ed25519/ssh-rsa public key, a .pub file, or - for stdin",
}
_REMOVE_HELP = {
    ReaderKind.HOST: "remove a host from the rules, its groups and its secrets",
    ReaderKind.ADMIN: "remove an admin (never the last one)",
    ReaderKind.USER: "remove a user from the rules and its secrets",
}
# After adding a host or user that no secret lists yet.
_NEXT = {
    ReaderKind.HOST: 'next: list "{name}" in the hosts of its secrets (or in a group) in {where}, '
    "then run: nixseal rekey",
    ReaderKind.USER: 'next: list "{name}" in the users of its secrets in {where}',
}


class _Intermixed(argparse.ArgumentParser):
    """A subcommand whose optional KEY may follow its options (`host add web2
    --replace KEY`): argparse gives an optional positional nothing when
    options stand between it and the one before, unless parsed intermixed."""

    _inner = False

    def parse_known_args(  # type: ignore[override]
        self, args: Any = None, namespace: Any = None
    ) -> tuple[argparse.Namespace, list[str]]:
        if self._inner:
            return super().parse_known_args(args, namespace)
        self._inner = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._inner = False


def add_commands(
    parser: argparse.ArgumentParser, kind: ReaderKind
) -> tuple[Any, argparse.ArgumentParser]:
    """`add NAME KEY [--replace]` and `remove NAME` of host, admin and user;
    the subcommands and `add`, for a verb to extend."""
    # none given: the verb's help (args.print_help)
    cls = _Intermixed if kind is ReaderKind.HOST else type(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=cls)
    add = sub.add_parser("add", help=f"add {_a(kind)}, or change its key with --replace")
    add.add_argument("name", help=f"{kind} name")
    # a host's key may be made here instead (host add --generate)
    add.add_argument("key", nargs="?" if kind is ReaderKind.HOST else None, help=_KEY_HELP[kind])
    add.add_argument("--replace", action="store_true", help=f"change the key of an existing {kind}")
    add_rekey_flags(add)
    remove = sub.add_parser("remove", help=_REMOVE_HELP[kind])
    remove.add_argument("name", help=f"{kind} name")
    add_rekey_flags(remove)
    return sub, add


def run_command(args: argparse.Namespace, kind: ReaderKind) -> int:
    if args.command is None:
        args.print_help()
        return 0
    path = rules_path_from_args(args)
    if args.command == "remove":
        return report(args, str(kind), edit(path, remove_reader(kind, args.name)))
    change = edit(path, add_reader(kind, args.name, args.key, replace=args.replace))
    if not change.unchanged and not change.rekey and not args.replace and kind in _NEXT:
        print(f"{change.done} in {change.where}")
        print(_NEXT[kind].format(name=args.name, where=change.where))
        return 0
    return report(args, str(kind), change, old="key" if args.replace else "recipients")


def _a(kind: ReaderKind) -> str:
    return f"an {kind}" if kind is ReaderKind.ADMIN else f"a {kind}"


def add_rekey_flags(parser: argparse.ArgumentParser) -> None:
    when = parser.add_mutually_exclusive_group()
    when.add_argument("--rekey", action="store_true", help="rekey affected secrets, no prompt")
    when.add_argument("--no-rekey", action="store_true", help="only print the rekey command")


def report(
    args: argparse.Namespace,
    verb: str,
    change: ReadersChange,
    *,
    old: str = "recipients",
    announce: bool = True,
) -> int:
    """Print what changed (unless announced already) and what to do next;
    rekey when asked. The exit status.

    old names what stale files are encrypted to ("the old key" for a key change).
    """
    if change.unchanged:
        print(change.done)
        return 0
    if announce:
        print(f"{change.done} in {change.where}")
    ctx = Context.from_args(args, change.rules)
    code = 0
    if change.rekey:
        code = _offer_rekey(ctx, args, verb, change.rekey, old)
    if change.rotate:
        _advise_rotation(ctx.rules, change)
    if change.unread:
        print(
            f"no host or user reads {_names(change.unread)} any more; if they are no longer "
            f"needed, remove them from {change.where} and delete their .age files"
        )
    return code


def _offer_rekey(
    ctx: Context, args: argparse.Namespace, verb: str, names: list[str], old: str
) -> int:
    command = "nixseal rekey" + (
        "".join(f" {n}" for n in names) if len(names) <= _NAMES_MAX else ""
    )
    count = f"{len(names)} secret{'s are' if len(names) != 1 else ' is'}"
    if args.no_rekey or (not args.rekey and not _confirm(len(names))):
        print(f"{count} encrypted to the old {old}; run: {command}")
        return 0
    p = rekey.plan(ctx, names, force=False)
    done = rekey.reencrypt(ctx, p.todo, p.failed)
    for msg in p.failed:
        print(f"nixseal {verb}: error: {msg}; skipped", file=sys.stderr)
    fresh = f", {len(p.fresh)} already up to date" if p.fresh else ""
    missing = f", {len(p.missing)} not created yet" if p.missing else ""
    print(f"rekeyed {done} of {len(names)} secrets{fresh}{missing}")
    return 1 if p.failed else 0


def _advise_rotation(rules: Rules, change: ReadersChange) -> None:
    """A removed reader may keep what it read: rekeying hides only new values."""
    renewable = [n for n in change.rotate if _renewable(rules, n)]
    by_hand = [n for n in change.rotate if n not in renewable]
    who = ", ".join(change.lost)
    print(
        f"{who} could read {len(change.rotate)} secret{'s' if len(change.rotate) != 1 else ''}; "
        "if a copy may have been kept, give them new values:"
    )
    if renewable:
        print(f"  nixseal rotate {' '.join(renewable)}")
    for name in by_hand:
        print(f"  nixseal edit {name}")


def _renewable(rules: Rules, name: str) -> bool:
    rule = rules.secrets[name]
    return rule.generator is not None or rule.source is not None or rule.part_of is not None


def _names(names: list[str]) -> str:
    shown = ", ".join(names[:_NAMES_MAX])
    return shown + (f" and {len(names) - _NAMES_MAX} more" if len(names) > _NAMES_MAX else "")


def _confirm(count: int) -> bool:
    if not sys.stdin.isatty():
        return False
    answer = input(f"rekey the {count} secret{'s' if count != 1 else ''} now? [y/N] ")
    return answer.strip().lower() in ("y", "yes")
