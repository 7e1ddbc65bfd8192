"""Issue 12: prepared data written chunk by chunk and read memory-mapped; one batch reader
whose streamed path yields exactly what the in-memory path yields; memory that does not grow
with the dataset."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from digits_data import POLICY, digit_files

from visionops.augment.pack import (
    PackSpec,
    chunk_images,
    copies_chunk,
    in_chunks,
    pack_chunk,
    pixel_sums,
    row_sums,
    sums_of,
)
from visionops.data.loader import ImageBatches, choose_resident
from visionops.data.prepared import ArrayWriter, ChunkedImages, open_prepared, train_val_split
from visionops.data.shards import RawImages
from visionops.errors import VisionOpsError


def packed(raw: RawImages, spec: PackSpec, chunk_mb: float, workers: int) -> np.ndarray:
    """Each train image's original then its copies, made chunk by chunk as the augment stage does."""
    import hashlib

    members = [raw.member(p) for p in digit_files(raw, 40).query("split == 'train'")["path"]]
    keys = [hashlib.sha256(m.read()).hexdigest() for m in members]
    out: list[np.ndarray] = []

    def make(chunk: list[int]) -> np.ndarray:
        originals = pack_chunk(spec, [members[i] for i in chunk])
        copies = copies_chunk(spec, originals, [keys[i] for i in chunk]).reshape(
            len(chunk), spec.copies, *originals.shape[1:]
        )
        return np.concatenate([originals[:, None], copies], axis=1).reshape(-1, *originals.shape[1:])

    per_chunk = chunk_images(spec, chunk_mb)
    in_chunks(
        list(range(len(members))), make, lambda images, _: out.append(images), per_chunk, workers, False
    )
    return np.concatenate(out)


def test_array_writer_appends_chunks_into_a_memory_mappable_npy(tmp_path):
    data = np.arange(5 * 4 * 4 * 3, dtype=np.uint8).reshape(5, 4, 4, 3)
    with ArrayWriter(tmp_path / "x.npy", data.shape, np.uint8) as writer:
        writer.append(data[:2])
        writer.append(data[2:])
    loaded = np.load(tmp_path / "x.npy", mmap_mode="r")
    assert isinstance(loaded, np.memmap) and np.array_equal(loaded, data)
    with (
        pytest.raises(ValueError, match="3 rows written, 5 declared"),
        ArrayWriter(tmp_path / "y.npy", data.shape, np.uint8) as short,
    ):
        short.append(data[:3])


def test_packing_does_not_depend_on_chunk_size_or_worker_count(raw_digits, monkeypatch):
    """Per-image seeds: the same images whatever the chunking and the thread pool."""
    spec = PackSpec(image_size=12, channels=1, copies=2, seed=3, steps=POLICY)
    serial = packed(raw_digits, spec, chunk_mb=0.001, workers=1)  # one image per chunk
    assert serial.shape == (400 * 3, 12, 12, 1)
    from visionops.augment import pack

    monkeypatch.setattr(pack, "THREADS_FROM_S", 0.0)  # force the pool on these cheap images
    parallel = packed(raw_digits, spec, chunk_mb=0.05, workers=2)
    assert np.array_equal(serial, parallel)
    other_seed = packed(raw_digits, PackSpec(12, 1, 2, 4, POLICY), chunk_mb=1, workers=1)
    assert not np.array_equal(serial, other_seed)
    assert np.array_equal(serial[::3], other_seed[::3])  # originals are resized, never augmented


def test_exact_mean_and_std_from_chunk_sums():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (50, 6, 6, 3), dtype=np.uint8)
    total = pixel_sums(images[:20])
    total.add(pixel_sums(images[20:]))
    mean, std = total.mean_std()
    assert sums_of(row_sums(images), 36).mean_std() == (mean, std)  # per image, as chunks keep them
    scaled = images.reshape(-1, 3).astype(np.float64) / 255
    assert np.allclose(mean, scaled.mean(0), atol=1e-6) and np.allclose(std, scaled.std(0), atol=1e-6)


def test_rows_are_read_without_mapping_and_equal_indexing(prepared_digits):
    from visionops.data.prepared import read_rows

    x = open_prepared(prepared_digits).train.x
    rows = np.array([0, 1, 2, 7, 100, 101, 2000])  # runs and single rows
    assert np.array_equal(read_rows(x, rows), np.asarray(x[rows]))
    assert read_rows(x, rows[:0]).shape == (0, *x.shape[1:])
    assert np.array_equal(read_rows(np.array(x[:10]), np.arange(3)), np.asarray(x[:3]))  # plain arrays


def test_write_prepared_layout_and_files_list(prepared_digits):
    data = open_prepared(prepared_digits)
    assert isinstance(data.train.x, ChunkedImages) and data.train.x.shape == (1437 * 2, 16, 16, 1)
    assert data.train.copy.tolist()[:4] == [0, 1, 0, 1] and data.train.source.tolist()[:4] == [0, 0, 1, 1]
    assert data.test.x.shape == (360, 16, 16, 1) and data.test.copy is None
    files = data.files()
    test = files[files["split"] == "test"]
    assert test["index"].tolist() == list(range(360)) and (test["label"].to_numpy() == data.test.y).all()
    assert data.meta.counts == {"train": 2874, "test": 360} and len(data.meta.mean) == 1


def test_an_old_format_or_missing_prepared_data_says_what_to_run(tmp_path, prepared_digits):
    with pytest.raises(VisionOpsError, match="run `dvc repro augment` first"):
        open_prepared(tmp_path)
    (tmp_path / "meta.json").write_text('{"classes": ["a"]}')
    with pytest.raises(VisionOpsError, match="older format"):
        open_prepared(tmp_path)


def test_a_damaged_meta_record_names_the_field_and_the_fix(tmp_path, prepared_digits):
    """meta.json is read through PreparedMeta: a missing or mistyped field is refused by name
    before any stage uses it."""
    record = json.loads((prepared_digits / "meta.json").read_text())
    for broken, field in (({**record, "channels": "three"}, "channels"), ({**record, "mean": None}, "mean")):
        (tmp_path / "meta.json").write_text(json.dumps(broken))
        with pytest.raises(
            VisionOpsError, match=f"meta.json is not prepared data's record \\({field}"
        ) as err:
            open_prepared(tmp_path)
        assert "dvc repro -f augment" in err.value.fix
    (tmp_path / "meta.json").write_text(json.dumps({k: v for k, v in record.items() if k != "source"}))
    with pytest.raises(VisionOpsError, match="source: Field required"):
        open_prepared(tmp_path)


def batches_of(data: ImageBatches, seed: int | None, **shard) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    return list(data.batches(32, generator, **shard))


@pytest.mark.parametrize("shard", [{}, {"rank": 1, "world": 2}])
def test_streamed_batches_equal_the_in_memory_batches_for_the_same_seed(prepared_digits, shard):
    data = open_prepared(prepared_digits)
    rows, _ = train_val_split(data.train, 0.1, 0)
    make = lambda resident, images: ImageBatches(  # noqa: E731
        images, data.train.y, [0.5], [0.25], torch.device("cpu"), rows=rows, resident=resident
    )
    in_memory = make(True, np.array(data.train.x))  # a private copy, today's resident path
    streamed = make(False, data.train.x)  # gathered from the memory map by the prefetch thread
    assert in_memory.resident and not streamed.resident and "streamed" in streamed.describe()
    for seed in (0, None):  # shuffled training order, and in-order evaluation
        a, b = batches_of(in_memory, seed, **shard), batches_of(streamed, seed, **shard)
        assert len(a) == len(b) > 1
        for (xa, ya), (xb, yb) in zip(a, b, strict=True):
            assert xa.shape == xb.shape and xa.shape[1] == 1 and torch.equal(xa, xb) and torch.equal(ya, yb)


def test_a_reader_failure_reaches_the_training_loop_and_stopping_early_ends_the_thread(prepared_digits):
    import threading

    class Broken(np.ndarray):
        def __getitem__(self, key):
            raise OSError("disk read failed")

    data = open_prepared(prepared_digits)
    broken = np.array(data.test.x).view(Broken)
    reader = ImageBatches(broken, data.test.y, [0.5], [0.25], torch.device("cpu"))
    with pytest.raises(OSError, match="disk read failed"):
        list(reader.batches(32))
    fine = ImageBatches(data.train.x, data.train.y, [0.5], [0.25], torch.device("cpu"))
    for _ in fine.batches(8, torch.Generator().manual_seed(0)):
        break  # the consumer stops after one batch
    assert not [t for t in threading.enumerate() if t.name == "visionops-prefetch"]


def test_only_a_gpu_split_within_budget_is_made_resident():
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    assert not choose_resident(10, cpu, 2048)  # the CPU streams: the page cache holds the file
    assert choose_resident(2**20, gpu, 1) and not choose_resident(2**20 + 1, gpu, 1)
    assert choose_resident(2**40, gpu, 0)  # 0 = no limit


def test_the_augment_stage_memory_grows_less_than_the_data_it_writes(tmp_path):
    """Structural (no timing): pack 128 px images in a child process and compare its peak-RSS
    growth with the bytes it wrote. Holding the split in memory (the old np.stack) costs more
    than the data itself; chunked writing costs a few chunks."""
    script = f"""
import json, resource, sys
from pathlib import Path
import pandas as pd
import visionops
from visionops.augment.pack import PackSpec
from visionops.augment.prepare import write_prepared
from visionops.config import DataParams
from visionops.data.shards import RawImages
from visionops.data.sources import materialize
materialize(DataParams(), Path({str(tmp_path / "raw")!r}), progress=False)
raw = RawImages(Path({str(tmp_path / "raw")!r}))
rows = [(e.split, e.path, int(e.label)) for e in raw]
files = pd.DataFrame(rows, columns=["split", "path", "label"])
spec = PackSpec(image_size=128, channels=3, copies=0, seed=0)
write_prepared(Path({str(tmp_path / "p")!r}), files.iloc[:40], raw, spec, 4, workers=1, progress=False)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
write_prepared(Path({str(tmp_path / "p")!r}), files, raw, spec, 4, workers=1, progress=False)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({{"growth": after - before}}))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    growth = json.loads(done.stdout.strip().splitlines()[-1])["growth"]
    written = sum(p.stat().st_size for p in (tmp_path / "p/chunks").glob("*.npy") if ".sums" not in p.name)
    assert written > 80 * 2**20  # 1,797 images x 128 x 128 x 3
    assert growth < written / 4, f"peak RSS grew {growth / 2**20:.0f} MB for {written / 2**20:.0f} MB written"
