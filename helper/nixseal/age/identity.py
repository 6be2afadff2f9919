"""Which keys an admin decrypts with, loaded once per run.

An identity is given with ``-i`` (repeatable), else ``$NIXSEAL_IDENTITY``,
else ``~/.ssh/id_ed25519``. Each one is
- a file: an OpenSSH private key (passphrase-protected or not), an age
  identity file (comments and several keys allowed), a
  passphrase-encrypted age identity file (``age -p``), or a plugin
  identity file (``AGE-PLUGIN-...`` lines, e.g. from age-plugin-yubikey);
- an ``op://vault/item/[section/]field`` reference to any of those kept in
  1Password, read through the ``op`` CLI, in memory only.

Loading happens once per run and the result is reused for every file, so a
passphrase, a 1Password approval or a PIN is asked once, not per secret.
Passphrases are asked as OpenSSH asks them: on the terminal, or through
the program ``$SSH_ASKPASS`` names when there is no terminal (and a
display, or ``SSH_ASKPASS_REQUIRE=force``); ``SSH_ASKPASS_REQUIRE=prefer``
uses it even with a terminal, ``never`` never.
"""

from __future__ import annotations

import getpass
import io
import os
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from nixseal.age import crypto, header, sshkey
from nixseal.errors import CryptoError, DecryptError, UsageError, WrongPassphrase
from nixseal.util.readfile import IDENTITY_LIMIT, read_regular

ENV_VAR = "NIXSEAL_IDENTITY"
DEFAULT_IDENTITY = "~/.ssh/id_ed25519"
_PASSPHRASE_TRIES = 3

Prompt = Callable[[str], str]


def identity_specs(cli: Sequence[str]) -> list[str]:
    """-i values, else $NIXSEAL_IDENTITY, else the default ssh key."""
    if cli:
        return list(cli)
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        return [env]
    return [DEFAULT_IDENTITY]


def _tty_prompt(message: str) -> str:
    """Ask on the terminal without echo; stdin may carry a secret's value.

    /dev/tty is opened unbuffered, as getpass does: a buffered text file
    opened "r+" needs a seekable file, which a terminal is not. Opening it
    first also keeps getpass from falling back to reading stdin.
    """
    try:
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError as err:
        raise UsageError(
            f"{message.rstrip(': ')}: no terminal to ask on; set SSH_ASKPASS to a "
            "program that prints it (with SSH_ASKPASS_REQUIRE=force when there is no display)"
        ) from err
    with io.FileIO(fd, "w+") as raw, io.TextIOWrapper(raw, encoding="utf-8") as tty:
        return getpass.getpass(message, stream=tty)


def _has_terminal() -> bool:
    try:
        os.close(os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY))
    except OSError:
        return False
    return True


def _use_askpass(env: Mapping[str, str], terminal: bool) -> bool:
    """OpenSSH's rule (readpass.c): askpass with a display, or when forced."""
    allowed = bool(env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"))
    wanted = False
    require = env.get("SSH_ASKPASS_REQUIRE", "").lower()
    if require == "force":
        wanted = allowed = True
    elif require == "prefer":
        wanted = allowed
    elif require == "never":
        allowed = False
    if not wanted and not terminal:
        wanted = True
    return wanted and allowed and bool(env.get("SSH_ASKPASS"))


def _askpass(program: str, message: str) -> str:
    """The passphrase as the askpass program prints it (one line)."""
    try:
        proc = subprocess.run(
            [program, message], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, check=False
        )
    except OSError as err:
        raise UsageError(f"SSH_ASKPASS {program}: cannot run it: {err.strerror}") from err
    if proc.returncode != 0:
        raise UsageError(
            f"{message.rstrip(': ')}: cancelled (SSH_ASKPASS {program} exited {proc.returncode})"
        )
    return proc.stdout.decode("utf-8", "replace").removesuffix("\n").removesuffix("\r")


def ask(message: str) -> str:
    """A passphrase or PIN, asked on the terminal or through SSH_ASKPASS."""
    if _use_askpass(os.environ, _has_terminal()):
        return _askpass(os.environ["SSH_ASKPASS"], message)
    return _tty_prompt(message)


class TerminalCallbacks:
    """What an age plugin may ask of the user, answered on the terminal.

    Passphrases and PINs are remembered for the run, keyed by the plugin's
    question, so a hardware key's PIN is typed once, not once per file.
    """

    def __init__(self, prompt: Prompt) -> None:
        self.prompt = prompt
        self.answers: dict[str, str] = {}

    def display_message(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    def confirm(self, message: str, yes_string: str, no_string: str | None) -> bool | None:
        options = yes_string if no_string is None else f"{yes_string}/{no_string}"
        answer = self.prompt(f"{message} [{options}]: ").strip()
        if not answer or answer == yes_string:
            return True
        return False if no_string is not None and answer == no_string else None

    def request_public_string(self, description: str) -> str | None:
        return self.prompt(f"{description}: ") or None

    def request_passphrase(self, description: str) -> str | None:
        if description not in self.answers:
            self.answers[description] = self.prompt(f"{description}: ")
        return self.answers[description] or None


def _plugin_name(line: str, source: str) -> str:
    # AGE-PLUGIN-<NAME>-1<data>: the name is what sits between the prefix
    # and the bech32 separator, lower-cased (age-plugin-<name> on PATH).
    body = line[len("AGE-PLUGIN-") :]
    name, sep, _ = body.rpartition("-1")
    if not sep or not name:
        raise CryptoError(f"{source}: malformed plugin identity line")
    return name.lower()


def identities_from_data(
    data: bytes, source: str, prompt: Prompt, callbacks: TerminalCallbacks
) -> list[crypto.Identity]:
    """Parse key material of any supported kind (see the module doc)."""
    if data.lstrip().startswith((header.MAGIC, header.ARMOR_BEGIN)):
        plain = _open_age_passphrase_file(data, source, prompt)
        return identities_from_data(plain, source, prompt, callbacks)
    if sshkey.is_protected(data):
        return crypto.identities_from_bytes(_unlock(data, source, prompt), source)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return crypto.identities_from_bytes(data, source)
    plugin_lines: dict[str, list[str]] = {}
    rest: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("AGE-PLUGIN-"):
            plugin_lines.setdefault(_plugin_name(line, source), []).append(line)
        else:
            rest.append(raw)
    if not plugin_lines:
        _refuse_public_key(rest, source)
        return crypto.identities_from_bytes(data, source)
    found: list[crypto.Identity] = []
    for name, lines in plugin_lines.items():
        found.extend(crypto.plugin_identities(name, lines, callbacks, source))
    if any(r.strip() and not r.strip().startswith("#") for r in rest):
        found.extend(crypto.identities_from_bytes("\n".join(rest).encode(), source))
    return found


def _open_age_passphrase_file(data: bytes, source: str, prompt: Prompt) -> bytes:
    """An identity file encrypted with `age -p`, decrypted in memory."""
    hdr = header.parse_header(data, source)
    if not any(s.type == "scrypt" for s in hdr.stanzas):
        raise CryptoError(
            f"{source}: an age file encrypted to keys, not a passphrase; "
            "identity files may only be passphrase-encrypted (age -p)"
        )
    return _with_passphrase(
        source, prompt, lambda p: crypto.decrypt_with_passphrase(data, p, source), DecryptError
    )


def _unlock(data: bytes, source: str, prompt: Prompt) -> bytes:
    """A passphrase-protected OpenSSH key, unlocked in memory."""
    try:
        return _with_passphrase(
            source, prompt, lambda p: sshkey.unlock(data, p, source), WrongPassphrase
        )
    except WrongPassphrase as err:
        raise WrongPassphrase(
            f"{source}: wrong passphrase for this ssh key "
            f"({_PASSPHRASE_TRIES} tries); nothing was changed"
        ) from err


def _with_passphrase(
    source: str, prompt: Prompt, open_with: Callable[[str], bytes], wrong: type[Exception]
) -> bytes:
    """open_with(the passphrase), asked up to _PASSPHRASE_TRIES times; the
    last wrong one's error is raised."""
    for _ in range(_PASSPHRASE_TRIES - 1):
        try:
            return open_with(prompt(f"passphrase for {source}: "))
        except wrong:
            print("wrong passphrase, try again", file=sys.stderr)
    return open_with(prompt(f"passphrase for {source}: "))


def _refuse_public_key(lines: Sequence[str], source: str) -> None:
    """A clear word for the usual mix-ups: a public key, or a PEM private key."""
    first = next((ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")), "")
    if first.startswith(("ssh-", "ecdsa-", "sk-")):
        which = "field" if source.startswith("op://") else "(the file without .pub)"
        raise CryptoError(f"{source}: an ssh public key; pass the private key {which}")
    if first.startswith("age1"):
        raise CryptoError(
            f"{source}: an age public key (recipient); pass the identity file (AGE-SECRET-KEY-1...)"
        )
    # PKCS#1 RSA keys ("BEGIN RSA PRIVATE KEY") are read as they are.
    pem = first.startswith("-----BEGIN ") and first.endswith("PRIVATE KEY-----")
    if pem and "OPENSSH" not in first and "RSA" not in first:
        raise CryptoError(
            f"{source}: a PEM private key ({first.strip('-').strip()}); age reads "
            "OpenSSH keys (BEGIN OPENSSH PRIVATE KEY) and age identity files"
        )


def load(specs: Sequence[str], prompt: Prompt | None = None) -> list[crypto.Identity]:
    """Load every identity named by specs; any unusable one is an error.

    The user named these keys (or relies on the documented default), so
    skipping one silently would only move the failure to a confusing
    "no identity matches" later.
    """
    asker = prompt or ask
    callbacks = TerminalCallbacks(asker)
    found: list[crypto.Identity] = []
    for spec in specs:
        if spec.startswith("op://"):
            from nixseal.util import op

            data = op.read_identity(spec)
            found.extend(identities_from_data(data, spec, asker, callbacks))
            continue
        if not spec.strip():
            raise UsageError(f"empty identity path; pass -i IDENTITY or set ${ENV_VAR}")
        path = Path(spec).expanduser()
        try:
            data = read_regular(path, IDENTITY_LIMIT)
        except FileNotFoundError as err:
            hint = f"; pass -i IDENTITY or set ${ENV_VAR}" if spec == DEFAULT_IDENTITY else ""
            raise CryptoError(f"{spec}: no such identity file{hint}") from err
        except OSError as err:
            raise CryptoError(f"{spec}: cannot read identity: {err.strerror}") from err
        found.extend(identities_from_data(data, spec, asker, callbacks))
    if not found:
        raise CryptoError("no identity given; pass -i IDENTITY or set $NIXSEAL_IDENTITY")
    return found
