"""A registered version's files, hashed when it is registered and checked before every use.

MLflow keeps a logged model's files under its experiment's artifacts, where anyone with EDIT on
the experiment (or access to the object store) can replace them after the gate. So register
hashes every file of the logged model right after uploading it (`manifest`), stores that list
as a run artifact, and registers the version with the list's sha256 as the write-once tag
`files.sha256` (the team server refuses later changes: tracking/server_guard.py). Every consumer
(`visionops predict`, `visionops serve`, the gate scoring the champion) downloads the version,
checks each file against the list, and only then loads anything from that local, checked copy;
`visionops monitor` downloads and checks only the files it loads (the ONNX file and the
reference), not the version's 150 others.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from visionops.errors import VisionOpsError
from visionops.io import file_sha256

FILES_TAG = "files.sha256"  # sha256 of the manifest's bytes
MANIFEST_TAG = "files.manifest"  # where the manifest is: runs:/<run>/custody/<model id>.json
CLIENT_SIDE = frozenset({"registered_model_meta"})  # written by MLflow's download, not stored


def manifest(folder: Path) -> dict[str, str]:
    """{relative path: sha256} of every file under `folder`, sorted by path."""
    files = {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*")) if p.is_file()}
    return {name: file_sha256(path) for name, path in files.items() if name not in CLIENT_SIDE}


def manifest_bytes(files: dict[str, str]) -> bytes:
    """The canonical bytes of a manifest: what `files.sha256` is the hash of."""
    return json.dumps(files, indent=1, sort_keys=True).encode()


def record_files(run_id: str, model_uri: str, model_id: str, into: Path) -> dict[str, str]:
    """Download the just-logged model `model_uri`, hash its files, store the manifest in the run;
    returns the version tags that seal it."""
    import hashlib

    import mlflow

    local = Path(mlflow.artifacts.download_artifacts(model_uri, dst_path=str(into)))
    text = manifest_bytes(manifest(local))
    artifact = f"custody/{model_id}.json"
    mlflow.MlflowClient().log_text(run_id, text.decode(), artifact)
    return {FILES_TAG: hashlib.sha256(text).hexdigest(), MANIFEST_TAG: f"runs:/{run_id}/{artifact}"}


def verify(name: str, version: str, tags: dict[str, str], local: Path, onnx_only_ok: bool) -> list[str]:
    """Check the downloaded files of `name` v`version` in `local` against the manifest its tags
    seal; raises naming every file that changed, appeared or went missing. A version registered
    before manifests (or made by hand with only `onnx.sha256`) has only its ONNX file checked,
    and only where `onnx_only_ok` (the caller loads nothing else); then a warning is returned."""
    if FILES_TAG not in tags:
        if not onnx_only_ok:
            raise VisionOpsError(
                f"{name} v{version} carries no file manifest ({FILES_TAG}): its Python code and other "
                "files cannot be checked, so none of it is loaded",
                "re-register the model with visionops's register stage (`dvc repro -f register`), which "
                "seals every file, and use that version",
            )
        return _verify_onnx_only(name, version, tags, local)
    recorded = _recorded_manifest(name, version, tags)
    found = manifest(local)
    changed = sorted(p for p in recorded.keys() & found.keys() if recorded[p] != found[p])
    added, missing = sorted(found.keys() - recorded.keys()), sorted(recorded.keys() - found.keys())
    problems = [f"changed: {p}" for p in changed] + [f"added: {p}" for p in added]
    problems += [f"missing: {p}" for p in missing]
    if problems:
        raise _tampered(name, version, "; ".join(problems[:8]) + (" ..." if len(problems) > 8 else ""))
    return []


def _recorded_manifest(name: str, version: str, tags: dict[str, str]) -> dict[str, str]:
    import hashlib

    import mlflow

    try:
        text = mlflow.artifacts.load_text(tags[MANIFEST_TAG]).encode()
    except Exception as exc:
        raise _tampered(
            name, version, f"its file list {tags.get(MANIFEST_TAG)} cannot be read ({exc})"
        ) from None
    if hashlib.sha256(text).hexdigest() != tags[FILES_TAG]:
        raise _tampered(name, version, f"its file list {tags[MANIFEST_TAG]} was changed")
    return json.loads(text)


def _verify_onnx_only(name: str, version: str, tags: dict[str, str], local: Path) -> list[str]:
    expected = tags.get("onnx.sha256")
    if expected is None:
        raise VisionOpsError(
            f"{name} v{version} carries no recorded file hashes, so its files cannot be checked",
            "use a version registered by visionops's register stage (`dvc repro register`)",
        )
    onnx = sorted(local.rglob("*.onnx"))
    if not onnx or file_sha256(onnx[0]) != expected:
        raise _tampered(name, version, f"changed: {onnx[0].relative_to(local) if onnx else 'its ONNX file'}")
    return [
        f"{name} v{version} was registered before file manifests: only its ONNX file was checked; "
        "re-register it (`dvc repro -f register`) to have every file checked"
    ]


def _tampered(name: str, version: str, what: str) -> VisionOpsError:
    return VisionOpsError(
        f"{name} v{version} is not what was registered: {what}. Nothing was loaded",
        "someone or something replaced files after registration: tell the team's admin; "
        "use another version, or register this model again",
    )


@dataclass
class Fetched:
    """A registered version downloaded and checked: where, which, and what could not be checked."""

    local: Path
    name: str
    version: str
    warnings: list[str]


def download_verified(
    model_uri: str, into: Path, onnx_only_ok: bool = True, wanted: Callable[[str], bool] | None = None
) -> Fetched:
    """A registered version, named any way MLflow reads a models:/ URI, downloaded by its number
    and checked file by file. Any other URI (runs:/, a logged model, a folder) is refused:
    nothing recorded its files. With `wanted` (a sealed file's relative path -> needed?), only
    the sealed files it wants are downloaded and checked: a caller that loads an ONNX file and
    a few arrays need not fetch the 160 files of a served version (issue 49)."""
    import mlflow

    version = registered_version(model_uri)
    name, number, tags = version.name, str(version.version), dict(version.tags)
    if wanted is not None and FILES_TAG in tags:
        return Fetched(download_wanted(name, number, tags, into, wanted), name, number, [])
    local = Path(mlflow.artifacts.download_artifacts(f"models:/{name}/{number}", dst_path=str(into)))
    return Fetched(local, name, number, verify(name, number, tags, local, onnx_only_ok))


def download_wanted(
    name: str, version: str, tags: dict[str, str], into: Path, wanted: Callable[[str], bool]
) -> Path:
    """The sealed files of `name` v`version` that `wanted` names, downloaded one by one under
    `into`/model and each checked against the seal before anything is returned."""
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    recorded = _recorded_manifest(name, version, tags)
    local = into / "model"
    local.mkdir(parents=True, exist_ok=True)
    repository = get_artifact_repository(f"models:/{name}/{version}")
    changed = []
    for path in sorted(p for p in recorded if wanted(p)):
        if path.startswith("/") or ".." in path.split("/"):
            raise _tampered(name, version, f"its file list names {path!r}, outside the model")
        repository.download_artifacts(path, dst_path=str(local))
        if file_sha256(local / path) != recorded[path]:
            changed.append(path)
    if changed:
        raise _tampered(name, version, "changed: " + "; changed: ".join(changed[:8]))
    return local


USE_A_VERSION = (
    "pass a registered version: models:/NAME@champion or models:/NAME/N (or a local .onnx file where "
    "one is accepted)"
)


def registered_version(model_uri: str):
    """The ModelVersion a models:/ URI names, read by MLflow's own parser (the reading its download
    would make): NAME@ALIAS, NAME/N, NAME/latest, also spelt models:///...; resolved to its number
    now. Stage names (deprecated; anyone with EDIT moves them), logged-model ids, another registry
    (models://profile/...) and every other scheme are refused."""
    from urllib.parse import urlparse

    import mlflow
    from mlflow.store.artifact.utils.models import _parse_model_uri, get_model_name_and_version

    if urlparse(model_uri).scheme != "models":
        raise VisionOpsError(
            f"{model_uri} is not a registered version: nothing recorded its files, so they cannot be "
            "checked before they are loaded",
            USE_A_VERSION,
        )
    if urlparse(model_uri).netloc:
        raise VisionOpsError(
            f"{model_uri} names another registry ({urlparse(model_uri).netloc})", USE_A_VERSION
        )
    try:
        parsed = _parse_model_uri(model_uri)
    except mlflow.exceptions.MlflowException as exc:
        raise VisionOpsError(
            f"{model_uri} is not a model URI MLflow can read ({exc.message[:160]})", USE_A_VERSION
        ) from None
    if parsed.model_id is not None:
        raise VisionOpsError(
            f"{model_uri} is a logged model, not a registered version: nothing sealed its files",
            USE_A_VERSION,
        )
    if parsed.stage is not None:
        raise VisionOpsError(
            f"{model_uri} names the stage '{parsed.stage}': MLflow's stages are deprecated and anyone who "
            "may edit the model moves them, so they say nothing about who approved a version",
            f"use the alias the gate moves (models:/{parsed.name}@champion) or a version number",
        )
    client = mlflow.MlflowClient()
    name, number = get_model_name_and_version(client, model_uri)
    return client.get_model_version(name, number)


def fetch(
    model_uri: str, into: Path, onnx_only_ok: bool = True, wanted: Callable[[str], bool] | None = None
) -> Fetched:
    """`download_verified` against the project's tracking store, with every failure as one
    message that names its cause: a missing client package, a refused login, a server or
    storage that is down (found in seconds: MLflow's own retries would take minutes), or a
    name that does not resolve."""
    import os

    from visionops.config import TrackingParams
    from visionops.errors import first_line
    from visionops.tracking.availability import apply_http_settings, is_unavailable, store_problem
    from visionops.tracking.runs import configure, project_root

    uri = configure(project_root())
    if "MLFLOW_HTTP_REQUEST_MAX_RETRIES" not in os.environ:
        apply_http_settings(TrackingParams())
    try:
        return download_verified(model_uri, into, onnx_only_ok, wanted)
    except VisionOpsError:
        raise
    except ModuleNotFoundError as exc:  # s3://, gs://, ... need their client library
        raise VisionOpsError(
            f"{model_uri} needs the Python package '{exc.name}', which is not installed",
            f"pip install {exc.name} (or pass a local model file)",
        ) from None
    except Exception as exc:
        problem = store_problem(exc, uri)
        if problem is not None:
            raise problem from None
        if is_unavailable(exc) or "error code 500" in str(exc):
            raise VisionOpsError(
                f"the MLflow server {uri} could not hand out {model_uri}: it, its database or its "
                f"artifact store is down ({first_line(exc, 160)})",
                "try again once the team's stack is up again (ask its admin), or pass a local .onnx file",
            ) from None
        raise VisionOpsError(
            f"MLflow cannot resolve {model_uri}: {first_line(exc, 300)}",
            f"check the name and alias/version in the MLflow UI (`make ui`), or MLFLOW_TRACKING_URI ({uri})",
        ) from None


def fetch_announced(
    model_uri: str,
    into: Path,
    who: str,
    onnx_only_ok: bool = True,
    wanted: Callable[[str], bool] | None = None,
) -> Fetched:
    """`fetch`, each warning printed to stderr as `<who>: warning: ...`."""
    import sys

    fetched = fetch(model_uri, into, onnx_only_ok, wanted)
    for warning in fetched.warnings:
        print(f"{who}: warning: {warning}", file=sys.stderr)
    return fetched


def onnx_file(local: Path, model_uri: str) -> Path:
    """The ONNX file of a fetched model: the first under its folder, or the file itself."""
    found = sorted(local.rglob("*.onnx")) if local.is_dir() else [local]
    if not found or found[0].suffix != ".onnx":
        raise VisionOpsError(
            f"{model_uri} holds no ONNX file", "pass a model registered by visionops's register stage"
        )
    return found[0]
