"""Download one file into the cache: streamed, retried, resumed with Range, checksum-verified.

A file only reaches its cache name after its checksum matched, so a cut, a timeout or a
wrong mirror never leaves a file that a later run would trust. The `.part` file of an
interrupted download is kept and resumed.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from visionops.errors import VisionOpsError
from visionops.io import file_digest

CHUNK = 1 << 16  # a cut loses at most the chunk being read, so keep it small
BACKOFF_S = 0.5  # the n-th retry waits BACKOFF_S * 2**n
RETRY_STATUSES = (408, 429, 500, 502, 503, 504)


@dataclass(frozen=True)
class Checksum:
    """An expected digest: `algorithm` is a hashlib name (sha256, md5)."""

    algorithm: str
    hexdigest: str

    def of(self, path: Path) -> str:
        """This algorithm's digest of the file at path."""
        return file_digest(path, self.algorithm)


@dataclass(frozen=True)
class FetchSettings:
    """Network behaviour, from the data params."""

    cache_dir: Path
    timeout_s: float = 30.0
    retries: int = 4
    allow_http: bool = False
    progress: bool = True


def default_cache_dir(configured: str | None) -> Path:
    """data.cache_dir, else $VISIONOPS_CACHE_DIR, else ~/.cache/visionops (outside DVC outputs)."""
    chosen = configured or os.environ.get("VISIONOPS_CACHE_DIR") or Path.home() / ".cache" / "visionops"
    return Path(chosen).expanduser()


def check_url(url: str, allow_http: bool) -> None:
    """Only https, and http when allowed: anything else is refused before any connection."""
    scheme = urlparse(url).scheme
    if scheme == "http" and not allow_http:
        raise VisionOpsError(
            f"refusing plain http:// download {url}",
            "use an https:// URL, or set data.allow_http: true (the checksum is still verified)",
        )
    if scheme not in ("http", "https"):
        raise VisionOpsError(
            f"unsupported URL scheme {scheme!r} in {url}",
            "give an https:// URL (for files on this machine use data.source: folder)",
        )


def fetch(url: str, settings: FetchSettings, checksum: Checksum | None) -> Path:
    """Return a cached, verified copy of url, downloading (or resuming) only when needed."""
    check_url(url, settings.allow_http)
    name = Path(urlparse(url).path).name or "download"
    if checksum is None:
        target = settings.cache_dir / "unverified" / f"{hashlib.sha256(url.encode()).hexdigest()[:16]}-{name}"
    else:
        target = settings.cache_dir / f"{checksum.algorithm}-{checksum.hexdigest[:16]}-{name}"
        if target.is_file() and checksum.of(target) == checksum.hexdigest:
            return target
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    if checksum is None:
        part.unlink(missing_ok=True)  # nothing to check a resumed file against
    _download(url, part, settings)
    if checksum is not None:
        actual = checksum.of(part)
        if actual != checksum.hexdigest:
            part.unlink()
            raise VisionOpsError(
                f"checksum mismatch for {url}: expected {checksum.algorithm} {checksum.hexdigest}, "
                f"got {actual}",
                "the file changed upstream or the mirror serves something else: check data.url, "
                "and update data.sha256 only if you trust the new file",
            )
    os.replace(part, target)
    return target


def _download(url: str, part: Path, settings: FetchSettings) -> None:
    """Stream url into part, resuming from its current size; retry cuts and timeouts."""
    import requests

    session = _session(settings.retries)
    last_error: Exception | None = None
    for attempt in range(settings.retries + 1):
        if attempt:
            time.sleep(BACKOFF_S * 2 ** (attempt - 1))
        try:
            if _stream_once(session, url, part, settings):
                return
            last_error = OSError("the connection closed before the whole file arrived")
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
            last_error = exc
    raise VisionOpsError(
        f"download of {url} failed after {settings.retries + 1} attempt(s): {last_error}",
        f"check the URL and your connection, or raise data.retries / data.timeout_s; "
        f"the partial file {part} is kept and the next run resumes it",
    )


def _stream_once(session, url: str, part: Path, settings: FetchSettings) -> bool:
    """One GET (with Range when part exists); append to part. True when the file is complete."""
    from tqdm import tqdm

    have = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    timeout = (settings.timeout_s, settings.timeout_s)
    with session.get(url, stream=True, timeout=timeout, headers=headers) as response:
        if response.status_code == 416 and have:  # the part is already whole (or stale): restart
            part.unlink()
            return False
        _raise_for_status(response, url)
        if have and response.status_code != 206:  # the server ignored Range: start over
            have = 0
        length = response.headers.get("Content-Length")
        total = have + int(length) if length else None
        bar = tqdm(
            total=total,
            initial=have,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=part.name.removesuffix(".part")[-40:],
            disable=None if settings.progress else True,
        )
        with open(part, "ab" if have else "wb") as out, bar:
            for chunk in response.iter_content(CHUNK):
                out.write(chunk)
                bar.update(len(chunk))
    return total is None or part.stat().st_size >= total


def _raise_for_status(response, url: str) -> None:
    if response.status_code < 400:
        return
    hint = {
        404: "the URL does not exist: check data.url (or the mirror)",
        403: "access denied: check the URL and whether it needs credentials",
    }.get(response.status_code, "the server kept failing after all retries: try later or use a mirror")
    raise VisionOpsError(f"HTTP {response.status_code} {response.reason} for {url}", hint)


def _session(retries: int):
    """A requests session that retries connects, timeouts and 408/429/5xx with backoff."""
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    retry = Retry(
        total=retries,
        backoff_factor=BACKOFF_S,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=frozenset({"GET"}),
        raise_on_status=False,
        respect_retry_after_header=True,
    )
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session
