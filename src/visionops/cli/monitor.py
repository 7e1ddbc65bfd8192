"""`visionops monitor`: is the model still seeing what it was trained for? The newest images
(monitor.window, by modification time; or --sample N drawn at random, seeded) under IMAGES
(folders, files, or s3:// prefixes read with boto3: AWS_ENDPOINT_URL for a store other than
AWS) are classified by the model and tested against the reference registered with it
(models/reference, built by the `reference` stage): a KS test per class on the softmax outputs,
an MMD test on the model's embedding, a chi-square test on the predicted class shares, a KS
test per image statistic (brightness, contrast, sharpness, size) and a test of the share of
images out of the model's domain, corrected together at monitor.alpha (weighted Holm: half of
it for the MMD test). Each image's out-of-domain score is the larger of how unlike the
classes its embedding is and how unsure the model is, against the reference's; the threshold
is set by monitor.ood_fpr. Accuracy is estimated without labels (ATC) on the in-domain images
(not at all over monitor.max_ood_for_estimate out of domain) and measured on the images a
--labels CSV (path,label) names. Instead of image files, --requests FOLDER reads the newest
records the served model logged (`visionops serve` with VISIONOPS_REQUEST_LOG=FOLDER).

Verdict and exit status: ok 0; drift 3 (a test rejects); degraded 4 (accuracy fell more than
monitor.max_accuracy_drop); out_of_domain 5 (over monitor.max_ood_share of the images are unlike
any the model learned: a person must look, retraining would not help); 1 on an error (then
nothing is written). Writes --out (JSON) and a plot beside it, and logs the check as an MLflow
run in the monitor.experiment experiment, named `monitor NAME vN DATE SOURCES` and tagged with
the model's name and version; the report and the run say what the window was (its sources,
the rule that chose it, how many files it left out), and each test family's smallest adjusted
p-value, the out-of-domain share and the estimate are metrics. Of a registered version, only
the ONNX file and the reference are downloaded, each checked against the version's seal.
Policy: the `monitor:` section of params.yaml.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

EXIT_CODES = {"ok": 0, "drift": 3, "degraded": 4, "out_of_domain": 5}
DEFAULT_OUT = Path("reports/monitor.json")
DEFAULT_REFERENCE = Path("models/reference")
ENDS = {"value": "", "low": "_low", "high": "_high"}  # a share's metric names: value and 95 % interval


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "paths",
        nargs="*",
        help="recent images: files, folders (searched recursively) or s3://BUCKET/PREFIX",
    )
    parser.add_argument(
        "--requests",
        type=Path,
        help="instead of image files: the request log the served model wrote (VISIONOPS_REQUEST_LOG)",
    )
    parser.add_argument(
        "--model",
        required=True,
        help="models:/NAME@ALIAS or models:/NAME/N (its reference inside), or a .onnx file",
    )
    parser.add_argument(
        "--reference",
        type=Path,
        default=None,
        help=f"reference folder for a .onnx --model (default: {DEFAULT_REFERENCE})",
    )
    parser.add_argument("--labels", type=Path, help="CSV with columns path,label for images that have labels")
    parser.add_argument(
        "--params",
        type=Path,
        default=None,
        help="params file whose `monitor:` section is the policy (default: ./params.yaml if there is "
        "one, else the built-in defaults)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help="report to write; its plot goes beside it (default: %(default)s)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace an existing --out (or the plot beside it) that monitor did not write",
    )
    parser.add_argument(
        "--sample",
        type=positive,
        metavar="N",
        help="a window of N images drawn at random from everything under IMAGES (seeded: --seed) "
        "instead of the newest monitor.window by modification time",
    )
    parser.add_argument("--seed", type=int, default=0, help="the --sample draw's seed (default: %(default)s)")
    parser.add_argument("--no-track", action="store_true", help="do not log the check to MLflow")
    parser.add_argument(
        "--no-progress", action="store_true", help="no progress bars (the model's download's included)"
    )


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number of images")
    return value


def run(args: argparse.Namespace) -> int:
    """The command: the window, the check, MLflow, then the report; the verdict's exit status."""
    from visionops.errors import VisionOpsError

    if bool(args.paths) == bool(args.requests):
        raise VisionOpsError(
            "monitor needs one window: image files/folders, or --requests FOLDER",
            "pass the folder of recent images, or the request log's folder with --requests",
        )
    if args.labels and args.requests:
        raise VisionOpsError("--labels names image files; a request log holds none", "drop --labels")
    if args.sample and args.requests:
        raise VisionOpsError(
            "--sample draws image files; a request log is read newest first", "drop --sample"
        )
    if args.no_progress:  # MLflow's bar per downloaded file of the registered version
        os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    policy = monitor_policy(args.params)
    check_out(args.out, args.force)  # cheap mistakes before any work
    labels = read_labels(args.labels) if args.labels else None
    with (
        tempfile.TemporaryDirectory(prefix="visionops-monitor-") as tmp,
        tempfile.TemporaryDirectory(prefix="visionops-window-") as scratch,  # apart from the model's files
    ):
        size, seed = (args.sample, args.seed) if args.sample else (policy.window, None)
        files, selection = window_files(args.paths, size, Path(scratch), seed) if args.paths else (None, None)
        model, reference, version = open_model_and_reference(args.model, args.reference, Path(tmp))
        if files is None:
            window, selection = logged_window(args.requests, reference, policy.window)
        else:
            window = observe_files(model, files, not args.no_progress)
        return check_and_report(args, policy, reference, version, window, labels, selection, Path(tmp))


def window_files(paths: list[str], size: int, scratch: Path, seed: int | None = None):
    """(the window's image files, how they were chosen): the newest `size` image files under
    `paths`, or with `seed` `size` of them drawn at random; those under s3:// prefixes are
    downloaded into `scratch` first (only the ones chosen there)."""
    from visionops.data.folders import image_files
    from visionops.errors import VisionOpsError
    from visionops.monitoring.s3_window import download_window, is_s3
    from visionops.monitoring.window import Selection, newest, rule, sampled

    files = sorted(image_files(Path(p) for p in paths if not is_s3(p)))
    found = len(files)
    for uri in filter(is_s3, paths):
        downloaded, listed = download_window(uri, size, scratch, seed)
        files, found = files + downloaded, found + listed
    if not files:
        raise VisionOpsError(
            f"the window is empty: no image files under {', '.join(map(str, paths))}",
            "point monitor at the folder where the served model's recent images are kept",
        )
    chosen = newest(files, size) if seed is None else sampled(files, size, seed)
    return chosen, Selection([str(p) for p in paths], rule(size, seed), found, len(chosen))


def observe_files(model, files: list[Path], progress: bool):
    from visionops.monitoring.window import observe

    window = observe(model.outputs, files, model.meta["channels"], model.meta["image_size"], progress)
    for path, reason in window.skipped:
        print(f"monitor: skipped {path}: {reason}", file=sys.stderr)
    return window


def logged_window(folder: Path, reference, size: int):
    """(the window, how it was chosen): the newest `size` records of this model in the request log."""
    from visionops.monitoring.request_log import Shape, read_newest
    from visionops.monitoring.window import Selection, Window

    width = None if reference.embeddings is None else reference.embeddings.shape[1]
    shape = Shape(len(reference.classes), reference.stats.shape[1], width)
    logged = read_newest(folder, reference.model_sha256, size, shape)
    if logged.others:
        print(f"monitor: {logged.others} logged request(s) of other models left out", file=sys.stderr)
    if logged.malformed:
        print(
            f"monitor: {logged.malformed} line(s) of the log are not records of this model, left out "
            f"(first: {logged.first_problem})",
            file=sys.stderr,
        )
    selection = Selection(
        [f"request log {folder}"],
        f"newest {size} records of this model",
        logged.found,
        len(logged.probabilities),
    )
    return Window([], logged.probabilities, logged.stats, embeddings=logged.embeddings), selection


REPORT_FORMAT = "visionops-monitor/1"  # monitor.json's first key: how monitor knows its own report
PLOT_MARK = {"Software": "visionops monitor"}  # the plot's PNG text chunk, for the same reason


def check_out(out: Path, force: bool = False) -> None:
    """--out is a .json file in a folder that can be written; it and the plot beside it
    (--out with .png) are replaced only when monitor wrote them, or with `force`."""
    from visionops.errors import VisionOpsError
    from visionops.io import replaceable, writable_output

    if out.suffix != ".json" or out.is_dir():
        raise VisionOpsError(f"--out {out} is not a .json file path", "pass e.g. --out reports/monitor.json")
    replaceable(out, "--out", is_monitor_report, "a report that monitor wrote", force)
    replaceable(
        out.with_suffix(".png"), "the plot beside --out,", is_monitor_plot, "a plot that monitor drew", force
    )
    writable_output(out, "--out", "pass an --out in a folder you can write, e.g. --out reports/monitor.json")


def is_monitor_report(path: Path) -> bool:
    import json

    with open(path, "rb") as file:
        found = json.loads(file.read(64 * 1024 * 1024))
    return isinstance(found, dict) and found.get("report") == REPORT_FORMAT


def is_monitor_plot(path: Path) -> bool:
    from PIL import Image

    with Image.open(path) as image:
        return image.format == "PNG" and image.text.get("Software") == PLOT_MARK["Software"]


def monitor_policy(params: Path | None):
    """The `monitor:` section of `params` (or of ./params.yaml); defaults outside a project."""
    from visionops.config import MonitorParams, load_params

    if params is None:
        if not Path("params.yaml").is_file():
            return MonitorParams()
        params = Path("params.yaml")
    return load_params(params, "monitor")["monitor"]


def check_and_report(args, policy, reference, version, window, labels, selection, tmp: Path) -> int:
    from visionops.io import atomic_path, write_json
    from visionops.monitoring.check import check
    from visionops.monitoring.plots import plot_check

    result = {"report": REPORT_FORMAT} | check(reference, window, policy, labels)
    result["window"] = selection.as_dict()
    result["model"] = (
        {"uri": args.model, "name": version[0], "version": version[1]} if version else {"uri": args.model}
    )
    staged_json, staged_png = tmp / "monitor.json", tmp / "monitor.png"
    write_json(staged_json, result)
    plot_check(reference, window, result, staged_png, PLOT_MARK)
    if not args.no_track:
        result["mlflow_run_id"] = track(policy, result, version, [staged_json, staged_png])
    out, plot = args.out, args.out.with_suffix(".png")
    write_json(out, result)
    with atomic_path(plot, suffix=".png") as target:
        target.write_bytes(staged_png.read_bytes())
    summarize(result, out, plot)
    return EXIT_CODES[result["verdict"]]


def open_model_and_reference(model_uri: str, reference_dir: Path | None, into: Path):
    """(classifier, reference, (name, version) or None), the reference checked to belong to the model."""
    from visionops.errors import VisionOpsError
    from visionops.export.classifier import OnnxClassifier
    from visionops.io import file_sha256
    from visionops.monitoring.reference import load_reference

    version = None
    if ":/" in model_uri:
        from visionops.tracking.version_files import fetch_announced, onnx_file

        # the reference is read too: only a version whose every file is sealed; of it, only
        # the ONNX file and the reference are downloaded and checked (issue 49)
        fetched = fetch_announced(model_uri, into, "monitor", onnx_only_ok=False, wanted=monitor_reads)
        local, version = fetched.local, (fetched.name, fetched.version)
        found = sorted(local.rglob("reference.json")) if local.is_dir() else []
        if reference_dir is None and not found:
            raise VisionOpsError(
                f"{model_uri} carries no monitoring reference: it was registered before monitoring existed",
                "register the model again from the pipeline that made it (`dvc repro reference register`), "
                "or pass --reference with a folder the `reference` stage built for this model",
            )
        reference_dir = reference_dir or found[0].parent
        onnx_path = onnx_file(local, model_uri)
    else:
        onnx_path = Path(model_uri)
        if not onnx_path.is_file():
            raise VisionOpsError(
                f"model file {onnx_path} does not exist", "pass a .onnx file or a models:/ URI"
            )
        reference_dir = reference_dir or DEFAULT_REFERENCE
    model = OnnxClassifier(onnx_path)
    reference = load_reference(reference_dir)
    if reference.model_sha256 != file_sha256(onnx_path) or reference.classes != model.classes:
        raise VisionOpsError(
            f"the reference in {reference_dir} was measured on another model than {model_uri}",
            "use the reference built for this model (`dvc repro reference`), or the registered version",
        )
    return model, reference, version


def monitor_reads(path: str) -> bool:
    """The files of a registered version that a check loads: its ONNX file and its reference."""
    from pathlib import PurePosixPath

    return path.endswith(".onnx") or "reference" in PurePosixPath(path).parent.parts


def read_labels(path: Path) -> dict[str, str]:
    """path -> label from a CSV with columns path,label (the user's file: its own messages)."""
    import pandas as pd

    from visionops.errors import VisionOpsError, first_line

    fix = "pass a CSV with a header line `path,label` and one row per labelled image"
    try:
        frame = pd.read_csv(path, dtype=str)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise VisionOpsError(f"--labels {path} cannot be read ({first_line(exc)})", fix) from None
    if not {"path", "label"} <= set(frame.columns):
        raise VisionOpsError(f"--labels {path} has no 'path' and 'label' columns", fix)
    pairs = frame[["path", "label"]].drop_duplicates()
    torn = pairs[pairs["path"].duplicated(keep=False)].sort_values(["path", "label"])
    if len(torn):
        shown = "; ".join(
            f"{name}: {' / '.join(group['label'])}"
            for name, group in list(torn.groupby("path", sort=True))[:3]
        )
        raise VisionOpsError(
            f"--labels {path} gives {torn['path'].nunique()} image(s) two different labels ({shown})",
            "keep one row per image, with its true label",
        )
    return dict(zip(pairs["path"], pairs["label"], strict=True))


def track(policy, result: dict, version, files: list[Path]) -> str:
    from visionops.tracking.monitoring import MODEL_NAME_TAG, MODEL_VERSION_TAG, VERDICT_TAG, log_check

    tags = {VERDICT_TAG: result["verdict"], "model.uri": result["model"]["uri"]}
    if version:
        tags |= {MODEL_NAME_TAG: version[0], MODEL_VERSION_TAG: version[1]}
    accuracy, domain = result["accuracy"], result["out_of_domain"]
    metrics = {
        "images": result["images"],
        "skipped": result["skipped"],
        "reference_accuracy": result["reference"]["accuracy"],
        "min_p_adjusted": min(t["p_adjusted"] for t in result["tests"]),
        "retrain": float(result["retrain"]),
        "window_found": result["window"]["found"],
        "window_left_out": result["window"]["left_out"],
    } | family_metrics(result["tests"])
    if accuracy["estimated"]["estimable"]:  # a gap in the chart where it is not
        metrics |= {f"estimated_accuracy{end}": accuracy["estimated"][key] for key, end in ENDS.items()}
    if domain["measured"]:
        metrics |= {f"out_of_domain_share{end}": domain[key] for key, end in ENDS.items()}
    if accuracy["labelled"]:
        metrics["labelled_accuracy"] = accuracy["labelled"]["value"]
    params = policy.model_dump(exclude={"experiment"})
    params |= {
        "window_rule": result["window"]["rule"],
        "window_sources": ", ".join(result["window"]["sources"]),
    }
    return log_check(policy.experiment, tags, params, metrics, files, run_name(result))


def family_metrics(tests: list[dict]) -> dict[str, float]:
    """Each test family's smallest adjusted p-value, and the embedding's MMD², as metrics: what
    the MLflow UI charts over a model's checks."""
    metrics = {}
    for test in tests:
        name = f"min_p_adjusted_{test['family']}"
        metrics[name] = min(metrics.get(name, 1.0), test["p_adjusted"])
        if test["family"] == "embedding":
            metrics["mmd2"] = test["statistic"]
    return metrics


def run_name(result: dict) -> str:
    """`monitor NAME vN DATE SOURCES` (a .onnx file's name instead of NAME vN): the run list says
    which model looked at what, and when."""
    from datetime import UTC, datetime

    model = result["model"]
    which = f"{model['name']} v{model['version']}" if "version" in model else Path(model["uri"]).name
    sources = ", ".join(result["window"]["sources"])
    sources = sources if len(sources) <= 80 else sources[:79] + "…"
    return f"monitor {which} {datetime.now(UTC):%Y-%m-%d} {sources}"


def summarize(result: dict, out: Path, plot: Path) -> None:
    estimated, truth = result["accuracy"]["estimated"], result["accuracy"]["labelled"]
    line = f"monitor: {result['verdict']} on {result['images']} image(s); "
    domain = result["out_of_domain"]
    if domain["measured"]:
        line += f"out of domain {domain['value']:.1%} [{domain['low']:.1%}, {domain['high']:.1%}]; "
    if estimated["estimable"]:
        line += (
            f"accuracy estimated {estimated['value']:.3f} [{estimated['low']:.3f}, {estimated['high']:.3f}]"
            f" on {estimated['images']} {estimated['of']}"
        )
    else:
        line += "accuracy not estimable"
    if truth:
        line += f", labelled {truth['value']:.3f} on {truth['images']}"
    print(line + f" (reference {result['reference']['accuracy']:.3f})")
    for reason in result["reasons"]:
        print(f"  - {reason}")
    print(
        f"monitor: {out}, {plot}"
        + (f"; MLflow run {result['mlflow_run_id']}" if "mlflow_run_id" in result else "")
    )
