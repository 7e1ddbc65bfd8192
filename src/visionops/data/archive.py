"""Read a downloaded .tar(.gz)/.zip (list and stream its members, or unpack it) without
letting it write anywhere else or blow up.

Refused with a clear error: absolute paths, `..`, links pointing outside the archive, device
files, more members or more unpacked bytes than the caps (zip bombs). Skipped quietly: links
inside the archive, and hidden/system entries (`__MACOSX/`, `.DS_Store`, `Thumbs.db`, dot-files).
Tar members also go through tarfile's `filter="data"` as a second line of defence.
"""

from __future__ import annotations

import io
import stat
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from visionops.data.listing import Listing, ignored, key_of
from visionops.errors import VisionOpsError

UNSAFE_FIX = "the archive is unsafe or malformed: do not use it (re-create it with relative paths, no links)"
BUFFER = 1 << 20


@dataclass(frozen=True)
class Limits:
    """Caps on what one archive may unpack to."""

    max_bytes: int
    max_members: int


def extract(archive: Path, target: Path, limits: Limits) -> None:
    """Unpack archive (tar of any compression, or zip) into the existing folder target."""
    if zipfile.is_zipfile(archive):
        _extract_zip(archive, target, limits)
    elif _is_tar(archive):
        _extract_tar(archive, target, limits)
    else:
        _not_an_archive(archive)


def _not_an_archive(archive: Path) -> None:
    head = Path(archive).read_bytes()[:32]
    raise VisionOpsError(
        f"{Path(archive).name} is neither a tar nor a zip archive (it starts with {head!r})",
        "point data.url at the .tar.gz/.tgz/.zip file itself, not at a web page about it",
    )


def check_member_name(name: str) -> PurePosixPath:
    """The member's relative path, or an error if it is absolute or climbs out with `..`."""
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or (path.parts and path.parts[0].endswith(":")):
        raise VisionOpsError(f"archive member {name!r} has an absolute path", UNSAFE_FIX)
    if ".." in path.parts:
        raise VisionOpsError(f"archive member {name!r} climbs out of the target with '..'", UNSAFE_FIX)
    return path


def check_link(name: str, link: str, relative_to_member: bool) -> None:
    """A link must resolve inside the archive: symlinks relative to their folder, tar hard
    links relative to the archive root."""
    base = PurePosixPath(name).parent if relative_to_member else PurePosixPath()
    target = PurePosixPath(link.replace("\\", "/"))
    depth = 0
    for part in () if target.is_absolute() else (base / target).parts:
        depth += -1 if part == ".." else (0 if part == "." else 1)
        if depth < 0:
            break
    if target.is_absolute() or depth < 0:
        raise VisionOpsError(f"archive member {name!r} links outside the archive (to {link!r})", UNSAFE_FIX)


def _is_tar(archive: Path) -> bool:
    try:
        return tarfile.is_tarfile(archive)
    except OSError:  # e.g. a truncated gzip stream
        return False


def _over_caps(members: int, size: int, limits: Limits) -> None:
    if members > limits.max_members:
        raise VisionOpsError(
            f"the archive has more than {limits.max_members} entries (data.max_members)",
            "this looks like an archive bomb; raise data.max_members only if you trust the archive",
        )
    if size > limits.max_bytes:
        raise VisionOpsError(
            f"the archive unpacks to more than {limits.max_bytes / 1e6:.0f} MB (data.max_extract_mb)",
            "this looks like a zip bomb; raise data.max_extract_mb only if you trust the archive",
        )


def _extract_tar(archive: Path, target: Path, limits: Limits) -> None:
    with tarfile.open(archive, "r:*") as tar:
        chosen = list(_checked_tar_members(tar, limits))
        tar.extractall(target, members=chosen, filter="data")


def _checked_tar_members(tar: tarfile.TarFile, limits: Limits) -> Iterator[tarfile.TarInfo]:
    """The files and folders worth unpacking, after every member passed the checks (all of
    them are checked before the first is yielded)."""
    chosen, total = [], 0
    for count, member in enumerate(tar, start=1):
        check_member_name(member.name)
        if member.isdev():
            raise VisionOpsError(f"archive member {member.name!r} is a device file or FIFO", UNSAFE_FIX)
        if member.issym() or member.islnk():
            check_link(member.name, member.linkname, relative_to_member=member.issym())
            continue  # links inside the archive are not needed for image folders
        total += member.size if member.isfile() else 0
        _over_caps(count, total, limits)
        if not ignored(member.name) and (member.isfile() or member.isdir()):
            chosen.append(member)
    yield from chosen


def _extract_zip(archive: Path, target: Path, limits: Limits) -> None:
    with zipfile.ZipFile(archive) as zf:
        budget = limits.max_bytes
        for info, path in _checked_zip_members(zf, limits):
            destination = Path(target, *path.parts)
            if info.is_dir():
                destination.mkdir(parents=True, exist_ok=True)
                continue
            destination.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as source, open(destination, "wb") as out:
                budget -= _copy_capped(source, out, budget, limits)


def _checked_zip_members(zf: zipfile.ZipFile, limits: Limits) -> list[tuple[zipfile.ZipInfo, PurePosixPath]]:
    """The entries worth unpacking with their paths, after every entry passed the checks."""
    infos = zf.infolist()
    _over_caps(len(infos), 0, limits)
    chosen = []
    for info in infos:
        path = check_member_name(info.filename)
        if info.flag_bits & 0x1:
            raise VisionOpsError(f"archive member {info.filename!r} is encrypted", "unpack it yourself")
        if stat.S_ISLNK(info.external_attr >> 16):
            check_link(info.filename, zf.read(info).decode(errors="replace"), relative_to_member=True)
            continue
        if not ignored(info.filename):
            chosen.append((info, path))
    _over_caps(len(infos), sum(info.file_size for info, _ in chosen), limits)
    return chosen


def archive_listing(archive: Path, limits: Limits) -> Listing:
    """The archive's files and folders (every member checked as `extract` checks it), each
    file with the member to read it by; nothing is unpacked."""
    listing = Listing()
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for info, member_path in _checked_zip_members(zf, limits):
                path = key_of(member_path)
                (listing.add_dir(path) if info.is_dir() else listing.add_file(path, info.filename))
    elif _is_tar(archive):
        with tarfile.open(archive, "r:*") as tar:
            for member in _checked_tar_members(tar, limits):
                path = key_of(check_member_name(member.name))
                (listing.add_dir(path) if member.isdir() else listing.add_file(path, member.name))
    else:
        _not_an_archive(archive)
    return listing


def read_members(archive: Path, wanted: set[str], limits: Limits) -> Iterator[tuple[str, bytes]]:
    """(member name, bytes) of the `wanted` files, in the archive's own order: one sequential
    pass, so a .tar.gz is decompressed once. The byte cap holds even if headers lie."""
    budget = limits.max_bytes
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                if info.filename in wanted:
                    buffer = io.BytesIO()
                    with zf.open(info) as source:
                        budget -= _copy_capped(source, buffer, budget, limits)
                    yield info.filename, buffer.getvalue()
        return
    with tarfile.open(archive, "r|*") as tar:
        for member in tar:
            if member.isfile() and member.name in wanted:
                data = tar.extractfile(member).read()
                budget -= len(data)
                _over_caps(0, 0 if budget >= 0 else limits.max_bytes + 1, limits)
                yield member.name, data


def _copy_capped(source, out, budget: int, limits: Limits) -> int:
    """Copy a member, stopping at the byte budget even if its header understated its size."""
    copied = 0
    while block := source.read(BUFFER):
        copied += len(block)
        if copied > budget:
            _over_caps(0, limits.max_bytes + 1, limits)
        out.write(block)
    return copied
