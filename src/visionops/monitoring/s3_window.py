"""A window kept in object storage: the newest images under an s3:// prefix (AWS, or any
S3-compatible store named by AWS_ENDPOINT_URL, such as the team's SeaweedFS), downloaded
with boto3 into a scratch folder with their upload times as modification times, so that
`visionops monitor s3://bucket/incoming` needs no AWS CLI and no copy of the whole prefix."""

from __future__ import annotations

import heapq
import os
from pathlib import Path, PurePosixPath

from visionops.errors import VisionOpsError, first_line

SCHEME = "s3://"
CREDENTIALS_FIX = (
    "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or an AWS profile) for the bucket, and "
    "AWS_ENDPOINT_URL for a store that is not AWS"
)


def is_s3(path: str) -> bool:
    return str(path).startswith(SCHEME)


def download_window(uri: str, size: int, into: Path, seed: int | None = None) -> tuple[list[Path], int]:
    """The `size` newest image objects under `uri` (by upload time; with `seed`, `size` drawn at
    random as monitoring/window.sampled draws them), as local files under `into`, oldest first,
    and how many image objects the prefix holds; only those are downloaded, and only their keys
    are held in memory."""
    from visionops.data.folders import IMAGE_SUFFIXES
    from visionops.monitoring.window import sample_rank

    bucket, prefix = _split(uri)
    client = _client()
    kept: list[tuple] = []  # a heap of the `size` best: (rank, modified, key)
    found = 0
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                if PurePosixPath(item["Key"]).suffix.lower() in IMAGE_SUFFIXES:
                    found += 1
                    modified, key = item["LastModified"].timestamp(), item["Key"]
                    rank = modified if seed is None else _inverted(sample_rank(seed, f"{uri}/{key}"))
                    entry = (rank, modified, key)
                    (heapq.heappush if len(kept) < size else heapq.heappushpop)(kept, entry)
        files = []
        for index, (modified, key) in enumerate(sorted((modified, key) for _, modified, key in kept)):
            local = local_path(into, index, key)
            local.parent.mkdir(parents=True, exist_ok=True)
            client.download_file(bucket, key, str(local))
            os.utime(local, (modified, modified))
            files.append(local)
    except Exception as exc:
        raise _problem(exc, uri) from None
    if not files:
        raise VisionOpsError(
            f"the window is empty: no image files under {uri}",
            "point monitor at the prefix where the served model's recent images are kept",
        )
    return files, found


def _inverted(rank: bytes) -> bytes:
    """A sample rank turned so that the heap, which keeps the largest, keeps the smallest."""
    return bytes(255 - b for b in rank)


def local_path(into: Path, index: int, key: str) -> Path:
    """Where object `key` (the `index`-th of the window) is kept: directly in `into`, named by its
    position and the key's last part with anything but letters, digits, '.', '-' and '_' replaced.
    An object key is the store's data, not a path: `../x.png` or `/etc/x.png` stay inside."""
    import re

    name = re.sub(r"[^A-Za-z0-9._-]", "_", PurePosixPath(key.replace("\\", "/")).name)[-120:]
    local = into / f"{index:06d}-{name.lstrip('.') or 'object'}"
    if local.resolve().parent != into.resolve():
        raise VisionOpsError(f"object key {key!r} maps outside the scratch folder", "rename the object")
    return local


def _split(uri: str) -> tuple[str, str]:
    bucket, _, prefix = uri[len(SCHEME) :].partition("/")
    if not bucket:
        raise VisionOpsError(f"{uri} names no bucket", "write it as s3://BUCKET/PREFIX")
    return bucket, prefix


def _client():
    try:
        import boto3
    except ModuleNotFoundError:
        raise VisionOpsError(
            "an s3:// window needs the Python package 'boto3', which is not installed",
            "pip install boto3 (it comes with visionops[server]), or copy the images to a folder",
        ) from None
    return boto3.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None)


def _problem(exc: Exception, uri: str) -> VisionOpsError:
    """One message with the cause and the fix for what boto3 raised."""
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

    if isinstance(exc, NoCredentialsError):
        return VisionOpsError(f"no credentials to read {uri}", CREDENTIALS_FIX)
    if isinstance(exc, EndpointConnectionError):
        return VisionOpsError(
            f"the object store for {uri} cannot be reached ({first_line(exc)})",
            "check AWS_ENDPOINT_URL and that the store is up",
        )
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        if code in {"NoSuchBucket", "404"}:
            return VisionOpsError(f"{uri}: the bucket does not exist", "check the bucket's name")
        if code in {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403"}:
            return VisionOpsError(f"{uri}: the store refused these credentials ({code})", CREDENTIALS_FIX)
    if isinstance(exc, VisionOpsError):
        return exc
    return VisionOpsError(f"{uri} could not be read: {first_line(exc, 200)}", CREDENTIALS_FIX)
