"""All age cryptography, through pyrage. The only module that imports it.

Everything here works on bytes in memory: callers decide where plaintext
may go (ramfs, stdout, a private tmpfs), never this module.
"""

from __future__ import annotations

import sys

import pyrage
from pyrage import plugin, ssh, x25519

from nixseal.age.header import parse_header
from nixseal.errors import CryptoError, DecryptError
from nixseal.util.keytext import looks_private, refuse, shown
from nixseal.util.lean import NamedTuple
from nixseal.util.readfile import IDENTITY_LIMIT, read_regular

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence
    from pathlib import Path  # in annotations only: the boot path never imports pathlib
    from typing import Any

_SSH_PRIVATE_MARKERS = (
    b"-----BEGIN OPENSSH PRIVATE KEY-----",
    b"-----BEGIN RSA PRIVATE KEY-----",
)


class Identity(NamedTuple):
    """A key that can decrypt, with where it came from (for messages)."""

    source: str
    key: Any  # a pyrage identity object

    @property
    def kind(self) -> str:
        if isinstance(self.key, ssh.Identity):
            return "ssh"
        if isinstance(self.key, x25519.Identity):
            return "age"
        return "plugin"


class Recipient(NamedTuple):
    """A key to encrypt to, with the string it was parsed from."""

    text: str
    key: Any  # a pyrage recipient object


def identities_from_bytes(data: bytes, source: str) -> list[Identity]:
    """Parse an OpenSSH private key or an age identity file.

    age identity files may hold comments, blank lines and several keys.
    Plugin identities (AGE-PLUGIN-...) are handed to plugin_identities().
    """
    stripped = data.lstrip()
    if any(stripped.startswith(m) for m in _SSH_PRIVATE_MARKERS):
        try:
            return [Identity(source, ssh.Identity.from_buffer(data))]
        except pyrage.IdentityError as err:
            from nixseal.age import sshkey  # only to explain the failure

            hint = ""
            if "decrypted" in str(err) or sshkey.is_protected(data):
                hint = " (passphrase-protected: nothing can ask for its passphrase here)"
            raise CryptoError(f"{source}: unusable ssh private key: {err}{hint}") from err
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise CryptoError(f"{source}: not an age identity file or ssh private key") from err
    found: list[Identity] = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("AGE-PLUGIN-"):
            raise CryptoError(
                f"{source}:{lineno}: plugin identity; load it with a plugin-aware command"
            )
        try:
            found.append(Identity(source, x25519.Identity.from_str(line)))
        except pyrage.IdentityError as err:
            raise CryptoError(f"{source}:{lineno}: not an age identity ({err})") from err
    if not found:
        raise CryptoError(f"{source}: no identity in file")
    return found


def load_identity_file(path: str | Path) -> list[Identity]:
    try:
        data = read_regular(path, IDENTITY_LIMIT)
    except OSError as err:
        raise CryptoError(f"{path}: cannot read identity: {err.strerror}") from err
    return identities_from_bytes(data, str(path))


def load_identities(
    paths: Iterable[str | Path], warn: Callable[[str, str], None]
) -> list[Identity]:
    """Load every usable identity; warn(path, reason) about the others.

    Raises CryptoError when none is usable, since nothing could decrypt.
    """
    found: list[Identity] = []
    tried: list[str] = []
    for path in paths:
        tried.append(str(path))
        try:
            found.extend(load_identity_file(path))
        except CryptoError as err:
            warn(str(path), str(err))
    if not found:
        where = ", ".join(tried) if tried else "none given"
        raise CryptoError(f"no usable identity (tried: {where})")
    return found


def plugin_identities(
    plugin_name: str, lines: Sequence[str], callbacks: Any, source: str
) -> list[Identity]:
    """Identities served by an age plugin binary (age-plugin-<name> on PATH)."""
    try:
        idents = [plugin.Identity.from_str(line) for line in lines]
        return [Identity(source, plugin.IdentityPluginV1(plugin_name, idents, callbacks))]
    except (pyrage.IdentityError, OSError, ValueError) as err:
        raise CryptoError(f"{source}: plugin identity unusable: {err}") from err


def parse_recipient(text: str, where: str) -> Recipient:
    """Parse an age1..., ssh-ed25519 or ssh-rsa recipient string."""
    s = text.strip()
    if looks_private(s):
        raise refuse(where)
    try:
        if s.startswith(("ssh-ed25519 ", "ssh-rsa ")):
            return Recipient(s, ssh.Recipient.from_str(s))
        if s.startswith("age1") and "1" in s[4:]:
            # bech32 data never contains "1", so a second one marks a plugin
            # recipient: age1<plugin>1..., e.g. age1yubikey1...
            return Recipient(s, plugin.Recipient.from_str(s))
        if s.startswith("age1"):
            return Recipient(s, x25519.Recipient.from_str(s))
    except (pyrage.RecipientError, ValueError) as err:
        raise CryptoError(f"{where}: bad recipient {shown(s)}: {err}") from err
    raise CryptoError(
        f"{where}: bad recipient {shown(s)}: expected age1..., ssh-ed25519 ... or ssh-rsa ..."
    )


class _NoPrompts:
    """Callbacks for plugins while encrypting, which needs no user input."""

    def display_message(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    def confirm(self, message: str, yes_string: str, no_string: str | None) -> bool | None:
        return None

    def request_public_string(self, description: str) -> str | None:
        return None

    def request_passphrase(self, description: str) -> str | None:
        return None


def _encryption_keys(recipients: Sequence[Recipient]) -> list[Any]:
    # pyrage takes plugin recipients only wrapped, one wrapper per plugin
    # binary (age-plugin-<name>), which then sees all of its recipients.
    keys: list[Any] = []
    by_plugin: dict[str, list[Any]] = {}
    for r in recipients:
        if isinstance(r.key, plugin.Recipient):
            by_plugin.setdefault(r.key.plugin(), []).append(r.key)
        else:
            keys.append(r.key)
    for name, plugin_keys in by_plugin.items():
        keys.append(plugin.RecipientPluginV1(name, plugin_keys, [], _NoPrompts()))
    return keys


def encrypt(data: bytes, recipients: Sequence[Recipient], armor: bool = False) -> bytes:
    if not recipients:
        raise CryptoError("no recipients to encrypt to")
    try:
        result: bytes = pyrage.encrypt(data, _encryption_keys(recipients), armored=armor)
    except pyrage.EncryptError as err:
        raise CryptoError(f"encryption failed: {err}") from err
    return result


def decrypt(data: bytes, identities: Sequence[Identity], source: str) -> bytes:
    """Decrypt an age file held in memory; errors name source and the cause."""
    try:
        result: bytes = pyrage.decrypt(data, [i.key for i in identities])
    except pyrage.DecryptError as err:
        raise DecryptError(f"{source}: {_explain(data, str(err), identities)}") from err
    return result


def tried(identities: Sequence[Identity]) -> str:
    """The key files (or op:// references) identities came from, for messages:
    under the home directory as ~/..., as a shell expands it."""
    from nixseal.util.paths import home_relative  # only for this message

    return ", ".join(dict.fromkeys(home_relative(i.source) for i in identities)) or "none"


def _explain(data: bytes, reason: str, identities: Sequence[Identity]) -> str:
    try:
        parse_header(data, "file")
    except CryptoError as err:
        # "file: not an age file (...)": keep the part after the prefix.
        return str(err).split(": ", 1)[1]
    if "No matching keys" in reason:
        return (
            f"no identity matches (tried {tried(identities)}): "
            "not encrypted to these keys (rekey needed?)"
        )
    if "decryption error" in reason or "fill whole buffer" in reason:
        return "truncated or corrupt age file (payload does not authenticate)"
    return f"cannot decrypt: {reason}"


def generate_age_identity() -> tuple[str, str]:
    """A new X25519 identity: (secret key string, public recipient string)."""
    ident = x25519.Identity.generate()
    return str(ident), str(ident.to_public())


def age_public_key(secret: str) -> str:
    try:
        return str(x25519.Identity.from_str(secret.strip()).to_public())
    except pyrage.IdentityError as err:
        raise CryptoError(f"not an age secret key: {err}") from err


def decrypt_with_passphrase(data: bytes, passphrase: str, source: str) -> bytes:
    """Decrypt a passphrase-encrypted age file (``age -p``), e.g. an identity file."""
    try:
        result: bytes = pyrage.passphrase.decrypt(data, passphrase)
    except pyrage.DecryptError as err:
        raise DecryptError(f"{source}: wrong passphrase or not passphrase-encrypted") from err
    return result
