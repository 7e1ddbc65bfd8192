"""GPU proof kit: runs the project's own CUDA paths and writes one report (Markdown + JSON).

    python benchmarks/gpu_check.py --out /tmp/gpu-report                # on a CUDA machine
    python benchmarks/gpu_check.py --cpu-smoke --out /tmp/gpu-smoke      # anywhere, tiny sizes

Sections: the environment; training throughput of `training.loop.fit` on CIFAR-10 (decoded
once by the augment stage's own code) with bf16 AMP, channels_last and torch.compile on and
off, through the device-resident and the streamed data path, with peak GPU memory; time to
94 % test accuracy with the `params/cifar10-fast.yaml` preset; DDP over NCCL on the GPUs
present (gloo on CPU); ONNX and FP16-ONNX export parity against PyTorch; a TensorRT engine
(build, parity, latency) when `tensorrt` imports. Every section records what ran, what was
skipped and why; nothing is faked. Needs torch, torchvision, numpy, pandas, Pillow, onnx,
onnxruntime, PyYAML and tqdm; pydantic, onnxscript and onnx-ir are installed from
.gpu-wheels/ when missing (benchmarks/GPU.md says how to bring them).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WHEELS = ROOT / ".gpu-wheels"
CIFAR = ROOT.parent / "shared" / "datasets" / "cifar10_jpg.tar.gz"
SECTIONS = ("throughput", "time_to_94", "ddp", "export_parity", "tensorrt")
AIRBENCH94_A100_S = 3.83  # airbench94's published time to 94 % on one A100


def bootstrap(extra: tuple[str, ...] = ()) -> None:
    """Make `import visionops` work from a bare CUDA image: stop early, naming the fix, when the
    package cannot be found, and install the small pure-Python (or per-Python-version) wheels
    the image lacks (and the `extra` ones a benchmark needs) from .gpu-wheels/."""
    if importlib.util.find_spec("visionops") is None:
        raise SystemExit(
            "the visionops package is not importable here: from the repository root run "
            "`PYTHONPATH=src python benchmarks/gpu_check.py ...` (a bare CUDA image), "
            "or install the project first (`pip install -e .`)"
        )
    missing = [
        name
        for name in ("pydantic", "onnxscript", "onnx_ir", *extra)
        if importlib.util.find_spec(name) is None
    ]
    if missing and WHEELS.is_dir():
        packages = [name.replace("_", "-") for name in missing]
        cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--find-links", str(WHEELS)]
        subprocess.run([*cmd, *packages], check=True)


def section(name: str, report: dict, fn, *args) -> None:
    """Run one section into report[name]; an exception is recorded as `failed`, with its reason."""
    print(f"--- {name}", flush=True)
    start = time.perf_counter()
    try:
        result = fn(*args)
    except Exception as exc:
        result = {
            "status": "failed",
            "reason": f"{type(exc).__name__}: {exc}",
            "trace": traceback.format_exc(),
        }
    result.setdefault("status", "ran")
    result["seconds"] = round(time.perf_counter() - start, 1)
    report[name] = result
    print(json.dumps({k: v for k, v in result.items() if k != "trace"}, default=str)[:600], flush=True)


def environment(smoke: bool) -> dict:
    import torch

    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
        "mode": "cpu-smoke" if smoke else "gpu",
    }
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info |= {
            "gpus": torch.cuda.device_count(),
            "gpu": props.name,
            "capability": f"{props.major}.{props.minor}",
            "memory_gb": round(props.total_memory / 2**30, 1),
            "bf16": torch.cuda.is_bf16_supported(),
            "cudnn": torch.backends.cudnn.version(),
            "nccl": torch.distributed.is_nccl_available(),
        }
    try:
        import onnxruntime

        info["onnxruntime"] = f"{onnxruntime.__version__} {onnxruntime.get_available_providers()}"
    except ImportError as exc:
        info["onnxruntime"] = f"not importable: {exc}"
    return info


def prepare_data(args, workdir: Path, per_class: int | None = None):
    """CIFAR-10 (or, for a smoke run without it, the embedded digits) decoded once into the
    prepared format by the augment stage's code: `per_class` train images a class (default all;
    30 for a smoke run), a fifth as many test images."""
    from common import prepare_folders, write_images

    archive = args.cifar if args.cifar and args.cifar.is_file() else None
    if archive is None and not args.cpu_smoke:
        raise SystemExit(f"the CIFAR-10 archive is needed: --cifar PATH (default {CIFAR} not found)")
    per_class = per_class or (30 if args.cpu_smoke else 5000)
    info = write_images(workdir / "images", archive, per_class)
    size = 16 if args.cpu_smoke else info["size"]
    prepared = prepare_folders(workdir / "images", workdir / "prepared", size, info["channels"])
    return prepared, info | {"size": size}


def preset(smoke: bool) -> tuple[dict, dict]:
    """model and train sections of params/cifar10-fast.yaml (shrunk for a smoke run)."""
    from visionops.cli.preset import merged

    params = merged(ROOT / "params" / "cifar10-fast.yaml", ROOT / "params.yaml")
    model, train = params["model"], params["train"]
    if smoke:
        model |= {"width": 8}
        train |= {"epochs": 1, "batch_size": 64, "compile": False}  # compiling costs minutes on CPU
    return model, train


def batches(prepared, split: str, setup, resident: bool):
    from visionops.data.loader import ImageBatches

    data = getattr(prepared, split)
    mean, std = prepared.meta.mean, prepared.meta.std
    return ImageBatches(data.x, data.y, mean, std, setup.device, resident=resident)


def build(model_cfg: dict, prepared, train=None) -> object:
    """The preset's network as the train stage builds it (`training.setup.build_model`: with
    `train` batches, its whitening init too)."""
    from visionops.config import ModelParams
    from visionops.models.zoo import create_model
    from visionops.training.setup import build_model, model_spec

    spec = model_spec(ModelParams(**model_cfg), prepared.meta)
    return build_model(spec, train) if train is not None else create_model(spec)


def throughput(prepared, args) -> dict:
    """images/s of fit() per setting (last of 2 epochs, so compile time is excluded)."""
    import torch

    from visionops.config import TrainParams
    from visionops.device import resolve_device
    from visionops.training.loop import fit

    model_cfg, train_cfg = preset(args.cpu_smoke)
    device = "cpu" if args.cpu_smoke else "cuda"
    grid = [(amp, cl, comp) for amp in (True, False) for cl in (True, False) for comp in (False, True)]
    if args.cpu_smoke:
        grid = [(amp, cl, False) for amp, cl, _ in grid[::2]]  # compile costs minutes on CPU
    rows = []
    for amp, channels_last, compiled in grid:
        for resident in (True, False) if (amp, channels_last, compiled) == grid[0] else (True,):
            setup = resolve_device(device, amp, channels_last)
            cfg = TrainParams(**(train_cfg | {"epochs": 1 if args.cpu_smoke else 2, "compile": compiled}))
            torch.manual_seed(0)
            model = build(model_cfg, prepared)
            if torch.cuda.is_available():
                torch.cuda.reset_peak_memory_stats()
            data = batches(prepared, "train", setup, resident and device == "cuda")
            history = fit(model, data, None, cfg, setup, progress=False)
            peak = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None
            rows.append(
                {
                    "amp": str(setup.amp_dtype).replace("torch.", "") if setup.amp_dtype else "off",
                    "channels_last": channels_last,
                    "compile": compiled,
                    "data_path": data.describe(),
                    "images_per_s": round(history[-1]["images_per_s"]),
                    "epoch_s": round(history[-1]["seconds"], 2),
                    "peak_gpu_gb": None if peak is None else round(peak, 2),
                }
            )
    skipped = "torch.compile on CPU (minutes per graph): not run with --cpu-smoke" if args.cpu_smoke else None
    return {"rows": rows, **({"skipped_parts": skipped} if skipped else {})}


def curve_run(prepared, model_cfg: dict, train_cfg: dict, device: str, seed: int = 0) -> dict:
    """fit() of the network `model_cfg` describes (built as the train stage builds it), with
    the test split scored after every epoch with the model's TTA, as evaluate scores it. Each
    curve row's `seconds` counts model building and training only, `elapsed_s` the wall time
    with the evaluations; `test_accuracy` is that of the weights fit kept."""
    import torch

    from visionops.config import TrainParams
    from visionops.device import resolve_device
    from visionops.inference import predict_logits
    from visionops.models.tta import with_tta
    from visionops.training.loop import fit

    cfg = TrainParams(**(train_cfg | {"val_fraction": 0.0, "seed": seed}))
    setup = resolve_device(device, cfg.amp, cfg.channels_last)
    resident = setup.device.type == "cuda"
    train, test = batches(prepared, "train", setup, resident), batches(prepared, "test", setup, resident)
    synchronize = torch.cuda.synchronize if resident else (lambda: None)
    torch.manual_seed(seed)
    synchronize()
    start = time.perf_counter()
    model = build(model_cfg, prepared, train)
    synchronize()
    clock = [time.perf_counter() - start]  # model building, then each epoch's training seconds
    scored = with_tta(model, {"tta": model_cfg.get("tta", "none")})
    curve: list[dict] = []

    def accuracy() -> float:
        return (predict_logits(scored, test, 1024, setup).argmax(1) == test.labels).float().mean().item()

    def on_epoch(row: dict) -> None:
        clock.append(row["seconds"])
        curve.append(
            {
                "epoch": row["epoch"],
                "test_accuracy": round(accuracy(), 4),
                "seconds": round(sum(clock), 2),
                "elapsed_s": round(time.perf_counter() - start, 2),
            }
        )
        model.train()

    history = fit(model, train, None, cfg, setup, on_epoch, progress=False)
    return {"curve": curve, "test_accuracy": round(accuracy(), 4), "history": history, "seconds": sum(clock)}


def time_to_94(prepared, args) -> dict:
    """Wall time (training + per-epoch test evaluation) until test accuracy first reaches 94 %."""
    model_cfg, train_cfg = preset(args.cpu_smoke)
    run = curve_run(prepared, model_cfg, train_cfg, "cpu" if args.cpu_smoke else "cuda")
    reached = next((row for row in run["curve"] if row["test_accuracy"] >= 0.94), None)
    result = {
        "preset": "params/cifar10-fast.yaml",
        "curve": run["curve"],
        "final_accuracy": run["test_accuracy"],
    }
    if reached is None:
        note = "--cpu-smoke: tiny data, the target is not expected" if args.cpu_smoke else "94 % not reached"
        return result | {"time_to_94_s": None, "note": note}
    seconds = reached["elapsed_s"]
    return result | {"time_to_94_s": seconds, "vs_airbench94_a100": round(seconds / AIRBENCH94_A100_S, 2)}


def ddp(workdir: Path, args) -> dict:
    """fit() under torchrun on every GPU (NCCL); 2 gloo processes for a CPU smoke run."""
    import torch

    nproc = 2 if args.cpu_smoke else max(1, torch.cuda.device_count())
    out = workdir / "ddp.json"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
    cmd += [__file__, "--ddp-worker", str(workdir), "--out", str(out)] + (
        ["--cpu-smoke"] if args.cpu_smoke else []
    )
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=900)
    if done.returncode != 0:
        return {"status": "failed", "reason": done.stderr[-2000:]}
    return json.loads(out.read_text()) | {"processes": nproc}


def ddp_worker(workdir: Path, out: Path, smoke: bool) -> None:
    import torch

    from visionops.config import TrainParams
    from visionops.data.prepared import open_prepared
    from visionops.device import resolve_device
    from visionops.training.distributed import init_from_env, shutdown
    from visionops.training.loop import fit

    dist = init_from_env()
    prepared = open_prepared(workdir / "prepared")
    setup = resolve_device("cpu" if smoke else "cuda")
    model_cfg, train_cfg = preset(smoke)
    torch.manual_seed(0)
    model = build(model_cfg, prepared)
    data = batches(prepared, "train", setup, resident=not smoke)
    cfg = TrainParams(**(train_cfg | {"epochs": 1}))
    history = fit(model, data, None, cfg, setup, progress=False, dist=dist)
    if dist.main:
        backend = torch.distributed.get_backend() if torch.distributed.is_initialized() else "none"
        result = {"backend": backend, "world": dist.world, "images_per_s": round(history[-1]["images_per_s"])}
        out.write_text(json.dumps(result))
    shutdown()


def export_parity(prepared, workdir: Path, args) -> dict:
    """The project's deployable ONNX export (uint8 NHWC in, normalisation inside) and FP16
    conversion, run in ONNX Runtime against the PyTorch model on the training device."""
    import numpy as np
    import torch

    from visionops.data.prepared import to_model_input
    from visionops.export.deployable import Deployable, onnx_metadata
    from visionops.export.onnx_export import convert_fp16, export_onnx
    from visionops.export.runtime import cpu_session, parity, run_session

    model_cfg, _ = preset(args.cpu_smoke)
    torch.manual_seed(0)
    model = build(model_cfg, prepared).eval()
    images = np.ascontiguousarray(prepared.test.x[:128])
    inputs = to_model_input(images, prepared.meta.model_meta())
    device = "cpu" if args.cpu_smoke else "cuda"
    with torch.inference_mode():
        reference = model.to(device)(torch.from_numpy(inputs).to(device)).float().cpu().numpy()
    fp32, fp16 = workdir / "model.onnx", workdir / "model_fp16.onnx"
    deployable = Deployable(model.cpu(), prepared.meta.mean, prepared.meta.std)
    export_onnx(
        deployable,
        torch.from_numpy(images[:2]),
        fp32,
        20,
        onnx_metadata(prepared.meta.model_meta(), prepared.meta.resize),
    )
    convert_fp16(fp32, fp16)
    threads = torch.get_num_threads()
    return {
        "reference_device": device,
        "onnx_fp32": parity(reference, run_session(cpu_session(fp32, threads), images)),
        "onnx_fp16": parity(reference, run_session(cpu_session(fp16, threads), images)),
        "onnxruntime_provider": "CPUExecutionProvider",
    }


def tensorrt(prepared, workdir: Path, args) -> dict:
    """Engine build + parity + latency through export/tensorrt.py, or skipped with the reason."""
    from visionops.export import tensorrt as trt_builder

    available = trt_builder.tensorrt_availability()
    if not available.ok:
        return {"status": "skipped", "reason": available.reason}
    import numpy as np
    import torch

    from visionops.data.prepared import to_model_input
    from visionops.export.runtime import median_latency_ms, parity

    trt = available.module
    fp32, fp16 = workdir / "model.onnx", workdir / "model_fp16.onnx"
    if not fp32.is_file():
        return {"status": "skipped", "reason": "no ONNX model: the export section failed"}
    model_cfg, _ = preset(args.cpu_smoke)
    torch.manual_seed(0)
    model = build(model_cfg, prepared).eval().cuda()
    images = np.ascontiguousarray(prepared.test.x[:64])
    pixels = torch.from_numpy(images).cuda()  # the engine's input: uint8 NHWC
    plan, info = trt_builder.build_engine(
        trt, {"fp32": fp32, "fp16": fp16}, "fp16", tuple(pixels.shape[1:]), 64, 1024, workdir / "timing"
    )
    with torch.inference_mode():
        reference = (
            model(torch.from_numpy(to_model_input(images, prepared.meta.model_meta())).cuda())
            .float()
            .cpu()
            .numpy()
        )
    logits = trt_builder.run_engine(trt, plan, pixels).float().cpu().numpy()
    latency = median_latency_ms(lambda: trt_builder.run_engine(trt, plan, pixels[:1]), 30)
    return info | {"parity_vs_torch": parity(reference, logits), "latency_b1_ms": latency}


def markdown(report: dict) -> str:
    lines = ["# GPU check", "", f"`{' '.join(sys.argv)}`", ""]
    for name, result in report.items():
        lines.append(f"## {name}: {result.get('status', 'ran')} ({result.get('seconds', '?')} s)")
        if result.get("reason"):
            lines.append(f"reason: {result['reason']}")
        rows = result.get("rows")
        if rows:
            lines.append("| " + " | ".join(rows[0]) + " |")
            lines.append("|" + "---|" * len(rows[0]))
            lines += ["| " + " | ".join(str(v) for v in row.values()) + " |" for row in rows]
        shown = {
            k: v
            for k, v in result.items()
            if k not in ("rows", "trace", "status", "seconds", "reason", "curve")
        }
        lines += [f"- {k}: {v}" for k, v in shown.items()]
        lines.append("")
    return "\n".join(lines)


def kit_parser(doc: str) -> argparse.ArgumentParser:
    """The command line the GPU kit's scripts share: --out and --cifar."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="folder for report.md and report.json")
    parser.add_argument(
        "--cifar", type=Path, default=CIFAR, help="CIFAR-10 JPEG archive (default: ../shared)"
    )
    return parser


def main() -> None:
    parser = kit_parser(__doc__)
    parser.add_argument("--cpu-smoke", action="store_true", help="tiny sizes on the CPU: proves the kit runs")
    parser.add_argument(
        "--sections",
        default=",".join(SECTIONS),
        help=f"comma-separated subset to run (default: all of {', '.join(SECTIONS)})",
    )
    parser.add_argument("--ddp-worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    chosen = [name.strip() for name in args.sections.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}: choose from {', '.join(SECTIONS)}")
    bootstrap()
    if args.ddp_worker:
        ddp_worker(args.ddp_worker, args.out, args.cpu_smoke)
        return
    import torch

    if not args.cpu_smoke and not torch.cuda.is_available():
        raise SystemExit("no CUDA GPU visible: run with --cpu-smoke, or on a CUDA machine")
    args.out.mkdir(parents=True, exist_ok=True)
    report: dict = {}
    section("environment", report, environment, args.cpu_smoke)
    with tempfile.TemporaryDirectory(prefix="visionops-gpu-check-") as tmp:
        workdir = Path(tmp)
        prepared, info = prepare_data(args, workdir)
        report["data"] = {
            "status": "ran",
            "name": info["name"],
            "train": len(prepared.train),
            "test": len(prepared.test),
        }
        calls = {
            "throughput": (throughput, prepared, args),
            "time_to_94": (time_to_94, prepared, args),
            "ddp": (ddp, workdir, args),
            "export_parity": (export_parity, prepared, workdir, args),
            "tensorrt": (tensorrt, prepared, workdir, args),
        }
        for name in chosen:
            fn, *fn_args = calls[name]
            section(name, report, fn, *fn_args)
    (args.out / "report.json").write_text(json.dumps(report, indent=2, default=str))
    (args.out / "report.md").write_text(markdown(report))
    failed = [name for name, result in report.items() if result.get("status") == "failed"]
    print(f"report: {args.out / 'report.md'}" + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
