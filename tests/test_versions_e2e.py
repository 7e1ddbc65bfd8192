"""Issue 48: a new version of the data costs what it adds, on real DVC. A folder source (digits
as class folders) goes through four versions (a first, images added, removed, relabelled), each
reproduced to evaluate, committed and pushed to a local remote; a teammate's clone checks out
each commit in turn and gets that version's exact outputs from `dvc pull`, with nothing to run;
no data stage rewrites a file an earlier version wrote; and the version built step by step trains
the same model.pt as the same images built from scratch."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
from e2e import clone_repo, edit_params, run, stages_run

pytestmark = pytest.mark.e2e

IMAGES = "data/images"  # data.path: git-ignored, each clone has its own copy
CHECKED = (
    "data/listing",
    "data/raw",
    "data/validated",
    "data/prepared",
    "models/model.pt",
    "reports/predictions.csv",
)
APPEND_ONLY = (
    "data/listing",
    "data/raw/shards",
    "data/raw/index",
    "data/validated/descriptions",
    "data/prepared/chunks",
)


def digits_tree(folder: Path, per_class: int = 40) -> None:
    """Three classes of the digits as PNG files in class folders."""
    from PIL import Image

    from visionops.data.digits import load_digits_images

    images, labels, _ = load_digits_images()
    for label in (0, 1, 2):
        (folder / str(label)).mkdir(parents=True, exist_ok=True)
        for i, pixels in enumerate(images[labels == label][:per_class]):
            Image.fromarray(pixels).save(folder / str(label) / f"{i:03d}.png")


def add(folder: Path) -> None:
    from PIL import Image

    from visionops.data.digits import load_digits_images

    images, labels, _ = load_digits_images()
    for i, pixels in enumerate(images[labels == 2][40:44]):
        Image.fromarray(pixels).save(folder / "2" / f"new-{i}.png")


def remove(folder: Path) -> None:
    for path in sorted((folder / "0").iterdir())[:4]:
        path.unlink()


def relabel(folder: Path) -> None:
    for path in sorted((folder / "1").iterdir())[:4]:
        path.rename(folder / "2" / f"was-1-{path.name}")


def digests(repo: Path) -> dict[str, str]:
    """sha256 of every file of the checked outputs."""
    found = {}
    for name in CHECKED:
        target = repo / name
        files = sorted(p for p in target.rglob("*") if p.is_file()) if target.is_dir() else [target]
        found |= {str(p.relative_to(repo)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}
    return found


def set_images(repo: Path, snapshot: Path) -> None:
    shutil.rmtree(repo / IMAGES, ignore_errors=True)
    shutil.copytree(snapshot, repo / IMAGES)


@pytest.fixture(scope="module")
def history(pipeline_template, tmp_path_factory):
    """The four versions: (repo, {name: (commit, snapshot of the folder, digests)})."""
    work = tmp_path_factory.mktemp("versions")
    repo = clone_repo(pipeline_template[0], work / "repo")
    edit_params(repo, {"data": {"source": "folder", "path": IMAGES, "test_fraction": 0.25}})
    run(["dvc", "remote", "add", "-d", "local", str(work / "remote")], repo)
    run(["git", "commit", "-qam", "a folder source and a remote"], repo)
    versions = {}
    for name, change in (
        ("first", digits_tree),
        ("added", add),
        ("removed", remove),
        ("relabelled", relabel),
    ):
        change(repo / IMAGES)
        snapshot = work / "snapshots" / name
        shutil.copytree(repo / IMAGES, snapshot)
        out = run(["dvc", "repro", "evaluate"], repo).stdout
        run(["git", "add", "-A"], repo)
        run(["git", "commit", "-qm", f"data: {name}"], repo)
        run(["dvc", "push"], repo)
        commit = run(["git", "rev-parse", "HEAD"], repo).stdout.strip()
        versions[name] = (commit, snapshot, digests(repo), out)
    return repo, versions


def test_each_version_reruns_the_data_stages_and_reads_only_what_changed(history):
    _, versions = history
    added, removed, relabelled = (versions[name][3] for name in ("added", "removed", "relabelled"))
    assert "4 packed" in added and "1 to describe" not in added and "4 to describe" in added, added
    assert " 0 packed" in removed and "0 to describe" in removed, removed
    assert " 0 packed" in relabelled and "0 to describe" in relabelled, relabelled  # moved: same bytes
    assert "train" in stages_run(relabelled)  # labels changed: trained again


def test_no_version_rewrites_a_file_an_earlier_one_wrote(history):
    """Shards, index fragments, description parts and chunks are only ever added or dropped."""
    _, versions = history
    seen: dict[str, str] = {}
    for name, (_, _, found, _) in versions.items():
        for path, digest in found.items():
            if path.startswith(APPEND_ONLY) and not path.endswith("removed.csv"):  # rewritten: the changes
                assert seen.setdefault(path, digest) == digest, (name, path)
    assert any(path.startswith("data/prepared/chunks/0001") for path in seen)  # a version added one


def test_a_teammate_checks_out_each_version_and_pulls_its_exact_outputs_with_nothing_to_run(
    history, tmp_path
):
    repo, versions = history
    teammate = tmp_path / "teammate"
    run(["git", "clone", "-q", str(repo), str(teammate)], tmp_path)
    for name, (commit, snapshot, found, _) in versions.items():
        run(["git", "checkout", "-q", commit], teammate)
        set_images(teammate, snapshot)  # the teammate's copy of the folder, as it was then
        run(["dvc", "pull", "-q"], teammate)
        out = run(["dvc", "repro", "evaluate"], teammate).stdout
        assert stages_run(out) == ["scan"], (name, out)  # it lists the folder, finds it as recorded
        assert digests(teammate) == found, name


def test_the_version_built_step_by_step_trains_the_model_built_from_scratch(
    history, pipeline_template, tmp_path
):
    """What training sees depends on content, not history: the incremental data/prepared lays
    its files out otherwise, and model.pt and evaluate's predictions are the same bytes."""
    _, versions = history
    _, snapshot, incremental, _ = versions["added"]
    scratch = clone_repo(pipeline_template[0], tmp_path / "scratch")
    edit_params(scratch, {"data": {"source": "folder", "path": IMAGES, "test_fraction": 0.25}})
    set_images(scratch, snapshot)
    run(["dvc", "repro", "evaluate"], scratch)
    fresh = digests(scratch)
    for name in ("models/model.pt", "reports/predictions.csv"):
        assert fresh[name] == incremental[name], name
    chunks = {p for p in incremental if p.startswith("data/prepared/chunks/")}
    assert chunks != {p for p in fresh if p.startswith("data/prepared/chunks/")}  # laid out otherwise
