"""Issue 25: benchmarks/first_epoch.py runs end to end on a tiny archive (both sources), so it
cannot rot between the sessions that measure CIFAR-10 with it: real `dvc repro` runs, stopped at
train's first step, every stage's marks present and the times adding up."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.e2e


def tiny_archive(tmp_path: Path, digits_arrays) -> Path:
    """train/<class>/ and test/<class>/ PNGs of 10 digits per class and split, as a .tar.gz."""
    from PIL import Image

    images, seen = tmp_path / "images", set()  # digits repeats some 8x8 pictures: validate refuses those
    for split in ("train", "test"):
        x, y = digits_arrays[f"{split}_x"], digits_arrays[f"{split}_y"]
        for label in range(10):
            folder = images / split / str(label)
            folder.mkdir(parents=True)
            unique = [row for row in x[y == label] if not (row.tobytes() in seen or seen.add(row.tobytes()))]
            for i, row in enumerate(unique[:10]):
                Image.fromarray(row[..., 0] * 15).save(folder / f"{i}.png")  # 0-16 to 0-240
    archive = tmp_path / "tiny.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(images / "train", "train")
        tar.add(images / "test", "test")
    return archive


def test_first_epoch_benchmark_times_every_stage_to_the_first_step(tmp_path, digits_arrays):
    archive, out = tiny_archive(tmp_path, digits_arrays), tmp_path / "result.json"
    cmd = [sys.executable, "benchmarks/first_epoch.py", "--archive", str(archive), "--rounds", "1"]
    done = subprocess.run(
        [*cmd, "--json", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=900, check=False
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads(out.read_text())
    assert set(results) == {"url", "folder"}
    for result in results.values():
        stages = result["stages"]
        assert [row["stage"] for row in stages] == ["download", "validate", "augment", "train"]
        assert all(row["dvc_s"] >= 0 and row["own_s"] > 0 for row in stages)
        total = sum(row["dvc_s"] + row["own_s"] for row in stages)
        assert abs(total - result["first_step_s"]) < 0.01  # the parts add up to the whole
        assert 0 < result["noop_repro_s"] < result["first_step_s"]
    assert "| validate |" in done.stdout and "first training step after" in done.stdout
