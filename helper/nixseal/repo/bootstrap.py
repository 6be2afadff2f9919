"""A host's ssh key made by the admin, so that its first boot has its secrets.

`host add NAME --generate` makes the host's ssh-ed25519 key pair in memory
(nixseal.age.generators), gives the host the public half as its key in the
rules, and keeps the private half in the repository as the secret
``hosts/NAME/ssh_host_ed25519_key``, read by the admins only (``hosts =
[]``), so that a reinstall (`host reinstall NAME`) installs the same key
and the same age files still decrypt. Both write the key as a tree for
nixos-anywhere's ``--extra-files``: ``etc/ssh/ssh_host_ed25519_key`` and its
``.pub``, in a new private directory on a memory file system (the user's
``$XDG_RUNTIME_DIR``, else ``/dev/shm``), or in a directory the admin names,
with a warning when that one is on a disk.

The secret keeps its ``ssh-ed25519`` generator: `nixseal rotate` of it makes
a new key (and its ``.pub``), which becomes the host's with `host add NAME
FILE.pub --replace`; until then `host reinstall` refuses a stored key that
is not the host's key in the rules.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from nixseal.age import generators, sshkey
from nixseal.errors import NixsealError, RulesError, UsageError
from nixseal.models.repo import Generator, GeneratorKind, ReaderKind
from nixseal.repo.context import Context, decrypt_secret, encrypt_secret
from nixseal.repo.edit import MEMORY_FS, filesystem_type
from nixseal.repo.readers import Change, ReadersChange, add_reader, edit
from nixseal.repo.rules import Rules, did_you_mean, recipient_id
from nixseal.util.atomic import write_atomic
from nixseal.util.paths import display_path

KEY_FILE = "etc/ssh/ssh_host_ed25519_key"
_GENERATOR = Generator(GeneratorKind.SSH_ED25519)


def key_secret(host: str) -> str:
    """The secret that holds a host's generated private key."""
    return f"hosts/{host}/ssh_host_ed25519_key"


class Tree(NamedTuple):
    """Where the --extra-files tree went, and the warning to print, if any."""

    dir: Path
    warning: str | None


class Added(NamedTuple):
    change: ReadersChange
    public: str
    secret: str
    tree: Tree


def add_generated(
    context: Callable[[Rules], Context],
    path: Path,
    host: str,
    *,
    replace: bool,
    extra_files: Path | None,
) -> Added:
    """Add (or with replace, re-key) host with a key made here; store the key
    for the admins; write the tree. context(rules) gives the run's Context."""
    private, public = generators.ssh_ed25519(f"root@{host}")
    secret = key_secret(host)
    change = edit(path, _with_stored_key(host, public, replace=replace))
    ctx = context(change.rules)
    _check_admins_only(ctx.rules, secret)
    encrypt_secret(ctx, secret, private, new_value=True)
    write_atomic(ctx.rules.dir / f"{secret}.pub", f"{public}\n".encode())
    tree = write_tree(extra_files, host, private, public)
    return Added(change, public, secret, tree)


def _with_stored_key(host: str, public: str, *, replace: bool) -> Change:
    add = add_reader(ReaderKind.HOST, host, public, replace=replace)

    def change(doc: Any, rules: Rules) -> str:
        done = add(doc, rules)  # checks the name first
        secret = key_secret(host)
        if not replace and rules.dir.joinpath(f"{secret}.age").exists():
            raise UsageError(
                f"{display_path(rules.dir / secret)}.age: a stored key of host {host} is "
                f"there already; `nixseal host reinstall {host}` writes it again, "
                "--replace makes a new one"
            )
        if secret not in rules.secrets:
            import tomlkit

            table = tomlkit.table()
            table.add(
                tomlkit.comment(
                    f"host {host}'s ssh key, for admins only: nixseal host reinstall {host}"
                )
            )
            table["hosts"] = tomlkit.array()
            table["generator"] = str(_GENERATOR.kind)
            table.add(tomlkit.nl())
            secrets = doc.get("secrets")
            if secrets is None:
                secrets = tomlkit.table(is_super_table=True)
                doc["secrets"] = secrets
            secrets[secret] = table
        return done

    return change


def _check_admins_only(rules: Rules, secret: str) -> None:
    rule = rules.secret(secret)
    if rule.hosts or rule.users:
        raise RulesError(
            f'{display_path(rules.path)}: [secrets."{secret}"] is read by '
            f"{', '.join((*rule.hosts, *rule.users))}: a stored host key is for admins only; "
            "set hosts = [] and remove its users"
        )


def reinstall(ctx: Context, host: str, extra_files: Path | None) -> tuple[str, Tree]:
    """The stored key of host written again as a tree; its public line and the tree."""
    rules = ctx.rules
    where = display_path(rules.path)
    if host not in rules.hosts:
        known = did_you_mean(host, rules.hosts) or f"known: {', '.join(sorted(rules.hosts))}"
        raise UsageError(f"{where}: no host {host!r}; {known}")
    secret = key_secret(host)
    if secret not in rules.secrets:
        raise UsageError(
            f'{where}: host {host} has no stored key ([secrets."{secret}"]): its key was '
            f"made on the host; `nixseal host add {host} --generate --replace` makes one here"
        )
    _check_admins_only(rules, secret)
    private = decrypt_secret(ctx, secret)
    public = sshkey.public_line(private)
    file = display_path(rules.file_for(secret))
    if public is None or not public.startswith("ssh-ed25519 "):
        raise NixsealError(f"{file}: not an OpenSSH ed25519 private key")
    if recipient_id(public) != recipient_id(rules.hosts[host].key):
        raise NixsealError(
            f"{file}: holds a key that is not host {host}'s key in the rules (rotated?); "
            f"make it the host's with `nixseal host add {host} "
            f"{display_path(rules.dir / secret)}.pub --replace`, or rotate it back"
        )
    return public, write_tree(extra_files, host, private, f"{public} root@{host}")


# --- the tree for --extra-files -----------------------------------------------------


def write_tree(target: Path | None, host: str, private: bytes, public: str) -> Tree:
    """etc/ssh/ssh_host_ed25519_key (0600) and .pub (0644), directories 0755,
    in a new private directory: target, or one made on a memory file system."""
    warning = None
    if target is None:
        base = memory_dir()
        made = Path(tempfile.mkdtemp(prefix=f"nixseal-{host}-", dir=base))  # 0700
    else:
        made = _own_dir(target)
        fs = filesystem_type(made)
        if fs not in MEMORY_FS:
            on = fs or "a file system of unknown type"
            warning = (
                f"{display_path(made)} is on {on}, not tmpfs: host {host}'s private key may "
                "stay on that disk after it is deleted; delete the directory once the host is "
                "installed, or leave out --extra-files (a new directory on tmpfs)"
            )
    ssh = made / "etc/ssh"
    try:
        for d in (made / "etc", ssh):
            d.mkdir(exist_ok=True)
            d.chmod(0o755)
        _write_new(made / KEY_FILE, private, 0o600)
        _write_new(made / f"{KEY_FILE}.pub", f"{public}\n".encode(), 0o644)
    except OSError as err:
        raise NixsealError(f"{display_path(made)}: cannot write the key: {err.strerror}") from err
    return Tree(made, warning)


def _own_dir(target: Path) -> Path:
    """target as a new directory (0700), or an empty one that is there."""
    try:
        target.mkdir(mode=0o700)
    except FileExistsError:
        if not target.is_dir() or target.is_symlink() or any(target.iterdir()):
            raise UsageError(
                f"{display_path(target)}: exists and is not an empty directory; "
                "name a new one for --extra-files"
            ) from None
    except OSError as err:
        raise UsageError(f"{display_path(target)}: cannot create: {err.strerror}") from err
    target.chmod(0o700)
    return target


def _write_new(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0)
    try:
        os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def memory_dir() -> Path:
    """The user's runtime directory when it is in memory, else /dev/shm."""
    # mkdtemp makes a private directory of its own in either: no name to guess
    candidates = [os.environ.get("XDG_RUNTIME_DIR") or "", "/dev/shm"]  # noqa: S108
    for c in candidates:
        if c and Path(c).is_dir() and filesystem_type(Path(c)) in MEMORY_FS:
            return Path(c)
    raise UsageError(
        "no memory file system for the host's key ($XDG_RUNTIME_DIR or /dev/shm on tmpfs); "
        "pass --extra-files DIR"
    )
