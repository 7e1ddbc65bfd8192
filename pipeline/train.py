"""train: fit the configured model on data/prepared/ (CUDA with AMP when present, else CPU).

Checkpoints every epoch to models/checkpoints/last.pt; if interrupted (Ctrl-C, SIGTERM,
machine loss), re-running with the same params resumes there and ends exactly as an
uninterrupted run would (on CPU). DDP: `torchrun --nproc_per_node N pipeline/train.py`,
or train.nproc: N (the stage re-launches itself under torchrun).
Opens this model's MLflow run (id in models/run.json) and logs params and per-epoch
metrics. Writes models/model.pt, reports/train.json (metric), reports/train_history.csv
(plot) and reports/train_curves.png. Reads params: model, train, tracking.
"""

from pathlib import Path

from visionops.stage import run_stage

PREPARED = Path("data/prepared")
MODEL = Path("models/model.pt")
RUN = Path("models/run.json")
CHECKPOINT = Path("models/checkpoints/last.pt")  # not a DVC out: DVC would delete it before a re-run
REPORT = Path("reports/train.json")
HISTORY = Path("reports/train_history.csv")
CURVES = Path("reports/train_curves.png")


def main(args) -> None:
    import os

    import pandas as pd
    import torch

    from visionops.augment.prepared import fingerprint, load_prepared, train_val_split
    from visionops.config import dump, flatten, load_params
    from visionops.evaluation.plots import plot_history
    from visionops.io import write_json
    from visionops.models.serialize import save_model
    from visionops.models.zoo import create_model
    from visionops.tracking.live import LiveMetrics
    from visionops.tracking.runs import git_tags, lineage_tags, project_root
    from visionops.tracking.track import new_run, track
    from visionops.training.batches import DeviceDataset
    from visionops.training.checkpoint import fingerprint as job_fingerprint
    from visionops.training.checkpoint import load_checkpoint
    from visionops.training.device import resolve_device
    from visionops.training.distributed import init_from_env, shutdown, torchrun_command
    from visionops.training.loop import fit

    params = load_params(args.params, "model", "train", "tracking")
    cfg, model_cfg = params["train"], params["model"]
    dist = init_from_env()
    if cfg.nproc > 1 and not dist.enabled:
        _relaunch_under_torchrun(torchrun_command(cfg.nproc, __file__, "--params", str(args.params)))
        return
    data = load_prepared(PREPARED)
    meta = data.meta
    setup = resolve_device(cfg.device, cfg.amp, cfg.channels_last)
    train_rows, val_rows = train_val_split(data.train, cfg.val_fraction, cfg.seed)
    x, y = data.train["x"], data.train["y"]
    budget = cfg.device_memory_budget_mb
    train_set = DeviceDataset(x[train_rows], y[train_rows], meta["mean"], meta["std"], setup.device, budget)
    val_set = DeviceDataset(x[val_rows], y[val_rows], meta["mean"], meta["std"], setup.device, budget)
    spec = {
        "arch": model_cfg.arch,
        "in_channels": meta["channels"],
        "num_classes": len(data.classes),
        "image_size": meta["image_size"],
        "width": model_cfg.width,
        "dropout": model_cfg.dropout,
        "pretrained": model_cfg.pretrained,
    }
    torch.manual_seed(cfg.seed)
    model = create_model(spec)
    print(f"train: {model_cfg.arch} on {setup.name}, {len(train_set)} train / {len(val_set)} val images")

    data_id = fingerprint(PREPARED)
    job = job_fingerprint(dump(params), spec, data_id)
    if not dist.main:  # other DDP ranks only train; rank 0 writes files and talks to MLflow
        fit(model, train_set, val_set, cfg, setup, progress=False, checkpoint=CHECKPOINT, job=job, dist=dist)
        shutdown()
        return
    resumed = load_checkpoint(CHECKPOINT, job)
    if resumed is not None:
        record = resumed["extras"]["run"]
        print(f"train: resuming MLflow run {record['run_id']} from epoch {resumed['epoch']}")
    else:
        record = new_run(params["tracking"], run_name=os.environ.get("DVC_EXP_NAME"))
    live = LiveMetrics(record.get("run_id"))

    def on_epoch(row) -> None:
        live.log({k: float(v) for k, v in row.items() if k != "epoch"}, step=row["epoch"])
        shown = {
            k: round(v, 4) for k, v in row.items() if k in ("train_loss", "val_accuracy", "images_per_s")
        }
        print(f"  epoch {row['epoch']}: {shown}")

    resume = {"checkpoint": CHECKPOINT, "job": job, "extras": {"run": record}, "dist": dist}
    history = fit(model, train_set, val_set, cfg, setup, on_epoch, **resume)
    model_meta = {
        "classes": data.classes,
        "image_size": meta["image_size"],
        "channels": meta["channels"],
        "mean": meta["mean"],
        "std": meta["std"],
        "input": "float32 NCHW, (pixel/255 - mean) / std",
        "run_id": record["run_id"] or record["pending_id"],
    }
    save_model(MODEL, model.cpu(), spec, model_meta)
    pd.DataFrame(history).to_csv(HISTORY, index=False)
    plot_history(history, CURVES)
    best_val = max((r.get("val_accuracy", 0.0) for r in history), default=0.0)
    summary = {
        "epochs": len(history),
        "best_val_accuracy": best_val,
        "final_train_loss": history[-1]["train_loss"],
        "images_per_s": sum(r["images_per_s"] for r in history) / len(history),
        "seconds": sum(r["seconds"] for r in history),
        "parameters": sum(p.numel() for p in model.parameters()),
        "device": setup.name,
    }
    write_json(REPORT, summary)
    write_json(RUN, record)
    CHECKPOINT.unlink(missing_ok=True)  # done: a forced re-run trains from scratch
    shutdown()
    tags = {
        "device": setup.name,
        "torch": torch.__version__,
        "cuda": str(torch.version.cuda),
        "dataset.fingerprint": data_id,
        "dataset.source": meta["source"],
    }
    values = {
        "params": flatten(meta["params"] | dump(params)),
        "tags": tags | git_tags(project_root()) | lineage_tags(dump(params)),
        "metrics": {"best_val_accuracy": best_val, "train_seconds": summary["seconds"]},
        "val_fraction": cfg.val_fraction,
        "seed": cfg.seed,
        "data_id": data_id,
    }
    files = {"history": HISTORY, "curves": CURVES, "model": MODEL, "prepared": PREPARED}
    track("train", record, files, values, params["tracking"])
    run = record["run_id"] or f"pending {record['pending_id']}"
    print(f"train: best val accuracy {best_val:.4f} in {summary['seconds']:.1f}s; MLflow run {run}")


def _relaunch_under_torchrun(command: list[str]) -> None:
    import subprocess

    from visionops.errors import VisionOpsError

    print(f"train: starting DDP: {' '.join(command)}")
    if subprocess.run(command, check=False).returncode != 0:
        raise VisionOpsError("distributed training failed (see the rank logs above)", "fix the error, re-run")


if __name__ == "__main__":
    run_stage("train", __doc__, main)
