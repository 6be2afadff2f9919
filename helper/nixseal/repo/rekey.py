"""Re-encrypting files whose recipients differ from the rules (rekey, host add).

One process for all files: identities are loaded once (one passphrase or
PIN prompt), each file is decrypted in memory and replaced atomically. A
file that cannot be decrypted is reported and skipped; the others proceed.
A dry run does the same decryption and re-encryption, in memory, and only
skips the writes: staleness is read from headers, but whether a stale file
can be decrypted is known only by trying.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import TextIO

from nixseal.age import crypto
from nixseal.errors import DecryptError, NixsealError
from nixseal.repo import drift
from nixseal.repo.context import Context, ciphertext_for, store_ciphertext
from nixseal.util import pool
from nixseal.util.paths import display_path
from nixseal.util.readfile import AGE_FILE_LIMIT, read_regular

# Below this many files a run is quick enough not to need progress lines.
PROGRESS_MIN = 20
# A forked worker must re-encrypt at least this many files (~1 ms each) to
# repay its fork.
FILES_PER_WORKER = 24


class Progress:
    def __init__(self, total: int, stream: TextIO) -> None:
        self.total = total
        self.stream = stream
        self.enabled = total >= PROGRESS_MIN
        self.tty = stream.isatty()
        self.step = max(1, total // 10)

    def update(self, done: int) -> None:
        if not self.enabled:
            return
        if self.tty:
            end = "\n" if done == self.total else ""
            print(f"\rrekey: {done}/{self.total}", end=end, file=self.stream, flush=True)
        elif done % self.step == 0 or done == self.total:
            print(f"rekey: {done}/{self.total}", file=self.stream, flush=True)


@dataclass
class Plan:
    todo: list[tuple[str, bytes]] = field(default_factory=list)  # name, ciphertext
    fresh: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # messages


def plan(ctx: Context, names: list[str], force: bool) -> Plan:
    """Which files to re-encrypt; each file is read once, here."""
    rules = ctx.rules
    inspector = drift.Inspector(rules, ctx.state)
    out = Plan()
    for name in names:
        path = rules.file_for(name)
        try:
            data = read_regular(path, AGE_FILE_LIMIT)
        except FileNotFoundError:
            out.missing.append(name)
            continue
        except OSError as err:
            out.failed.append(f"{display_path(path)}: cannot read: {err.strerror}")
            continue
        d = inspector.inspect(name, data)
        if d.status == drift.CORRUPT:
            out.failed.append(f"{display_path(path)}: {d.detail}")
        elif force or d.needs_rekey:
            out.todo.append((name, data))
        else:
            out.fresh.append(name)
    return out


def _decrypt_for_rekey(
    data: bytes, identities: list[crypto.Identity], name: str, source: str
) -> bytes:
    """crypto.decrypt, with what to do instead when the admin is no recipient.

    crypto's generic hint suggests a rekey, which cannot help here: only
    someone the file is encrypted to can re-encrypt it.
    """
    try:
        return crypto.decrypt(data, identities, source)
    except DecryptError as err:
        if not str(err).startswith(f"{source}: no identity matches"):
            raise
        raise DecryptError(
            f"{source}: no identity matches (tried {crypto.tried(identities)}): "
            "this file is not encrypted to your keys; "
            "ask an admin whose key it is encrypted to, or re-create it with "
            f"`nixseal encrypt {name}`"
        ) from err


def reencrypt(
    ctx: Context,
    todo: list[tuple[str, bytes]],
    failed: list[str],
    *,
    dry_run: bool = False,
    done: list[str] | None = None,
) -> int:
    """Re-encrypt todo; failures are appended to failed. The number done.

    Crypto runs in forked workers for big batches (each file is decrypted
    and re-encrypted inside one worker; only ciphertext comes back; see
    nixseal.util.pool). Files are replaced one by one, atomically, and synced
    once at the end. dry_run: everything but the writes, so the same files
    fail with the same messages. done, if given, gets the names done (or,
    in a dry run, that would be).
    """
    if done is None:
        done = []
    progress = Progress(len(todo), sys.stderr)
    if not todo:
        return 0
    identities = ctx.identities()
    rules = ctx.rules

    def rekey_one(item: tuple[str, bytes]) -> bytes:
        name, data = item
        source = display_path(rules.file_for(name))
        return ciphertext_for(rules, name, _decrypt_for_rekey(data, identities, name, source))

    workers = pool.workers_for(len(todo), FILES_PER_WORKER, identities)
    try:
        with pool.OrderedMap(rekey_one, todo, workers) as results:
            for i, ((name, _), result) in enumerate(zip(todo, results, strict=True), 1):
                if isinstance(result, NixsealError):
                    failed.append(str(result))
                elif dry_run:
                    done.append(name)
                else:
                    try:
                        store_ciphertext(
                            ctx, name, result, new_value=False, save=False, durable=False
                        )
                    except NixsealError as err:  # names the file and the cause
                        failed.append(str(err))
                    else:
                        done.append(name)
                progress.update(i)
    finally:
        if not dry_run:
            # Whatever was re-encrypted before an error or Ctrl-C stays recorded.
            os.sync()
            ctx.state.save()
    return len(done)
