"""Symlinks at custom paths (outside symlinkPath), pointing into symlinkPath.

A custom path's directory may belong to a user (a service's home); it is
reached by the safe walk (nixseal.util.safepath) with the secret's owner as the
only trusted uid besides root, so a directory or symlink of anyone else,
or a user's symlink back into root's files, fails that entry alone. A link
is never placed inside the generations (a symlink on the way may lead
there), and a link is removed only while it still is exactly ours.
"""

from __future__ import annotations

from nixseal.engine.generation import Store
from nixseal.errors import LinkError, NixsealError
from nixseal.util.safepath import (
    ANY_OWNER,
    Dir,
    open_dir,
    place_symlink,
    relative,
    remove_symlink,
    within,
)

ENTRY_OWNERS = "root or the secret's owner"


def _split(path: str) -> tuple[str, str]:
    parent, _, name = path.rpartition("/")
    return parent or "/", name


class Links:
    """Links for one run: the root, the store, and where symlinkPath is."""

    def __init__(self, root: Dir, store: Store, symlink_path: str, rooted: str) -> None:
        self.root = root
        self.store = store
        self.symlink_path = symlink_path
        self.rooted = rooted  # how the root prefixes paths in messages ("" without --root)
        self._anchor: str | None = None

    def anchor(self) -> str | None:
        """symlinkPath's physical place (its directory resolved, its own name kept):
        targets through it follow it to the live generation."""
        if self._anchor is None:
            parent, name = _split(self.symlink_path)
            try:
                with open_dir(self.root, parent, ANY_OWNER) as d:
                    self._anchor = f"{d.path.rstrip('/')}/{name}"
            except (NixsealError, OSError):
                return None
        return self._anchor

    def place(self, path: str, rel: str, uid: int) -> None:
        """path becomes a link to symlinkPath/rel; LinkError or OSError otherwise."""
        parent, name = _split(path)
        with open_dir(self.root, parent, {uid}, who=ENTRY_OWNERS, create=0o755) as d:
            if within(d.path, self.store.path):
                raise LinkError(
                    f"{self.rooted}{path}: inside the generations ({self.store.shown}); "
                    "refusing to place a link there"
                )
            anchor = self.anchor()
            if anchor is None:
                raise LinkError(f"{self.rooted}{self.symlink_path}: missing")
            place_symlink(d, name, f"{relative(d.path, anchor)}/{rel}")

    def is_ours(self, path: str, rel: str) -> bool:
        """Whether path is the link place() makes for rel."""
        parent, name = _split(path)
        anchor = self.anchor()
        if anchor is None:
            return False
        try:
            with open_dir(self.root, parent, ANY_OWNER) as d:
                return d.readlink(name) == f"{relative(d.path, anchor)}/{rel}"
        except (NixsealError, OSError):
            return False

    def remove(self, path: str, rel: str) -> None:
        """Remove path if it still is our link to rel (never a user's file)."""
        parent, name = _split(path)
        anchor = self.anchor()
        if anchor is None:
            return
        with open_dir(self.root, parent, ANY_OWNER) as d:
            remove_symlink(d, name, f"{relative(d.path, anchor)}/{rel}")
