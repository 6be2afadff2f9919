"""The one error hierarchy of nixseal.

Every error the user can cause or meet derives from NixsealError; its
message is exactly the one line the CLI prints, so it must name what is
wrong, where, and the fix when there is one. It never carries plaintext.
"""

from __future__ import annotations


class NixsealError(Exception):
    """Base class: str(err) is what the user sees; exit_code is the status."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        # One line, always: a multi-line message would break log parsers
        # and the activation output. rage's messages (through pyrage) wrap
        # names in Unicode isolation marks, invisible but noise to grep.
        message = message.replace("\u2068", "").replace("\u2069", "")
        super().__init__(" ".join(message.split("\n")))

    @property
    def message(self) -> str:
        return str(self)


class UsageError(NixsealError):
    """Bad command line or input that means nothing was done (exit 2)."""

    exit_code = 2


class ManifestError(UsageError):
    """The manifest is malformed; the install did not start."""


class RulesError(NixsealError):
    """The rules file (secrets.toml) or its state file is wrong."""


class CryptoError(NixsealError):
    """A key, recipient or age file could not be used."""


class DecryptError(CryptoError):
    """An age file could not be decrypted (corrupt, truncated, wrong key)."""


class OpError(NixsealError):
    """The 1Password CLI failed; the message carries op's own words."""


class GenerationError(NixsealError):
    """The generation store cannot be used (mount, lock, switch)."""


class OwnershipError(NixsealError):
    """An owner or group that does not exist; fails one secret, not the run."""


class LinkError(NixsealError):
    """A custom path's link cannot be placed."""


class WrongPassphrase(CryptoError):
    """A passphrase that does not unlock the key it was asked for."""


class PrivateKeyError(CryptoError):
    """A private key was given where a public key belongs."""


class TemplateValueError(NixsealError):
    """A value the format of its typed placeholder cannot hold; fails one template."""


class UnsafePath(NixsealError):
    """A path through a directory or symlink someone else could change."""


class Blocked(NixsealError):
    """Something other than our symlink is where one must go."""


class Interrupted(NixsealError):
    """A signal ended an admin verb before it saved anything."""

    def __init__(self, signum: int) -> None:
        import signal  # not at import: the boot path never needs it (~0.5 ms)

        super().__init__(f"interrupted by {signal.Signals(signum).name}; nothing saved")
        self.exit_code = 128 + signum
