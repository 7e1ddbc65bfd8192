"""Issue 13: the deployed model carries its own preprocessing. The ONNX graph takes uint8 NHWC
images and normalises inside; `visionops predict` and the MLflow pyfunc model take image
files and decode/resize them with the pipeline's own code."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from visionops.__main__ import main as visionops
from visionops.data.decode import RESIZE_METHOD
from visionops.data.prepared import to_model_input
from visionops.export.classifier import EagerClassifier, OnnxClassifier
from visionops.models.zoo import classifier_head
from visionops.serving.packaging import pyfunc_spec


@pytest.fixture(scope="module")
def exported(deployable_onnx, trained, digits_arrays):
    """(onnx path, PyTorch logits on the digits test images) of the trained model."""
    model, _, meta = trained
    with torch.inference_mode():
        logits = model(torch.from_numpy(to_model_input(digits_arrays["test_x"], meta))).numpy()
    return deployable_onnx, logits


def png_bytes(pixels: np.ndarray, size: int | None = None, mode: str = "L") -> bytes:
    image = Image.fromarray(pixels[..., 0]).convert(mode)
    if size:
        image = image.resize((size, size), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_exported_graph_takes_uint8_nhwc_and_normalises_inside(exported, digits_arrays, trained):
    path, reference = exported
    model = OnnxClassifier(path)
    assert model.takes_uint8 and model.input.shape[1:] == [8, 8, 1]
    assert model.classes == trained[2]["classes"] and model.meta["resize"] == RESIZE_METHOD
    assert "inside the graph" in model.meta["normalization"]
    logits = model.logits(digits_arrays["test_x"])
    assert np.abs(logits - reference).max() < 1e-3
    assert (logits.argmax(1) == reference.argmax(1)).mean() == 1.0
    # issue 35: the second output is what the class head reads, for monitoring's MMD test
    net = trained[0]
    with torch.inference_mode():
        features = net.features(torch.from_numpy(to_model_input(digits_arrays["test_x"], trained[2]))).numpy()
    probabilities, embedding = model.outputs(digits_arrays["test_x"])
    assert model.has_embedding and np.abs(embedding - features).max() < 1e-3
    assert np.allclose(probabilities, model.probabilities(digits_arrays["test_x"]))
    assert not classifier_head(net)._forward_pre_hooks  # the export left no hook behind


def test_every_backend_predicts_through_one_classifier(exported, digits_arrays, trained, tmp_path):
    """Issue 34: evaluate's PyTorch model and the exported graph answer the same images with the
    same probabilities, batch by batch from a memory map, whatever the batch size."""
    path, reference = exported
    model, _, meta = trained
    images = digits_arrays["test_x"]
    stored = tmp_path / "test_x.npy"
    np.save(stored, images)
    mapped = np.load(stored, mmap_mode="r")
    eager = EagerClassifier(model, meta, batch=7)
    probabilities = eager.probabilities(mapped)
    assert probabilities.shape == (len(images), len(meta["classes"])) and probabilities.dtype == np.float64
    assert np.allclose(probabilities.sum(1), 1.0)
    assert np.abs(eager.logits(mapped) - reference).max() < 1e-4  # the normalisation evaluate used
    assert np.array_equal(EagerClassifier(model, meta, batch=256).labels(images), reference.argmax(1))
    onnx = OnnxClassifier(path)
    assert np.abs(onnx.probabilities(mapped) - probabilities).max() < 1e-4
    assert np.array_equal(onnx.labels(mapped), eager.labels(mapped))
    assert eager.task == onnx.task and eager.classes == onnx.classes
    assert eager.probabilities(images[:0]).shape == (0, len(meta["classes"]))


def test_a_memory_mapped_split_is_scored_in_flat_memory(tmp_path):
    """Evaluate and the gate score a whole test split: reading it through the memory map would
    put every page of it in the process's RSS; the classifier reads batches with pread."""
    import json
    import subprocess
    import sys

    shape = (2048, 128, 128, 3)
    images = np.lib.format.open_memmap(tmp_path / "x.npy", mode="w+", dtype=np.uint8, shape=shape)
    images[:] = 7
    images.flush()
    del images
    script = f"""
import json, re
import numpy as np
import visionops.data.prepared  # imported before the measurement: its code is not the split
from visionops.export.classifier import Classifier
def peak():  # VmHWM: the peak resident set, mapped file pages included
    return int(re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1)) * 1024
class Counting(Classifier):
    meta = {{"classes": ["a", "b"]}}
    def _logits(self, batch):
        return np.zeros((len(batch), 2), np.float32) + batch.mean()
images = np.load({str(tmp_path / "x.npy")!r}, mmap_mode="r")
before = peak()
labels = Counting().labels(images)
after = peak()
print(json.dumps({{"growth": after - before, "n": len(labels)}}))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["n"] == 2048
    split = np.prod(shape)  # 96 MB; a batch of 256 rows is 12 MB (mapped: +96-112 MB, read: +24 MB)
    assert result["growth"] < split / 2, f"peak RSS grew {result['growth'] / 2**20:.0f} MB for a 96 MB split"


def test_predict_cli_classifies_folders_and_lists_unreadable_files(exported, digits_arrays, tmp_path, capsys):
    path, reference = exported
    folder = tmp_path / "photos"
    for i in range(20):
        where = folder / ("a" if i % 2 else "b/c")
        where.mkdir(parents=True, exist_ok=True)
        (where / f"{i:02d}.png").write_bytes(png_bytes(digits_arrays["test_x"][i]))
    (folder / "broken.png").write_bytes(b"not an image")
    (folder / "notes.txt").write_text("ignored: not an image suffix")
    out = tmp_path / "preds.csv"
    assert (
        visionops(
            ["predict", "--model", str(path), str(folder), "--out", str(out), "--top-k", "2", "--no-progress"]
        )
        == 0
    )
    got = pd.read_csv(out)
    assert list(got.columns) == ["path", "label", "index", "probability", "label_2", "probability_2"]
    assert len(got) == 20 and (got["probability"] >= got["probability_2"]).all()
    number = got["path"].str.extract(r"(\d+)\.png$")[0].astype(int)
    assert (got["label"].astype(str).to_numpy() == reference[number].argmax(1).astype(str)).all()
    captured = capsys.readouterr()
    assert (
        "skipped" in captured.err
        and "broken.png" in captured.err
        and "20 image(s) classified" in captured.out
    )

    only_broken = tmp_path / "bad"
    only_broken.mkdir()
    (only_broken / "x.jpg").write_bytes(b"\xff\xd8 truncated")
    assert (
        visionops(
            [
                "predict",
                "--model",
                str(path),
                str(only_broken),
                "--out",
                str(tmp_path / "none.csv"),
                "--no-progress",
            ]
        )
        == 1
    )


def test_predict_cli_bad_model_is_a_message_with_a_fix(tmp_path, capsys):
    image = tmp_path / "x.png"
    image.write_bytes(png_bytes(np.zeros((8, 8, 1), np.uint8)))
    assert visionops(["predict", "--model", str(tmp_path / "nope.onnx"), str(image), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "does not exist" in err and "fix:" in err and "Traceback" not in err


def test_pyfunc_model_takes_encoded_images_of_any_size_and_mode(
    exported, digits_arrays, tmp_path, monkeypatch
):
    import mlflow

    from visionops.tracking import registry
    from visionops.tracking.runs import configure

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    configure(tmp_path)
    path, reference = exported
    with mlflow.start_run():
        logged = registry.log_image_model({"onnx": path}, pyfunc_spec(digits_arrays["test_x"][0]))
    model = mlflow.pyfunc.load_model(logged.model_uri)
    assert [c.name for c in model.metadata.get_input_schema().inputs] == ["image"]
    images = [png_bytes(digits_arrays["test_x"][i]) for i in range(10)]
    out = model.predict(pd.DataFrame({"image": images}))
    assert list(out.columns) == ["label", "index", "probability"]
    assert (out["index"].to_numpy() == reference[:10].argmax(1)).all()
    assert (out["label"] == out["index"].astype(str)).all() and out["probability"].between(0, 1).all()
    bigger_rgb = png_bytes(digits_arrays["test_x"][3], size=64, mode="RGB")  # resized and made grey
    assert model.predict(pd.DataFrame({"image": [bigger_rgb]}))["index"].iloc[0] == reference[3].argmax()
