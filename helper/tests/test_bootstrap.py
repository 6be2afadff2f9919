"""host add --generate and host reinstall (nixseal.repo.bootstrap): a host's
key made by the admin, kept for the admins, written for nixos-anywhere."""

from __future__ import annotations

import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from _admin import Repo, make_repo

from nixseal.age import crypto
from nixseal.age.header import parse_header
from nixseal.repo import bootstrap
from nixseal.repo.edit import MEMORY_FS, filesystem_type
from nixseal.repo.rules import load_rules, recipient_id

SECRET = "hosts/web2/ssh_host_ed25519_key"


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    r = make_repo(tmp_path)
    r.write_rules({"db": ["web1"]})
    r.encrypt("db", b"v")
    return r


@pytest.fixture
def runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private $XDG_RUNTIME_DIR on tmpfs, as systemd-logind gives a session."""
    if filesystem_type(Path("/dev/shm")) not in MEMORY_FS:
        pytest.skip("no tmpfs at /dev/shm")
    import tempfile

    d = Path(tempfile.mkdtemp(dir="/dev/shm", prefix="test-runtime-"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(d))
    yield d
    subprocess.run(["rm", "-rf", str(d)], check=True)


def _tree_of(out: str) -> Path:
    line = next(ln for ln in out.splitlines() if ln.startswith("wrote "))
    return Path(line.rsplit(" in ", 1)[1])


def _public_of(key: Path) -> str:
    proc = subprocess.run(
        ["ssh-keygen", "-y", "-f", str(key)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_generate_writes_the_tree_on_tmpfs_and_keeps_the_key_for_admins(
    repo: Repo, runtime: Path
) -> None:
    r = repo.run("host", "add", "web2", "--generate")
    assert r.code == 0, r.err
    assert r.err == ""  # on tmpfs: no warning
    tree = _tree_of(r.text)
    assert tree.parent == runtime and tree.name.startswith("nixseal-web2-")
    assert filesystem_type(tree) == "tmpfs"
    modes = {
        p.relative_to(tree).as_posix(): stat.S_IMODE(p.lstat().st_mode) for p in tree.rglob("*")
    }
    assert modes == {
        "etc": 0o755,
        "etc/ssh": 0o755,
        "etc/ssh/ssh_host_ed25519_key": 0o600,
        "etc/ssh/ssh_host_ed25519_key.pub": 0o644,
    }
    assert stat.S_IMODE(tree.stat().st_mode) == 0o700
    key = tree / bootstrap.KEY_FILE
    # the private key is the one whose public half the rules give the host
    rules = load_rules(repo.rules)
    assert recipient_id(_public_of(key)) == recipient_id(rules.hosts["web2"].key)
    assert (tree / f"{bootstrap.KEY_FILE}.pub").read_text().strip() == rules.hosts["web2"].key
    assert f"then: nixos-anywhere --extra-files {tree} --flake .#web2" in r.text
    # stored for the admins only
    rule = rules.secrets[SECRET]
    assert rule.hosts == () and rule.users == () and str(rule.generator.kind) == "ssh-ed25519"  # type: ignore[union-attr]
    header = parse_header(repo.age_file(SECRET).read_bytes(), "t")
    assert [s.type for s in header.stanzas if not s.type.endswith("-grease")] == ["X25519"]
    assert repo.decrypt(SECRET) == key.read_bytes()
    assert (repo.secrets / f"{SECRET}.pub").read_text().strip() == rules.hosts["web2"].key
    assert repo.run("check").code == 0
    audit = repo.run("audit", "--strict")
    assert audit.code == 0, audit.text
    # the key decrypts what is encrypted to the host: the first boot has its secrets
    identity = crypto.identities_from_bytes(key.read_bytes(), "key")
    data = crypto.encrypt(b"first boot", [crypto.parse_recipient(rules.hosts["web2"].key, "t")])
    assert crypto.decrypt(data, identity, "t") == b"first boot"


def test_reinstall_writes_the_same_key_again(repo: Repo, runtime: Path, tmp_path: Path) -> None:
    first = _tree_of(repo.run("host", "add", "web2", "--generate").text)
    r = repo.run("host", "reinstall", "web2")
    assert r.code == 0, r.err
    again = _tree_of(r.text)
    assert again != first
    for name in (bootstrap.KEY_FILE, f"{bootstrap.KEY_FILE}.pub"):
        assert (again / name).read_bytes() == (first / name).read_bytes()
    assert stat.S_IMODE((again / bootstrap.KEY_FILE).stat().st_mode) == 0o600


def test_a_directory_on_disk_is_used_with_a_warning(repo: Repo, tmp_path: Path) -> None:
    fs = filesystem_type(tmp_path)
    if fs in MEMORY_FS:
        pytest.skip("the test's temporary directory is on tmpfs")
    target = tmp_path / "extra"
    r = repo.run("host", "add", "web2", "--generate", "--extra-files", str(target))
    assert r.code == 0, r.err
    assert f"warning: {target} is on {fs}, not tmpfs: host web2's private key may stay" in r.err
    assert (target / bootstrap.KEY_FILE).is_file()
    assert stat.S_IMODE(target.stat().st_mode) == 0o700
    # never into a directory that holds something
    r = repo.run("host", "reinstall", "web2", "--extra-files", str(target))
    assert r.code == 2 and "exists and is not an empty directory" in r.err
    empty = tmp_path / "empty"
    empty.mkdir()
    r = repo.run("host", "reinstall", "web2", "--extra-files", str(empty))
    assert r.code == 0, r.err
    assert (empty / bootstrap.KEY_FILE).read_bytes() == (target / bootstrap.KEY_FILE).read_bytes()


def test_replace_with_generate_rekeys_the_hosts_secrets(repo: Repo, runtime: Path) -> None:
    old = load_rules(repo.rules).hosts["web1"].key
    r = repo.run("host", "add", "web1", "--generate", "--replace")
    assert r.code == 0, r.err
    assert "changed the key of host web1" in r.text and "rekeyed 1 of 1 secrets" in r.text
    key = _tree_of(r.text) / bootstrap.KEY_FILE
    new = load_rules(repo.rules).hosts["web1"].key
    assert recipient_id(new) != recipient_id(old)
    identity = crypto.identities_from_bytes(key.read_bytes(), "key")
    assert crypto.decrypt(repo.age_file("db").read_bytes(), identity, "db") == b"v"
    assert repo.run("check").code == 0


def test_what_is_refused(repo: Repo, runtime: Path) -> None:
    r = repo.run("host", "add", "web2")
    assert r.code == 2 and "give the host's KEY, or --generate to make one here" in r.err
    r = repo.run("host", "add", "web2", repo.host("web1").public, "--generate")
    assert r.code == 2 and "give KEY or --generate, not both" in r.err
    r = repo.run("host", "reinstall", "web1")
    assert r.code == 2 and "host web1 has no stored key" in r.err
    r = repo.run("host", "reinstall", "web3")
    assert r.code == 2 and "no host 'web3'" in r.err
    assert repo.run("host", "add", "web2", "--generate").code == 0
    # a removed host's stored key is not overwritten unasked
    assert repo.run("host", "remove", "web2").code == 0
    before = repo.age_file(SECRET).read_bytes()
    r = repo.run("host", "add", "web2", "--generate")
    assert r.code == 2 and "a stored key of host web2 is there already" in r.err
    assert repo.age_file(SECRET).read_bytes() == before
    assert "web2" not in load_rules(repo.rules).hosts


def test_a_rotated_key_is_not_written_until_it_is_the_hosts(repo: Repo, runtime: Path) -> None:
    assert repo.run("host", "add", "web2", "--generate").code == 0
    assert repo.run("rotate", SECRET).code == 0
    r = repo.run("host", "reinstall", "web2")
    assert r.code == 1
    assert "holds a key that is not host web2's key in the rules (rotated?)" in r.err
    pub = repo.secrets / f"{SECRET}.pub"
    assert repo.run("host", "add", "web2", str(pub), "--replace", "--rekey").code == 0
    r = repo.run("host", "reinstall", "web2")
    assert r.code == 0, r.err


def test_a_stored_key_read_by_a_host_is_refused(repo: Repo, runtime: Path) -> None:
    assert repo.run("host", "add", "web2", "--generate").code == 0
    repo.rules.write_text(
        repo.rules.read_text().replace("hosts = []\ngenerator", 'hosts = ["web1"]\ngenerator')
    )
    r = repo.run("host", "reinstall", "web2")
    assert r.code == 1 and "a stored host key is for admins only" in r.err
