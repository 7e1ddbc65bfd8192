"""A tree of files as sources list it (a folder walked, an archive's members), and the
entries that never belong to a dataset (hidden files, OS metadata)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

IGNORED_NAMES = frozenset({".DS_Store", "Thumbs.db", "desktop.ini"})


def ignored(name: str) -> bool:
    """Hidden and OS-metadata entries that are never part of a dataset."""
    parts = PurePosixPath(name.replace("\\", "/")).parts
    return any(p.startswith(".") or p == "__MACOSX" or p in IGNORED_NAMES for p in parts)


@dataclass
class Listing:
    """A tree of files: relative path -> what the source needs to read it, and every folder."""

    files: dict[PurePosixPath, Any] = field(default_factory=dict)
    dirs: set[PurePosixPath] = field(default_factory=set)

    def add_file(self, path: PurePosixPath, handle: Any) -> None:
        self.files[path] = handle
        self.dirs.update(path.parents)

    def add_dir(self, path: PurePosixPath) -> None:
        self.dirs.add(path)
        self.dirs.update(path.parents)

    def entries(self, folder: PurePosixPath) -> list[PurePosixPath]:
        """The files and folders directly inside `folder`, hidden ones left out."""
        inside = [p for p in (*self.files, *self.dirs) if p.parent == folder and p != folder]
        return sorted(p for p in inside if not ignored(p.name))
