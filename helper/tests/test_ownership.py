from __future__ import annotations

import os
from pathlib import Path

import pytest

from nixseal.engine.ownership import Accounts, OwnershipError


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/passwd").write_text(
        "# comment\nroot:x:0:0::/root:/bin/sh\nnginx:x:60:61::/var/empty:/bin/false\nbroken\n"
    )
    (tmp_path / "etc/group").write_text("root:x:0:\nnginx:x:61:\nkeys:x:96:\n")
    return tmp_path


def test_names_resolve_against_the_root(root: Path) -> None:
    acc = Accounts(str(root))
    assert acc.resolve("nginx", None) == (60, 61)
    assert acc.resolve("nginx", "keys") == (60, 96)
    assert acc.resolve(None, None) == (0, 0)
    assert acc.resolve("60", None) == (60, 61)  # a uid finds its primary group too
    assert acc.resolve("4242", "4343") == (4242, 4343)
    assert acc.keys_gid() == 96


def test_unknown_names_are_errors(root: Path) -> None:
    acc = Accounts(str(root))
    with pytest.raises(OwnershipError, match="unknown owner 'mallory'"):
        acc.resolve("mallory", None)
    with pytest.raises(OwnershipError, match="unknown group 'wheel'"):
        acc.resolve("nginx", "wheel")


def test_without_account_files_the_host_databases_are_used(tmp_path: Path) -> None:
    acc = Accounts(str(tmp_path))
    assert acc.resolve("root", "root") == (0, 0)
    assert Accounts(None).resolve(str(os.getuid()), None)[0] == os.getuid()
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/group").write_text("root:x:0:\n")
    assert Accounts(str(tmp_path)).keys_gid() == 0  # no keys group: root
