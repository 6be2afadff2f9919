"""Passphrase-protected OpenSSH keys (nixseal.age.sshkey), made by the real ssh-keygen."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from conftest import make_age_key, make_ssh_key

from nixseal.age import crypto, sshkey
from nixseal.errors import CryptoError, WrongPassphrase


def protected_key(directory: Path, passphrase: str, kind: str = "ed25519") -> Path:
    path = directory / f"id_{kind}"
    args = ["ssh-keygen", "-q", "-t", kind, "-N", passphrase, "-C", "admin@laptop", "-f", str(path)]
    subprocess.run([*args, *(["-b", "2048"] if kind == "rsa" else [])], check=True)
    return path


def test_protected_and_unprotected_keys_are_told_apart(tmp_path: Path) -> None:
    locked = protected_key(tmp_path, "pw")
    plain = make_ssh_key(tmp_path, name="plain")
    assert sshkey.cipher(locked.read_bytes()) == "aes256-ctr"
    assert sshkey.is_protected(locked.read_bytes())
    assert sshkey.cipher(plain.private_path.read_bytes()) == "none"
    assert not sshkey.is_protected(plain.private_path.read_bytes())
    age = make_age_key(tmp_path)
    truncated = locked.read_bytes()[:60]
    for other in (age.path.read_bytes(), truncated, b"", Path(f"{locked}.pub").read_bytes()):
        assert sshkey.cipher(other) is None and not sshkey.is_protected(other)


@pytest.mark.parametrize("kind", ["ed25519", "rsa"])
def test_an_unlocked_key_decrypts_what_its_public_key_can_read(tmp_path: Path, kind: str) -> None:
    locked = protected_key(tmp_path, "correct horse", kind)
    public = Path(f"{locked}.pub").read_text().strip()
    blob = crypto.encrypt(b"the value", [crypto.parse_recipient(public, "test")])
    unlocked = sshkey.unlock(locked.read_bytes(), "correct horse", str(locked))
    assert not sshkey.is_protected(unlocked)
    identities = crypto.identities_from_bytes(unlocked, str(locked))
    assert crypto.decrypt(blob, identities, "x.age") == b"the value"


def test_a_wrong_passphrase_names_the_key(tmp_path: Path) -> None:
    locked = protected_key(tmp_path, "right")
    with pytest.raises(WrongPassphrase, match=rf"^{locked}: wrong passphrase$"):
        sshkey.unlock(locked.read_bytes(), "wrong", str(locked))


def test_a_host_never_unlocks_a_protected_key(tmp_path: Path) -> None:
    """The boot path reads keys through crypto alone: nobody can type a passphrase."""
    locked = protected_key(tmp_path, "pw")
    with pytest.raises(CryptoError, match="nothing can ask for its passphrase here"):
        crypto.load_identity_file(locked)


def test_the_public_line_of_a_private_key(tmp_path: Path) -> None:
    from nixseal.age import generators

    private, public = generators.ssh_ed25519("root@web2")
    assert sshkey.public_line(private) == public.rsplit(" ", 1)[0]
    key = make_ssh_key(tmp_path)
    line = sshkey.public_line(key.private_path.read_bytes())
    assert line is not None and line.split() == key.public.split()[:2]
    assert sshkey.public_line(b"not a key") is None
    assert sshkey.public_line(sshkey.BEGIN + b"\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n") is None
