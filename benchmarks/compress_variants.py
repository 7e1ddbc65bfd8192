"""Compression on a model where it matters: train ResNet-9 on CIFAR-10 images, then build and
time every variant exactly as the compress stage does (pipeline/compress.py: build_and_measure),
against fp32 PyTorch eager in the same run. Prints the table and each issue target as
met or missed; nothing is asserted. Usage:
    python benchmarks/compress_variants.py --cifar ../shared/datasets/cifar10_jpg.tar.gz
    python benchmarks/compress_variants.py            # embedded digits (small, less meaningful)
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from common import prepare_folders, write_images

import visionops  # noqa: F401  (process hygiene)

TARGETS = [  # (description, variant, check)
    (
        "INT8 >= 3x faster than fp32 eager (batch 64)",
        "int8_onnxruntime",
        lambda r, b: r[f"speedup_b{b}"] >= 3,
    ),
    ("INT8 accuracy drop <= 0.5 pt", "int8_onnxruntime", lambda r, b: r["accuracy_drop_pt"] <= 0.5),
    ("INT8 >= 3.5x smaller", "int8_onnxruntime", lambda r, b: r["size_ratio"] >= 3.5),
    ("pruned >= 2x fewer MACs", "pruned_eager", lambda r, b: r["macs_ratio"] >= 2),
    (
        "pruned accuracy drop <= 0.5 pt after fine-tune",
        "pruned_eager",
        lambda r, b: r["accuracy_drop_pt"] <= 0.5,
    ),
    ("pruned >= 1.6x faster (batch 64)", "pruned_eager", lambda r, b: r[f"speedup_b{b}"] >= 1.6),
    ("pruned+INT8 >= 5x faster (batch 64)", "pruned_int8_onnxruntime", lambda r, b: r[f"speedup_b{b}"] >= 5),
]


def main() -> None:
    import torch

    from visionops.compression.build import Outputs, build_and_measure  # the compress stage's own work
    from visionops.compression.report import markdown_table
    from visionops.config import CompressParams, TrainParams
    from visionops.data.loader import ImageBatches
    from visionops.device import resolve_device
    from visionops.inference import predict_logits
    from visionops.models.serialize import save_model
    from visionops.models.zoo import create_model
    from visionops.training.loop import fit

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cifar", type=Path, help="CIFAR-10 JPEG archive (train/<class>/, test/<class>/)")
    parser.add_argument("--per-class", type=int, default=1000, help="train images per class (default 1000)")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--width", type=int, default=16, help="ResNet-9 base width (default 16)")
    parser.add_argument("--pruning-ratio", type=float, default=0.5)
    parser.add_argument("--finetune-epochs", type=int, default=3)
    parser.add_argument("--round-to", type=int, default=8, help="pruned channel multiple (1 = no rounding)")
    parser.add_argument("--pruning-steps", type=int, default=1, help="reach the ratio in N steps")
    parser.add_argument("--distill", action="store_true", help="fine-tune against the unpruned model")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="visionops-compress-bench-") as tmp:
        root = Path(tmp)
        info = write_images(root / "images", args.cifar, args.per_class)
        prepared = prepare_folders(root / "images", root / "prepared", info["size"], info["channels"])
        meta, mean, std = prepared.meta.model_meta(), prepared.meta.mean, prepared.meta.std
        n = len(prepared.train)

        spec = {
            "arch": "resnet9",
            "in_channels": info["channels"],
            "num_classes": 10,
            "width": args.width,
            "dropout": 0.0,
            "image_size": info["size"],
        }
        setup = resolve_device("auto")
        torch.manual_seed(0)
        model = create_model(spec)
        cfg = TrainParams(
            epochs=args.epochs, lr=4e-3, crop_padding=info["padding"], hflip=info["hflip"], val_fraction=0.0
        )
        data = ImageBatches(prepared.train.x, prepared.train.y, mean, std, setup.device)
        fit(model, data, None, cfg, setup)
        test = ImageBatches(prepared.test.x, prepared.test.y, mean, std, setup.device)
        accuracy = (predict_logits(model, test, 256, setup).argmax(1) == test.labels).float().mean().item()
        save_model(root / "model.pt", model.cpu(), spec, meta)
        print(
            f"data: {info['name']}, {n} train / {len(prepared.test)} test; resnet9 width {args.width}, "
            f"{args.epochs} epochs: test accuracy {accuracy:.3f}"
        )

        compress = CompressParams(
            pruning_ratio=args.pruning_ratio,
            round_to=args.round_to,
            finetune_epochs=args.finetune_epochs,
            pruning_steps=args.pruning_steps,
            distill=args.distill,
            latency_repeats=20,
        )
        report = build_and_measure(
            root / "model.pt",
            root / "prepared",
            Outputs(root / "pruned.pt", root / "int8.onnx", root / "int8_trt.onnx"),
            compress,
            cfg.model_copy(update={"val_fraction": 0.1}),
            root / "work",
        )
    batch = report["latency_batch"]
    print(f"\nthreads {report['threads']}, latency batch 1 and {batch}; ratios vs fp32 PyTorch eager\n")
    print(markdown_table(report["variants"]))
    print(
        f"pruned accuracy before fine-tune: {report['pruned_accuracy_before_finetune']:.3f}; "
        f"pruned INT8 in TensorRT form (S8S8): {report['pruned_int8_tensorrt_form_accuracy']:.3f}"
    )
    rows = {row["variant"]: row for row in report["variants"]}
    for text, variant, check in TARGETS:
        print(f"  {'met   ' if check(rows[variant], batch) else 'MISSED'}  {text}")


if __name__ == "__main__":
    main()
