"""train: fit the configured model on data/prepared/ (CUDA with AMP when present, else CPU).

Checkpoints every epoch to models/checkpoints/last.pt; if interrupted (Ctrl-C, SIGTERM,
machine loss), re-running with the same params resumes there and ends exactly as an
uninterrupted run would (on CPU). DDP: `torchrun --nproc_per_node N pipeline/train.py`,
or train.nproc: N (the stage re-launches itself under torchrun).
Opens this model's MLflow run (id in models/run.json) and logs params and per-epoch
metrics; a failed or interrupted training ends the run FAILED or KILLED, never RUNNING.
Writes models/model.pt, reports/train.json, reports/metrics/train.json (the metric),
reports/train_history.csv (plot) and reports/train_curves.png. Reads params: model, train, tracking.
"""

from pathlib import Path

from visionops import paths
from visionops.cli.stage import run_stage
from visionops.paths import CHECKPOINT, MODEL, PREPARED

DATASET_SAMPLE = 64  # training images logged with the dataset input (schema and a look)


def main(args) -> None:
    import torch

    from visionops.config import dump, load_params
    from visionops.data.prepared import open_prepared
    from visionops.device import resolve_device
    from visionops.tracking.lifecycle import ended_on_failure
    from visionops.training.checkpoint import job_fingerprint
    from visionops.training.distributed import init_from_env, shutdown, torchrun_command
    from visionops.training.loop import fit
    from visionops.training.setup import build_model, model_spec, train_and_val

    params = load_params(args.params, "model", "train", "tracking")
    cfg = params["train"]
    dist = init_from_env()
    if cfg.nproc > 1 and not dist.enabled:
        _relaunch_under_torchrun(torchrun_command(cfg.nproc, __file__, "--params", str(args.params)))
        return
    data = open_prepared(PREPARED)
    setup = resolve_device(cfg.device, cfg.amp, cfg.channels_last)
    train_set, val_set = train_and_val(data, cfg, setup)
    spec = model_spec(params["model"], data.meta)
    torch.manual_seed(cfg.seed)
    model = build_model(spec, train_set)
    print(f"train: {spec['arch']} on {setup.name}, {len(train_set)} train / {len(val_set)} val images")
    print(f"train: data: {train_set.describe()}")
    data_id = data.meta.content_sha256  # what the splits hold: the same whatever the chunks' layout
    job = job_fingerprint(dump(params), spec, data_id)
    resume = {"checkpoint": CHECKPOINT, "job": job, "dist": dist}
    if not dist.main:  # other DDP ranks only train; rank 0 writes files and talks to MLflow
        fit(model, train_set, val_set, cfg, setup, progress=False, **resume)
        shutdown()
        return
    run = _open_run(job, params["tracking"])
    with ended_on_failure(run):  # a NaN stop, a full disk, Ctrl-C: the run is not left RUNNING
        history = fit(
            model, train_set, val_set, cfg, setup, _epoch_logger(run), extras={"run": run}, **resume
        )
        summary = _write_outputs(model, spec, data, history, run, setup, train_set.describe())
        shutdown()
        _track(params, data, data_id, summary, run, setup)
    shown = run["run_id"] or f"pending {run['pending_id']}"
    best = summary.get("best_val_accuracy")
    result = (
        f"best val accuracy {best:.4f}" if best is not None else "no validation split (train.val_fraction: 0)"
    )
    print(f"train: {result} in {summary['seconds']:.1f}s; MLflow run {shown}")


def _open_run(job: str, tracking) -> dict:
    """Resume the interrupted run of this exact job, else start a new one; the run of a
    checkpoint from other params or data is ended KILLED rather than left RUNNING."""
    import os

    from visionops.tracking.lifecycle import end_run, reopen_run
    from visionops.tracking.track import new_run
    from visionops.training.checkpoint import checkpoint_extras, load_checkpoint

    resumed = load_checkpoint(CHECKPOINT, job)
    if resumed is not None:
        run = resumed["extras"]["run"]
        print(f"train: resuming MLflow run {run['run_id']} from epoch {resumed['epoch']}")
        reopen_run(run)
        return run
    abandoned = checkpoint_extras(CHECKPOINT).get("run")
    run = new_run(tracking, run_name=os.environ.get("DVC_EXP_NAME"))
    if abandoned and abandoned.get("run_id") != run.get("run_id"):
        end_run(abandoned, "KILLED", "abandoned: training restarted with different params or data")
    return run


def _epoch_logger(run: dict):
    """Per-epoch callback: live MLflow metrics (best effort) and a one-line progress print."""
    from visionops.tracking.live import LiveMetrics

    live = LiveMetrics(run.get("run_id"))

    def on_epoch(row) -> None:
        live.log({k: float(v) for k, v in row.items() if k != "epoch"}, step=row["epoch"])
        shown = {
            k: round(v, 4) for k, v in row.items() if k in ("train_loss", "val_accuracy", "images_per_s")
        }
        print(f"  epoch {row['epoch']}: {shown}")

    return on_epoch


def _write_outputs(model, spec, data, history, run, setup, data_path: str) -> dict:
    """models/model.pt, the history CSV and plot, the reports and models/run.json."""
    import pandas as pd

    from visionops.evaluation.plots import plot_history
    from visionops.io import file_sha256, write_csv, write_json, write_metrics
    from visionops.models.serialize import save_model

    model_meta = data.meta.model_meta()
    model_meta |= {"input": "float32 NCHW, (pixel/255 - mean) / std"}  # no run id: same inputs, same bytes
    save_model(MODEL, model.cpu(), spec, model_meta)
    write_csv(paths.TRAIN_HISTORY, pd.DataFrame(history))
    plot_history(history, paths.TRAIN_CURVES)
    val = [r["val_accuracy"] for r in history if "val_accuracy" in r]
    summary = {
        "epochs": len(history),
        **({"best_val_accuracy": max(val)} if val else {}),  # none without a validation split
        "final_train_loss": history[-1]["train_loss"],
        "images_per_s": sum(r["images_per_s"] for r in history) / len(history),
        "seconds": sum(r["seconds"] for r in history),
        "parameters": sum(p.numel() for p in model.parameters()),
        "device": setup.name,
        "data_path": data_path,
    }
    write_json(paths.TRAIN_REPORT, summary)
    # the metric worth comparing across experiments; timings stay in train.json and MLflow
    write_metrics(paths.TRAIN_METRICS, {"best_val_acc": summary.get("best_val_accuracy")})
    write_json(paths.RUN, run | {"model_sha256": file_sha256(MODEL)})  # the chain of custody starts here
    CHECKPOINT.unlink(missing_ok=True)  # done: a forced re-run trains from scratch
    return summary


def _track(params, data, data_id, summary, run, setup) -> None:
    """Params, lineage tags, summary metrics and curves; the training data (a sample and its
    digest) and the model (as a torch.export program), handed to tracking as files."""
    import tempfile

    import torch

    from visionops.config import dump, flatten
    from visionops.tracking.record import DatasetInput, StageLog
    from visionops.tracking.runs import git_tags, lineage_tags, project_root
    from visionops.tracking.track import track

    meta = data.meta
    tags = {
        "device": setup.name,
        "torch": torch.__version__,
        "cuda": str(torch.version.cuda),
        "dataset.fingerprint": data_id,
        "dataset.source": meta.source,
        "data.path": summary["data_path"],
    }
    metrics = {"train_seconds": summary["seconds"]}
    if "best_val_accuracy" in summary:
        metrics["best_val_accuracy"] = summary["best_val_accuracy"]
    cfg = params["train"]
    with tempfile.TemporaryDirectory(prefix="visionops-train-log-") as tmp:
        sample, rows = _model_and_sample(data, cfg.val_fraction, cfg.seed, Path(tmp))
        files = {"history": paths.TRAIN_HISTORY, "curves": paths.TRAIN_CURVES} | sample
        values = StageLog(
            params=flatten(meta.params | dump(params)),
            tags=tags | git_tags(project_root(), "dvc: pipeline/train.py") | lineage_tags(dump(params)),
            metrics=metrics,
            dataset=DatasetInput(
                name=f"{meta.source}-prepared", digest=data_id, source=str(PREPARED), rows=rows
            ),
        )
        track("train", run, files, values, params["tracking"])


def _model_and_sample(data, val_fraction: float, seed: int, into: Path) -> tuple[dict, int]:
    """models/model.pt as a torch.export program, and DATASET_SAMPLE training images with
    their labels and a model input example (.npz), written into `into`; and how many rows
    the training part has."""
    import numpy as np
    import torch

    from visionops.data.prepared import to_model_input, train_val_split
    from visionops.models.serialize import load_model, save_program

    example = to_model_input(data.test.x[:4], data.meta.model_meta())
    model, _ = load_model(MODEL)
    save_program(model, torch.from_numpy(example), into / "model.pt2")
    rows, _ = train_val_split(data.train, val_fraction, seed)
    sample = rows[:DATASET_SAMPLE]  # the digest identifies the whole data; the pixels stay in DVC
    images, labels = np.asarray(data.train.x[sample]), data.train.y[sample]
    np.savez(into / "dataset_sample.npz", images=images, labels=labels, example=example)
    return {"program": into / "model.pt2", "dataset_sample": into / "dataset_sample.npz"}, len(rows)


def _relaunch_under_torchrun(command: list[str]) -> None:
    import subprocess

    from visionops.errors import VisionOpsError

    print(f"train: starting DDP: {' '.join(command)}")
    if subprocess.run(command, check=False).returncode != 0:
        raise VisionOpsError("distributed training failed (see the rank logs above)", "fix the error, re-run")


if __name__ == "__main__":
    run_stage("train", __doc__, main)
