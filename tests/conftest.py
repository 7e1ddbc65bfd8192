"""Shared fixtures: a real digits dataset on disk and a small model trained on it (CPU)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import visionops  # noqa: F401  (sets process hygiene env vars first)
from visionops.config import DataParams, TrainParams


@pytest.fixture
def raw_digits(tmp_path: Path):
    """The digits' data/raw as the download stage packs it (with source.json), opened."""
    from visionops.data.shards import RawImages
    from visionops.data.sources import materialize
    from visionops.io import write_json

    root = tmp_path / "raw-digits"
    write_json(root / "source.json", materialize(DataParams(), root, progress=False))
    return RawImages(root)


@pytest.fixture
def digit_tree(tmp_path: Path) -> Path:
    """The digits' data/raw unpacked into class folders (with source.json), for tests to edit
    and then pack (`digits_data.pack_tree`)."""
    from digits_data import digits_tree

    return digits_tree(tmp_path / "raw")


@pytest.fixture(scope="session")
def digits_arrays() -> dict[str, np.ndarray]:
    """Digits as uint8 NHWC arrays (8x8x1), split 80/20 with the pipeline's splitter."""
    from visionops.data.digits import load_digits_images
    from visionops.data.split import stratified_split

    images, labels, _ = load_digits_images()
    train, test = stratified_split(labels, 0.2, 0)
    x = images[..., None]
    return {
        "train_x": x[train],
        "train_y": labels[train],
        "test_x": x[test],
        "test_y": labels[test],
    }


@pytest.fixture(scope="session")
def trained(digits_arrays):
    """(model, spec, meta) of a simple_cnn trained 4 epochs on digits; about 2 s on CPU."""
    import torch

    from visionops.augment.pack import pixel_sums
    from visionops.data.loader import ImageBatches
    from visionops.device import resolve_device
    from visionops.models.zoo import create_model
    from visionops.training.loop import fit

    mean, std = pixel_sums(digits_arrays["train_x"]).mean_std()
    spec = {"arch": "simple_cnn", "in_channels": 1, "num_classes": 10, "width": 16, "dropout": 0.0}
    torch.manual_seed(0)
    model = create_model(spec)
    setup = resolve_device("cpu")
    data = ImageBatches(digits_arrays["train_x"], digits_arrays["train_y"], mean, std, setup.device)
    fit(model, data, None, TrainParams(epochs=4, lr=0.01, crop_padding=0), setup, progress=False)
    meta = {
        "classes": [str(i) for i in range(10)],
        "mean": mean,
        "std": std,
        "image_size": 8,
        "channels": 1,
        "input": "float32 NCHW",
    }
    return model.eval(), spec, meta


@pytest.fixture(scope="session")
def prepared_digits(tmp_path_factory):
    """The digits' prepared data (16 px, 1 channel, one augmented copy) in a folder."""
    from digits_data import write_prepared_digits

    return write_prepared_digits(tmp_path_factory.mktemp("raw"), tmp_path_factory.mktemp("prepared"))


@pytest.fixture(scope="session")
def pipeline_template(tmp_path_factory):
    """(repo, result) of the session's one `dvc repro` (small params) on a project copy.
    e2e modules clone it (`e2e.clone_repo`); nothing may change the template itself. Under
    pytest-xdist the workers share it: the first to need it makes it, the others wait."""
    import json
    import subprocess

    from e2e import copy_project, run
    from filelock import FileLock

    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # the run's folder, above each worker's own
    folder, done = shared / "template", shared / "template.json"
    with FileLock(shared / "template.lock"):
        if not done.exists():
            result = run(["dvc", "repro"], copy_project(folder / "repo"))
            write = {"args": result.args, "stdout": result.stdout, "stderr": result.stderr}
            done.write_text(json.dumps(write))
    said = json.loads(done.read_text())
    return folder / "repo", subprocess.CompletedProcess(said["args"], 0, said["stdout"], said["stderr"])


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Each module kept whole, in this order: one module that needs the session's pipeline run
    (its worker makes it), the slow modules that do not (the other worker runs them meanwhile
    instead of waiting on the template's lock), the other modules that need it, then the units,
    which fill the gaps at the end instead of a lone e2e module running on one core."""
    templated, slow = set(), set()
    for item in items:
        module = item.nodeid.split("::")[0]
        if "pipeline_template" in item.fixturenames:
            templated.add(module)
        if item.get_closest_marker("e2e") or item.get_closest_marker("slow"):
            slow.add(module)
    modules = list(dict.fromkeys(item.nodeid.split("::")[0] for item in items))
    rank = {module: 2 if module in templated else 1 if module in slow else 3 for module in modules}
    builder = next((module for module in modules if module in templated), None)
    if builder:
        rank[builder] = 0
    items.sort(key=lambda item: rank[item.nodeid.split("::")[0]])  # stable: a module's order kept


@pytest.fixture(scope="session")
def deployable_onnx(trained, digits_arrays, tmp_path_factory):
    """The trained model exported as the deployable graph (uint8 NHWC in, metadata set)."""
    import torch

    from visionops.data.decode import RESIZE_METHOD
    from visionops.export.deployable import Deployable, onnx_metadata
    from visionops.export.onnx_export import export_onnx

    model, _, meta = trained
    path = tmp_path_factory.mktemp("deployable") / "model.onnx"
    example = torch.from_numpy(digits_arrays["test_x"][:2])
    export_onnx(
        Deployable(model, meta["mean"], meta["std"]), example, path, 20, onnx_metadata(meta, RESIZE_METHOD)
    )
    return path
