"""The first pass of a run: read every age file, then decrypt the changed ones.

Every age file is read before anything is written, so the ones to decrypt
are known up front and forked workers can decrypt them (pyrage holds the
GIL) while the writer installs entries in the manifest's order. An age
file that several secrets take keys from (a document) is read and
decrypted once. This process still does every file-system change and log
event.
"""

from __future__ import annotations

from nixseal.engine.manifest import Secret
from nixseal.engine.previous import Previous, Value
from nixseal.errors import NixsealError
from nixseal.util.digest import sha256
from nixseal.util.lean import NamedTuple, contextmanager
from nixseal.util.readfile import AGE_FILE_LIMIT, read_regular

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence
    from typing import Any

    from nixseal.util.log import Logger

# A forked worker must decrypt at least this many files to repay its fork
# (about 1-2 ms here, against ~0.25 ms per ssh-ed25519 file): see
# docs/performance.md.
FILES_PER_WORKER = 32


class Input(NamedTuple):
    """A secret's age file as read in the first pass."""

    data: bytes
    digest: str  # SHA-256 of the age file, kept in the record
    previous: Value | None  # unchanged since the previous generation: its verified value


if TYPE_CHECKING:
    # What the first pass knows of each secret: its input, or why it failed.
    Inputs = dict[str, Input | NixsealError]
    Plaintexts = Iterator[tuple[Secret, bytes | NixsealError]]


def read_inputs(
    secrets: Sequence[Secret], previous: Previous, check_owner: Callable[[Secret], object]
) -> Inputs:
    """Each secret's age file, digest and reusable previous value, or why it failed.

    check_owner raises for an unknown owner, which fails the entry before
    anything of it is decrypted.
    """
    inputs: Inputs = {}
    files: dict[str, tuple[bytes, str] | NixsealError] = {}  # path -> (data, digest)
    for secret in secrets:
        try:
            check_owner(secret)
            got = files.get(secret.file)
            if got is None:
                try:
                    data = _read(secret.file)
                    got = files[secret.file] = (data, sha256(data).hexdigest())
                except NixsealError as err:
                    files[secret.file] = err
                    raise
            if isinstance(got, NixsealError):
                raise got
        except NixsealError as err:
            inputs[secret.key] = err
            continue
        data, digest = got
        if secret.key_path:
            # What was taken from the file, not the file alone: a key or a
            # format changed over the same file must not reuse the old value.
            digest = sha256(
                "\0".join((digest, secret.format, *secret.key_path)).encode()
            ).hexdigest()
        inputs[secret.key] = Input(data, digest, previous.reusable(secret, digest))
    return inputs


def to_decrypt(secrets: Sequence[Secret], inputs: Inputs) -> list[Secret]:
    """The secrets read whose previous value cannot be reused."""
    return [s for s in secrets if _needs_decrypting(inputs[s.key])]


class Identities:
    """The host's usable identities, loaded on first need (pyrage with them)."""

    def __init__(self, paths: tuple[str, ...], log: Logger) -> None:
        self.paths = paths
        self.log = log
        self._loaded: list[Any] | None = None
        self.error = ""  # why there are none, once known

    def load(self) -> list[Any] | None:
        """The identities, or None (and self.error says why) if none is usable."""
        from nixseal.age import crypto

        if self._loaded is None and not self.error:
            try:
                self._loaded = crypto.load_identities(
                    self.paths,
                    lambda path, why: self.log.warning(
                        "identity skipped", identity=path, reason=why
                    ),
                )
            except NixsealError as err:
                self.error = str(err)
        return self._loaded


@contextmanager
def decryptions(
    todo: list[Secret], inputs: Inputs, identities: Identities, log: Logger
) -> Iterator[Plaintexts]:
    """(secret, plaintext or error) for each secret in todo, in order; each
    age file decrypted once, for the first secret of todo taking it."""
    loaded = identities.load() if todo else None
    if loaded is None:  # nothing to decrypt, or no usable identity
        error = NixsealError(identities.error)
        yield ((s, error) for s in todo)
        return

    def decrypt(secret: Secret) -> bytes:
        ciphertext = inputs[secret.key]
        assert isinstance(ciphertext, Input)
        return _decrypt(ciphertext.data, loaded, secret.file)

    firsts: dict[str, Secret] = {}
    uses: dict[str, int] = {}
    for s in todo:
        firsts.setdefault(s.file, s)
        uses[s.file] = uses.get(s.file, 0) + 1
    jobs = list(firsts.values())
    if len(jobs) < 2 * FILES_PER_WORKER:
        # Too few files for two workers: decrypted here, without the pool's imports.
        yield _shared(todo, ((s, _attempt(decrypt, s)) for s in jobs), uses)
        return

    from nixseal.util import pool

    workers = pool.workers_for(len(jobs), FILES_PER_WORKER, loaded)
    with pool.OrderedMap(
        decrypt,
        jobs,
        workers,
        lambda why: log.warning("decryption workers failed; continuing alone", reason=why),
    ) as results:
        yield _shared(todo, zip(jobs, results, strict=True), uses)


def _shared(
    todo: list[Secret], files: Iterator[tuple[Secret, bytes | NixsealError]], uses: dict[str, int]
) -> Plaintexts:
    """Each secret of todo with its file's plaintext, which files gives once per
    file in the order of the files' first secrets; a plaintext is dropped when
    its file's last secret has it."""
    held: dict[str, bytes | NixsealError] = {}
    for secret in todo:
        if secret.file not in held:
            first, result = next(files)
            assert first.file == secret.file  # both follow todo's order
            held[secret.file] = result
        result = held[secret.file]
        uses[secret.file] -= 1
        if not uses[secret.file]:
            del held[secret.file]
        yield secret, result


def _attempt(decrypt: Callable[[Secret], bytes], secret: Secret) -> bytes | NixsealError:
    try:
        return decrypt(secret)
    except NixsealError as err:
        return err


def _needs_decrypting(got: Input | NixsealError) -> bool:
    return isinstance(got, Input) and got.previous is None


def _decrypt(data: bytes, identities: list[Any], source: str) -> bytes:
    from nixseal.age import crypto  # pyrage: only when something is decrypted

    return crypto.decrypt(data, identities, source)


def _read(path: str) -> bytes:
    try:
        return read_regular(path, AGE_FILE_LIMIT)
    except OSError as err:
        raise NixsealError(f"{path}: cannot read: {err.strerror}") from err
