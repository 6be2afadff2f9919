"""What each host has installed, compared with the repository (`nixseal status`).

Every install writes <mountPoint>/status.json on the host
(nixseal.engine.status): each entry's state in the last run and the
SHA-256 of the age file its value came from. This reads it over ssh with a
plain `cat` as root, so the host needs nothing on its PATH but a shell,
and compares each source with the SHA-256 of the repository's file now:

- up to date: installed from the file the repository has;
- outdated: installed from another file (the repository's is newer, or
  the host runs a newer commit than this checkout);
- failed: the last install failed it (it keeps an older value, or none);
- missing: the rules give it to the host, which has no value of it,
  because its configuration does not declare it (least privilege: narrow
  the rules) or removed it;
- removed: the host still has a value that the rules no longer give it.

Templates are not in the repository: their install state is reported.
The ssh command is `ssh -o BatchMode=yes -o ConnectTimeout=10`, or
$NIXSEAL_SSH (split as a shell would): anything that runs `CMD root@HOST
COMMAND` on the host.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

from nixseal.errors import UsageError
from nixseal.models.install import ENTRY_STATES
from nixseal.models.repo import StatusEntryJson, StatusHostJson, StatusReportJson
from nixseal.repo.rules import Rules, did_you_mean
from nixseal.util.paths import display_path
from nixseal.util.readfile import AGE_FILE_LIMIT, read_regular

SSH_ENV = "NIXSEAL_SSH"
DEFAULT_SSH = ("ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10")
# The main mount point and neededForUsers' (for-users.nix), as the module sets them.
STATUS_FILES = ("/run/secrets.d/status.json", "/run/secrets-for-users.d/status.json")
STATUS_VERSION = 1
# What differs from the repository; templates count only when failed.
DIFFERENCES = frozenset({"outdated", "failed", "missing", "removed"})
_HEX = frozenset("0123456789abcdef")
_PARALLEL = 8
_SSH_UNREACHABLE = 255  # ssh's own failures (not the remote command's)


class Row(NamedTuple):
    kind: str  # secret or template
    name: str
    status: str
    detail: str | None
    installed: str | None  # SHA-256 of the age file on the host
    repository: str | None  # SHA-256 of the repository's age file

    @property
    def differs(self) -> bool:
        return self.status in DIFFERENCES


class HostStatus(NamedTuple):
    host: str
    error: str | None  # unreachable or unreadable: the one line that says so
    generations: dict[str, int]  # mount point -> live generation
    rows: list[Row]
    reachable: bool = True

    @property
    def differences(self) -> int:
        return sum(r.differs for r in self.rows)


def ssh_command(given: str | None) -> list[str]:
    text = given if given is not None else os.environ.get(SSH_ENV)
    if text is None:
        return list(DEFAULT_SSH)
    try:
        argv = shlex.split(text)
    except ValueError as err:
        raise UsageError(f"${SSH_ENV} / --ssh: cannot split {text!r}: {err}") from err
    if not argv:
        raise UsageError(f"${SSH_ENV} / --ssh is empty: give a command such as `ssh -F FILE`")
    return argv


def select_hosts(rules: Rules, names: Sequence[str]) -> list[str]:
    for name in names:
        if name not in rules.hosts:
            hint = did_you_mean(name, rules.hosts) or f"known: {', '.join(sorted(rules.hosts))}"
            raise UsageError(f"{display_path(rules.path)}: no host {name!r}; {hint}")
    return list(dict.fromkeys(names)) or sorted(rules.hosts)


def fleet(
    rules: Rules, hosts: Sequence[str], ssh: Sequence[str], files: Sequence[str] = STATUS_FILES
) -> list[HostStatus]:
    """Each host's status, in the order given; hosts are asked in parallel."""
    digests = repository_digests(rules)
    with ThreadPoolExecutor(max_workers=min(_PARALLEL, max(len(hosts), 1))) as pool:
        return list(pool.map(lambda h: host_status(rules, h, ssh, files, digests), hosts))


def repository_digests(rules: Rules) -> dict[str, str | None]:
    """SHA-256 of each secret's age file now, None when there is none."""
    found: dict[str, str | None] = {}
    for name in rules.secrets:
        try:
            found[name] = hashlib.sha256(
                read_regular(rules.file_for(name), AGE_FILE_LIMIT)
            ).hexdigest()
        except OSError:
            found[name] = None
    return found


def host_status(
    rules: Rules,
    host: str,
    ssh: Sequence[str],
    files: Sequence[str],
    digests: Mapping[str, str | None],
) -> HostStatus:
    # 2>/dev/null: a host without neededForUsers secrets has no second file
    remote = f"cat {' '.join(shlex.quote(f) for f in files)} 2>/dev/null"
    argv = [*ssh, f"root@{host}", remote]
    try:
        proc = subprocess.run(argv, capture_output=True, check=False, timeout=120)
    except FileNotFoundError:
        why = f"cannot run {argv[0]!r}: not found (set ${SSH_ENV})"
        return HostStatus(host, why, {}, [], reachable=False)
    except subprocess.TimeoutExpired:
        return HostStatus(host, "unreachable: no answer in 120 s", {}, [], reachable=False)
    if proc.returncode == _SSH_UNREACHABLE:
        why = _last_line(proc.stderr) or "ssh failed"
        return HostStatus(host, f"unreachable: {why}", {}, [], reachable=False)
    try:
        docs = parse(proc.stdout)
    except ValueError as err:
        return HostStatus(host, f"unreadable status ({err})", {}, [])
    if not docs:
        return HostStatus(
            host,
            f"no status file ({files[0]}): nixseal there predates `nixseal status`, "
            "or has not installed since",
            {},
            [],
        )
    generations = {d["mountPoint"]: d["generation"] for d in docs}
    entries: dict[str, Seen] = {}
    for d in docs:
        entries.update(d["entries"])
    return HostStatus(host, None, generations, compare(rules, host, entries, digests))


def _last_line(data: bytes) -> str:
    lines = [ln.strip() for ln in data.decode("utf-8", "replace").splitlines() if ln.strip()]
    return lines[-1][:200] if lines else ""


def parse(data: bytes) -> list[dict[str, Any]]:
    """The status documents `cat` printed, one after the other, each checked."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("not UTF-8") from None
    decoder = json.JSONDecoder()
    docs: list[dict[str, Any]] = []
    at = 0
    while True:
        while at < len(text) and text[at].isspace():
            at += 1
        if at == len(text):
            return docs
        try:
            doc, at = decoder.raw_decode(text, at)
        except json.JSONDecodeError as err:
            raise ValueError(f"not JSON: {err.msg}") from None
        docs.append(_checked(doc))


def _checked(doc: Any) -> dict[str, Any]:
    if not isinstance(doc, dict) or doc.get("version") != STATUS_VERSION:
        version = doc.get("version") if isinstance(doc, dict) else None
        raise ValueError(f"version {version!r}, this nixseal reads version {STATUS_VERSION}")
    gen, mount, raw = doc.get("generation"), doc.get("mountPoint"), doc.get("entries")
    if type(gen) is not int or not isinstance(mount, str) or not isinstance(raw, dict):
        raise ValueError("generation, mountPoint or entries missing")
    entries: dict[str, Seen] = {}
    for key, value in raw.items():
        kind, _, name = str(key).partition(":")
        state = value.get("state") if isinstance(value, dict) else None
        source = value.get("source") if isinstance(value, dict) else None
        good_source = source is None or (
            isinstance(source, str) and len(source) == 64 and set(source) <= _HEX
        )
        if kind not in ("secret", "template") or not name or state not in ENTRY_STATES:
            raise ValueError(f"entry {str(key)[:60]!r}")
        if not good_source:
            raise ValueError(f"entry {str(key)[:60]!r}: source")
        entries[key] = (state, source, _of(value, str(key)))
    return {"generation": gen, "mountPoint": mount, "entries": entries}


def _of(value: Mapping[str, Any], key: str) -> Of | None:
    """The document an entry takes a key of (or another secret's file), if any."""
    if "document" not in value:
        return None
    doc, fmt, path = value.get("document"), value.get("format"), value.get("key")
    if (
        not isinstance(doc, str)
        or not isinstance(fmt, str)
        or not isinstance(path, list)
        or not all(isinstance(p, str) for p in path)
    ):
        raise ValueError(f"entry {key[:60]!r}: document")
    return Of(doc, fmt, tuple(path))


class Of(NamedTuple):
    document: str
    format: str
    key: tuple[str, ...]

    def source(self, file_digest: str | None) -> str | None:
        """What the host records for a value taken so from a file of this digest."""
        if file_digest is None or not self.key:
            return file_digest
        joined = "\0".join((file_digest, self.format, *self.key))
        return hashlib.sha256(joined.encode()).hexdigest()


Seen = tuple[str, "str | None", "Of | None"]  # state, source, document


def compare(
    rules: Rules,
    host: str,
    entries: Mapping[str, Seen],
    digests: Mapping[str, str | None],
) -> list[Row]:
    """Each secret the rules give host, each value it has that they do not,
    and each template it has. Entries that take keys of one document (or
    another secret's file) count as that document: it is up to date when
    each of them is."""
    given = sorted(n for n, r in rules.secrets.items() if host in r.hosts)
    takers: dict[str, list[tuple[str, Seen]]] = {}
    for key, seen in entries.items():
        kind, _, name = key.partition(":")
        if kind == "secret":
            takers.setdefault(seen[2].document if seen[2] else name, []).append((name, seen))
    rows = [_given(name, takers.get(name, []), digests.get(name)) for name in given]
    for doc, taken in sorted(takers.items()):
        if doc in given:
            continue
        for name, (state, source, _of_doc) in taken:
            if state == "removed" or (source is None and state == "failed"):
                continue
            why = (
                "no longer in the rules"
                if doc not in rules.secrets
                else "the rules no longer give it to " + host
            )
            if doc != name:
                why += f" (a value of {doc})"
            rows.append(Row("secret", name, "removed", why, source, digests.get(doc)))
    for key, (state, _source, _of_doc) in sorted(entries.items()):
        kind, _, name = key.partition(":")
        if kind == "template" and state != "removed":
            detail = "its last install failed" if state == "failed" else None
            rows.append(
                Row(kind, name, "failed" if state == "failed" else state, detail, None, None)
            )
    return rows


def _given(name: str, taken: list[tuple[str, Seen]], repo: str | None) -> Row:
    """A secret the rules give the host, from the entries that take from its file."""
    live = [(n, seen) for n, seen in taken if seen[0] != "removed"]
    if not live:
        why = "removed from its configuration" if taken else "not declared by its configuration"
        return Row("secret", name, "missing", why, None, repo)
    whole = next((seen[1] for n, seen in live if n == name and seen[2] is None), None)
    failed = [seen for _, seen in live if seen[0] == "failed"]
    if failed:
        kept = (
            "it keeps the value it had"
            if all(seen[1] is not None for seen in failed)
            else "it has no value"
        )
        return Row("secret", name, "failed", f"its last install failed; {kept}", whole, repo)
    expected = [(seen[1], seen[2].source(repo) if seen[2] else repo) for _, seen in live]
    if repo is not None and all(got is not None and got == want for got, want in expected):
        return Row("secret", name, "up to date", None, whole or repo, repo)
    if repo is None:
        why = "the repository has no file for it"
    elif any(got is None for got, _ in expected):
        why = "installed from a file of unknown hash"
    else:
        why = "installed from another file than the repository's"
    return Row("secret", name, "outdated", why, whole, repo)


def to_json(rules: Rules, results: Iterable[HostStatus]) -> StatusReportJson:
    hosts: list[StatusHostJson] = []
    ok = True
    for h in results:
        ok = ok and h.error is None and not h.differences
        rows: list[StatusEntryJson] = [
            {
                "kind": r.kind,
                "name": r.name,
                "status": r.status,
                "detail": r.detail,
                "installed": r.installed,
                "repository": r.repository,
            }
            for r in h.rows
        ]
        hosts.append(
            {
                "name": h.host,
                "reachable": h.reachable,
                "error": h.error,
                "generations": h.generations,
                "differences": h.differences,
                "entries": rows,
            }
        )
    return {"ok": ok, "rules": display_path(rules.path), "hosts": hosts}
