"""Small file helpers: atomic writes so an interrupted stage never leaves a half-written output,
and reads and writes that fail with the file named and a fix instead of a traceback."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from visionops.errors import VisionOpsError

REPRODUCE = "re-create it with `dvc repro` (or `dvc checkout` restores the version dvc.lock records)"
NO_SPACE = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
NO_WRITE = {errno.EACCES, errno.EPERM, errno.EROFS}


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (temp file in the same folder, then rename)."""
    write_text(path, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def write_metrics(path: Path, values: dict[str, Any]) -> None:
    """Write a DVC metrics file: flat, numbers only (booleans as 0/1; None and non-finite
    values left out, so `dvc metrics show` never prints a non-number)."""
    import math
    import numbers

    kept: dict[str, int | float] = {}
    for key, value in values.items():
        if value is None:
            continue
        if not isinstance(value, numbers.Real):
            raise TypeError(f"metric {key!r} is {type(value).__name__}, not a number")
        number = int(value) if isinstance(value, numbers.Integral) else float(value)
        if math.isfinite(number):
            kept[key] = number
    write_json(path, kept)


def write_csv(path: Path, frame) -> None:
    """Write a DataFrame as CSV (no index) atomically."""
    with atomic_path(path, suffix=".csv") as tmp:
        frame.to_csv(tmp, index=False)


def save_figure(fig, path: Path, dpi: int = 100, metadata: dict[str, str] | None = None) -> None:
    """Save a matplotlib figure atomically (the format comes from `path`'s suffix), with
    `metadata` (PNG text chunks) when given."""
    path = Path(path)
    with atomic_path(path, suffix=path.suffix) as tmp:
        fig.savefig(tmp, dpi=dpi, metadata=metadata)


def write_torch(path: Path, obj: Any) -> None:
    """torch.save atomically. Serialised in memory first: torch's own file writer reports a
    full disk as an opaque zip-position error, Python's file write as ENOSPC."""
    import io

    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getbuffer())


def write_text(path: Path, text: str) -> None:
    """Write text atomically (temp file in the same folder, then rename)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


@contextlib.contextmanager
def atomic_path(final: Path, suffix: str = "") -> Iterator[Path]:
    """A temporary path beside `final` for the block to write; renamed onto `final` when the
    block succeeds and removed when it fails, so readers see the old or the new file, never
    a half-written one. `suffix` keeps an extension tools look at (e.g. ".onnx")."""
    final = Path(final)
    tmp = final.with_name(f".{final.name}.tmp{suffix}")
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        yield tmp
        tmp.replace(final)
    except OSError as exc:
        problem = write_problem(exc, final)
        if problem is None:
            raise
        raise problem from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def write_problem(exc: BaseException, path: Path | str) -> VisionOpsError | None:
    """A full disk or an unwritable folder as a message naming the file, else None."""
    code = getattr(exc, "errno", None)
    if code in NO_SPACE:
        return VisionOpsError(
            f"no space left writing {path} ({exc})",
            "free disk space (e.g. `dvc gc -w` drops cache entries the workspace does not use), "
            "then re-run; outputs are written atomically, so the previous ones are intact",
        )
    if code in NO_WRITE:
        return VisionOpsError(
            f"cannot write {path}: {os.strerror(code)}",
            f"make {Path(path).parent} writable (its owner, mode or mount), or work in a writable "
            "clone; the previous outputs are intact",
        )
    return None


def read_csv(path: Path):
    """Read a CSV file a pipeline stage wrote; a missing or damaged file is named with a fix."""
    import pandas as pd

    path = Path(path)
    try:
        return pd.read_csv(path)
    except FileNotFoundError:
        raise VisionOpsError(f"{path} is missing", REPRODUCE) from None
    except (ValueError, UnicodeDecodeError) as exc:  # pandas' ParserError is a ValueError
        raise VisionOpsError(f"{path} is damaged or truncated ({exc})", REPRODUCE) from None


def read_json(path: Path) -> Any:
    """Read a JSON file a pipeline stage wrote; a missing or damaged file is named with a fix."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise VisionOpsError(f"{path} is missing", REPRODUCE) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise VisionOpsError(f"{path} is damaged or truncated (not valid JSON: {exc})", REPRODUCE) from None


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes, read in blocks: what a stage records of the exact file it used."""
    return file_digest(path, "sha256")


def file_digest(path: Path, algorithm: str) -> str:
    """Hex digest of a file's bytes by `algorithm` (hashlib's name: a download's md5 too)."""
    import hashlib

    try:
        with open(path, "rb") as fh:
            return hashlib.file_digest(fh, algorithm).hexdigest()
    except FileNotFoundError:
        raise VisionOpsError(f"{path} is missing", REPRODUCE) from None


def publish_dir(staging: Path, final: Path) -> None:
    """Replace `final` with the fully written `staging` folder.

    The previous `final` is moved aside first and removed only after the swap, so a
    crash leaves either the old or the new complete folder, never a half-written one.
    """
    staging, final = Path(staging), Path(final)
    backup = final.with_name(f".{final.name}.old")
    if backup.exists():
        shutil.rmtree(backup)
    if final.exists():
        os.replace(final, backup)
    os.replace(staging, final)
    if backup.exists():
        shutil.rmtree(backup)


def staging_dir_for(final: Path) -> Path:
    """A fresh empty sibling folder to build `final` in (same filesystem, so rename is atomic)."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = final.with_name(f".{final.name}.partial")
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir()
    return staging


@contextlib.contextmanager
def sqlite_creation_lock(url: str) -> Iterator[None]:
    """Hold `<database>.lock` beside the SQLite database of `url` (a no-op for other URLs), so that
    of processes opening a new database together, one creates its tables and runs its alembic
    migrations alone: concurrently they collide ("table ... already exists", a second
    alembic_version row)."""
    if not url.startswith("sqlite:///"):
        yield
        return
    from filelock import FileLock

    with FileLock(url.removeprefix("sqlite:///") + ".lock", timeout=600):
        yield


def probe_writable(folder: Path) -> None:
    """Create and remove a file in `folder`: an OSError now (missing, read-only, /proc) instead
    of after the work whose result would go there."""
    import tempfile

    with tempfile.NamedTemporaryFile(dir=folder, prefix=".visionops-", suffix=".probe"):
        pass


def writable_output(path: Path, option: str, fix: str) -> None:
    """Create the folder of a command's output `path` and check a file can be written there,
    before any work; otherwise a VisionOpsError naming `option` (e.g. --out) and the folder."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        probe_writable(path.parent)
    except OSError as exc:
        raise VisionOpsError(
            f"{option} {path} cannot be written: {path.parent} is not a writable folder "
            f"({exc.strerror or exc})",
            fix,
        ) from None


def replaceable(path: Path, option: str, ours: Callable[[Path], bool], what: str, force: bool) -> None:
    """A command replaces an existing `path` only when it is its own earlier output (`ours`
    recognises it) or the user passed --force: anything else is refused before any work."""
    path = Path(path)
    if not path.exists() or (force and path.is_file()):
        return
    if not path.is_file():
        raise VisionOpsError(f"{option} {path} exists and is not a file", f"pass a file path for {option}")
    try:
        own = ours(path)
    except (OSError, ValueError):
        own = False
    if not own:
        raise VisionOpsError(
            f"{option} {path} exists and is not {what}: writing there would destroy it",
            f"choose another path for {option}, or pass --force to replace that file",
        )


def link_or_copy(source: Path, target: Path) -> None:
    """`target` as the same file as `source`: a hard link (no byte copied; DVC sees the same
    inode and hashes nothing again), else a copy. How a new version carries a file unchanged."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)
