"""A tree of files as sources list it (a folder walked, an archive's members), and the
entries that never belong to a dataset (hidden files, OS metadata)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

IGNORED_NAMES = frozenset({".DS_Store", "Thumbs.db", "desktop.ini"})


def ignored(name: str) -> bool:
    """Hidden and OS-metadata entries that are never part of a dataset."""
    return any(map(ignored_part, PurePosixPath(name.replace("\\", "/")).parts))


def ignored_part(part: str) -> bool:
    """One path component that makes its entry `ignored` (cheap: a folder walk asks per entry)."""
    return part.startswith(".") or part == "__MACOSX" or part in IGNORED_NAMES


@dataclass
class Listing:
    """A tree of files: relative path -> what the source needs to read it, and every folder."""

    files: dict[PurePosixPath, Any] = field(default_factory=dict)
    dirs: set[PurePosixPath] = field(default_factory=set)
    _children: dict[PurePosixPath, list[PurePosixPath]] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def add_file(self, path: PurePosixPath, handle: Any) -> None:
        self.files[path] = handle
        if path.parent not in self.dirs:  # most files share their folder with the previous one
            self.dirs.update(path.parents)
        self._children = None

    def add_dir(self, path: PurePosixPath) -> None:
        self.dirs.add(path)
        self.dirs.update(path.parents)
        self._children = None

    def entries(self, folder: PurePosixPath) -> list[PurePosixPath]:
        """The files and folders directly inside `folder`, hidden ones left out."""
        if self._children is None:  # indexed once: callers ask for several folders
            self._children = {}
            for path in (*self.files, *self.dirs):
                if path.parent != path:
                    self._children.setdefault(path.parent, []).append(path)
        return sorted(p for p in self._children.get(folder, []) if not ignored(p.name))
