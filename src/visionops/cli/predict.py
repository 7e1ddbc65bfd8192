"""`visionops predict`: classify image files with an exported model, decoded and resized by the
same code as the pipeline (`data/decode.load_resized`), batched through ONNX Runtime.

MODEL is a local .onnx or TensorRT .engine file (a matching engine that the export stage
built beside a local .onnx is used in its place), or a registered version (`models:/NAME@champion`,
`models:/NAME/3`, `models:/NAME/latest`) resolved against $MLFLOW_TRACKING_URI or the project's
mlflow.db, every file of it checked against the hashes sealed when it was registered.
Unreadable files are listed with their reason and skipped; the exit status is non-zero only
when nothing could be classified, and then --out is left as it was. --out is written
atomically; it may be a folder (then FOLDER/predictions.csv is written), never one of the
input images, and an existing file is replaced only when predict wrote it (or with --force).
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

import numpy as np

from visionops.errors import VisionOpsError

BATCH = 64  # images decoded and classified at a time: memory stays flat in the number of files
DEFAULT_OUT = "predictions.csv"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        required=True,
        help="a .onnx or .engine file, or a registered version: models:/NAME@ALIAS, models:/NAME/N",
    )
    parser.add_argument("paths", nargs="+", type=Path, help="image files or folders (searched recursively)")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(DEFAULT_OUT),
        help=f"CSV to write, replaced only when at least one image was classified; a folder gets "
        f"FOLDER/{DEFAULT_OUT} (default: %(default)s)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace an existing --out that is not an earlier predict CSV (refused otherwise)",
    )
    parser.add_argument(
        "--top-k",
        type=int,
        default=1,
        help="also write the k best labels and probabilities (at most all classes)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    """The command: classify, write the CSV, report what was skipped."""
    from visionops.data.folders import image_files

    if args.top_k < 1:
        raise VisionOpsError(f"--top-k {args.top_k} is not a positive number", "pass --top-k 1 or more")
    files = sorted(image_files(args.paths))
    if not files:
        raise VisionOpsError(
            f"no image files under {', '.join(map(str, args.paths))}",
            "pass image files or folders holding .jpg/.png/.webp/... files",
        )
    out = output_path(args.out, files, args.model, args.force)  # before any work: a bad --out costs nothing
    with tempfile.TemporaryDirectory(prefix="visionops-predict-") as tmp:
        model = open_model(resolve_model(args.model, Path(tmp)))
        top_k = min(args.top_k, len(model.classes))
        if top_k < args.top_k:
            print(
                f"predict: --top-k {args.top_k} is more than the model's {top_k} classes: writing all {top_k}"
            )
        rows, failed = classify(model, files, top_k, progress=not args.no_progress)
    for path, reason in failed:
        print(f"predict: skipped {path}: {reason}", file=sys.stderr)
    if not rows:
        kept = f"{out} was left as it was" if out.exists() else f"{out} was not written"
        print(f"predict: no image could be classified; {kept}", file=sys.stderr)
        return 1
    write_predictions(rows, out, top_k)
    print(
        f"predict: {len(rows)} image(s) classified -> {out}" + (f"; {len(failed)} skipped" if failed else "")
    )
    return 0


MODEL_SUFFIXES = (".onnx", ".engine", ".pt", ".pth", ".data", ".json")


HEADER = re.compile(r"path,label,index,probability(,label_\d+,probability_\d+)*\r?")


def is_predictions_csv(path: Path) -> bool:
    """Is `path` a CSV that predict wrote (its header line)?"""
    with open(path, "rb") as file:
        first = file.readline(4096).decode("utf-8", errors="replace").rstrip("\n")
    return HEADER.fullmatch(first) is not None


def output_path(out: Path, inputs: list[Path], model: str = "", force: bool = False) -> Path:
    """Where the CSV goes: `out`, or `out`/predictions.csv for a folder. Refused when it would
    overwrite one of the input images, the model, any image or model file, an existing file that
    is not an earlier predict CSV (unless `force`), or cannot be written at all (checked by
    creating a file beside it)."""
    from visionops.data.folders import IMAGE_SUFFIXES
    from visionops.io import replaceable, writable_output

    if out.is_dir():
        out = out / DEFAULT_OUT
    target = out.resolve()
    among = any(path.resolve() == target for path in inputs)
    suffix = out.suffix.lower()
    refusals = [  # (would destroy it, what it is), the first that holds is named
        (among, "one of the input images"),
        (":/" not in model and Path(model).resolve() == target, "the model"),
        (suffix in IMAGE_SUFFIXES, "an image file name"),
        (suffix in MODEL_SUFFIXES, "a model file name"),
    ]
    what = next((name for holds, name in refusals if holds), None)
    if what is not None:
        raise VisionOpsError(
            f"--out {out} is {what}: writing the CSV there would destroy it",
            f"pass a .csv path for --out, e.g. --out {DEFAULT_OUT}",
        )
    replaceable(out, "--out", is_predictions_csv, "a CSV that predict wrote", force)
    writable_output(out, "--out", "pass an --out path in a folder you can write, e.g. --out predictions.csv")
    return out


def resolve_model(model: str, into: Path) -> Path:
    """A local .onnx path, or the .onnx file of an MLflow model URI downloaded into `into`."""
    if ":/" not in model:  # models:/, runs:/, http://, ...
        path = Path(model)
        if not path.is_file():
            raise VisionOpsError(
                f"model file {path} does not exist", "pass a .onnx or .engine file, or a models:/ URI"
            )
        return path
    from visionops.tracking.version_files import fetch_announced, onnx_file

    return onnx_file(fetch_announced(model, into, "predict").local, model)  # every file checked first


def open_model(path: Path):
    """A TensorRT engine when `path` is one, or when the export stage built one beside this
    .onnx from the same model and it matches this machine; ONNX Runtime otherwise."""
    from visionops.export.classifier import OnnxClassifier
    from visionops.export.engine_classifier import TensorRTClassifier, engine_for

    if path.suffix == ".engine":
        model = TensorRTClassifier(path)
    else:
        model, why_not = engine_for(path)
        if why_not:
            print(f"predict: not using the TensorRT engine: {why_not}; ONNX Runtime instead", file=sys.stderr)
        if model is None:
            return OnnxClassifier(path)
    for warning in model.warnings:
        print(f"predict: warning: {warning}", file=sys.stderr)
    print(f"predict: TensorRT {model.info['tensorrt']} engine ({model.info['effective_precision']})")
    return model


def classify(
    model, files: list[Path], top_k: int, progress: bool = True
) -> tuple[list[dict], list[tuple[Path, str]]]:
    """(one row per classified file, (file, reason) per file that could not be read)."""
    from tqdm import tqdm

    from visionops.data.file_batches import decode_batches

    rows, failed = [], []
    size, channels, classes = model.meta["image_size"], model.meta["channels"], model.classes
    with tqdm(total=len(files), desc="predict", unit="img", disable=None if progress else True) as bar:
        for batch in decode_batches(files, channels, size, BATCH):
            failed += batch.skipped
            if batch.images:
                probs = model.probabilities(np.stack(batch.images))
                best = np.argsort(-probs, axis=1)[:, :top_k]
                for path, p, order in zip(batch.paths, probs, best, strict=True):
                    row = {
                        "path": str(path),
                        "label": classes[order[0]],
                        "index": int(order[0]),
                        "probability": float(p[order[0]]),
                    }
                    for k in range(1, len(order)):
                        row |= {
                            f"label_{k + 1}": classes[order[k]],
                            f"probability_{k + 1}": float(p[order[k]]),
                        }
                    rows.append(row)
            bar.update(len(batch))
    return rows, failed


def write_predictions(rows: list[dict], out: Path, top_k: int) -> None:
    import pandas as pd

    from visionops.io import write_csv

    columns = ["path", "label", "index", "probability"]
    columns += [c for k in range(2, top_k + 1) for c in (f"label_{k}", f"probability_{k}")]
    write_csv(out, pd.DataFrame(rows, columns=columns))
