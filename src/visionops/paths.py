"""Every file the pipeline's stages hand to each other, defined once (relative to the project root).

`dvc.yaml` lists the same paths as each stage's deps and outs; `tests/test_stage_contracts.py`
fails when a stage script uses a path its stage does not declare, or declares one it never
uses. Renaming an output is an edit here plus the same edit in `dvc.yaml`.
"""

from __future__ import annotations

from pathlib import Path

# scan
SOURCE_LISTING = Path("data/listing")  # a folder source's files: path, size, SHA-256 (fragments)
# download
RAW = Path("data/raw")
# validate
VALIDATED = Path("data/validated")
VALIDATION_SUMMARY = Path("reports/validation/summary.json")
VALIDATION_RESULTS = Path("reports/validation/results.json")  # every check, GX's own results
VALIDATION_QUARANTINE = Path("reports/validation/quarantine.csv")
VALIDATION_DOCS = Path("reports/validation/data_docs")  # Great Expectations' Data Docs HTML
VALIDATION_GALLERY = Path("reports/validation/gallery.html")  # thumbnails of flagged images
VALIDATE_METRICS = Path("reports/metrics/validate.json")
# augment
PREPARED = Path("data/prepared")
AUGMENT_PREVIEW = Path("reports/augment_preview.png")
# train
MODEL = Path("models/model.pt")
RUN = Path("models/run.json")  # the model's MLflow run, and the sha256 of MODEL
TRAIN_REPORT = Path("reports/train.json")
TRAIN_METRICS = Path("reports/metrics/train.json")
TRAIN_HISTORY = Path("reports/train_history.csv")
TRAIN_CURVES = Path("reports/train_curves.png")
# evaluate
EVALUATE_REPORT = Path("reports/evaluate.json")
EVALUATE_METRICS = Path("reports/metrics/evaluate.json")
PER_CLASS = Path("reports/per_class.csv")
PREDICTIONS = Path("reports/predictions.csv")  # per test image (actual, predicted), in test order
CONFUSION_PNG = Path("reports/confusion_matrix.png")
LABEL_ISSUES = Path("reports/label_issues.csv")
LABEL_ISSUES_PNG = Path("reports/label_issues.png")
LABEL_ISSUES_TRAIN = Path("reports/label_issues_train.csv")
# compress
PRUNED = Path("models/pruned.pt")
PRUNED_INT8 = Path("models/pruned_int8.onnx")  # CPU form
PRUNED_INT8_TENSORRT = Path("models/pruned_int8_tensorrt.onnx")  # deployable Q/DQ graph
COMPRESS_REPORT = Path("reports/compress.json")
COMPRESS_TABLE = Path("reports/compress.md")
COMPRESS_METRICS = Path("reports/metrics/compress.json")
# export
ONNX = Path("models/model.onnx")
ONNX_FP16 = Path("models/model_fp16.onnx")
EXPORT_REPORT = Path("reports/export.json")
# reference
REFERENCE = Path("models/reference")  # what monitoring compares the served model against
# register
REGISTER_REPORT = Path("reports/register.json")
REGISTER_METRICS = Path("reports/metrics/register.json")

# Written on purpose outside DVC's outs (each with its reason; the contract test allows these):
# a TensorRT engine exists only on a CUDA machine with TensorRT, and DVC fails a stage whose
# declared out is missing; its skip record is in EXPORT_REPORT.
ENGINE = Path("models/model.engine")
# scan's stamps (size, mtime, ctime, inode -> SHA-256): this machine's own, like DVC's state
SCAN_STAMPS = Path(".visionops/scan-stamps")  # NUL-separated records, not CSV
# validate's stamps of the data/raw shards whose images it checked against the index (size, mtime,
# inode): a shard that still has them is trusted, any other is read and hashed (data/raw edited)
VALIDATE_STAMPS = Path(".visionops/validated-shards.json")
# validate's confirmations of the flagged images' descriptions (described again from their bytes
# on this machine, manifest.flags_hold): one that still matches is not decoded again
VALIDATE_CONFIRMED = Path(".visionops/confirmed-flags.json")
# train's resume checkpoint: DVC would delete an out before re-running the stage.
CHECKPOINT = Path("models/checkpoints/last.pt")
# what register attaches to the model's run so that it can be reproduced (not deps: DVC
# writes dvc.lock, and params are declared per section).
PIPELINE_FILES = (Path("dvc.yaml"), Path("params.yaml"), Path("dvc.lock"))
