"""albumentations policy from params, seeded packing, and the leak-free validation split."""

import numpy as np
import pytest

from visionops.augment.pack import PackSpec, pack_chunk, pixel_sums
from visionops.augment.policy import build_policy, serialize
from visionops.config import AugmentStep
from visionops.data.prepared import Split, to_model_input, train_val_split
from visionops.data.shards import Member, RawImages
from visionops.errors import VisionOpsError

POLICY = [AugmentStep(name="Affine", params={"rotate": [-15, 15], "p": 1.0})]


def ones(raw: RawImages, count: int) -> list[Member]:
    """The first `count` training images of the digit 1."""
    return [e.member for e in raw if e.split == "train" and e.label == "1"][:count]


def packed(raw_digits, seed: int, copies: int = 2):
    images, _ = pack_chunk(PackSpec(16, 1, copies, seed, tuple(POLICY)), 0, ones(raw_digits, 6))
    return images


def test_pack_shapes_originals_first_then_their_copies(raw_digits):
    images = packed(raw_digits, seed=1)
    assert images.shape == (18, 16, 16, 1) and images.dtype == np.uint8
    originals = packed(raw_digits, seed=1, copies=0)
    assert np.array_equal(images[::3], originals)  # row 3i is image i resized, 3i+1, 3i+2 its copies


def test_same_seed_reproduces_different_seed_differs(raw_digits):
    a = packed(raw_digits, seed=7)
    b = packed(raw_digits, seed=7)
    c = packed(raw_digits, seed=8)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert np.array_equal(a[::3], c[::3])  # originals are resized only, never augmented


def test_unknown_transform_suggests_the_right_name():
    with pytest.raises(VisionOpsError, match=r"(?s)'Afine' is not an albumentations transform.*'Affine'"):
        build_policy([AugmentStep(name="Afine")], 0)


def test_unknown_transform_argument_is_refused_with_accepted_list():
    with pytest.raises(VisionOpsError, match=r"(?s)unknown argument\(s\) rotat.*accepts:.*rotate"):
        build_policy([AugmentStep(name="Affine", params={"rotat": 3})], 0)


def test_serialized_policy_records_seed_and_transforms():
    policy = serialize(build_policy(POLICY, 5), 5, 16)
    assert policy["seed"] == 5 and policy["resize"]["size"] == 16 and "Pillow" in policy["resize"]["method"]
    names = [t["__class_fullname__"] for t in policy["transform"]["transform"]["transforms"]]
    assert names == ["Affine"]


def test_a_policy_that_changes_the_image_size_is_refused(raw_digits):
    crop = (AugmentStep(name="CenterCrop", params={"height": 8, "width": 8}),)
    with pytest.raises(VisionOpsError, match=r"turned a \(16, 16, 1\) image into \(8, 8, 1\)"):
        pack_chunk(PackSpec(16, 1, 1, 0, crop), 0, ones(raw_digits, 2))


def test_channel_stats_and_model_input_normalise():
    images = np.stack([np.full((4, 4, 1), 0, np.uint8), np.full((4, 4, 1), 255, np.uint8)])
    mean, std = pixel_sums(images).mean_std()
    assert mean == [0.5] and std == [0.5]
    x = to_model_input(images, {"mean": mean, "std": std})
    assert x.shape == (2, 1, 4, 4) and x.dtype == np.float32
    assert np.allclose(x[0], -1.0) and np.allclose(x[1], 1.0)


def test_val_split_keeps_all_copies_of_an_original_on_one_side():
    n, copies = 100, 3
    source = np.repeat(np.arange(n), copies)
    y = np.repeat(np.arange(n) % 5, copies)
    train = Split(
        x=np.zeros((n * copies, 1, 1, 1), np.uint8), y=y, source=source, copy=np.tile(np.arange(copies), n)
    )
    train_rows, val_rows = train_val_split(train, 0.2, 0)
    assert set(source[train_rows]).isdisjoint(source[val_rows])
    assert (train.copy[val_rows] == 0).all() and len(val_rows) == 20
    assert len(train_rows) == 80 * copies
    assert len(train_val_split(train, 0.0, 0)[1]) == 0


def _write_with_meta(root, files, raw, spec, kept=None):
    """What the augment stage writes: the arrays, and a meta.json naming the decoder and the
    arrays' sha256 (what the next run checks before reusing them)."""
    from visionops.augment.prepare import write_prepared
    from visionops.augment.reuse import decoder_id
    from visionops.data.decode import RESIZE_METHOD
    from visionops.data.prepared import PreparedMeta, arrays_sha256, write_meta

    written = write_prepared(root, files, raw, spec, chunk_mb=0.05, workers=1, progress=False, kept=kept)
    meta = PreparedMeta(
        classes=[str(i) for i in range(10)],
        image_size=spec.image_size,
        channels=spec.channels,
        resize=RESIZE_METHOD,
        copies=spec.copies,
        source="digits",
        decoder=decoder_id(),
        arrays_sha256=arrays_sha256(root),
        **written,
    )
    write_meta(root, meta)


def test_unchanged_images_are_copied_from_the_previous_arrays_with_the_same_bytes(
    raw_digits, tmp_path, monkeypatch
):
    """A re-run after images were added and relabelled decodes only those, and writes exactly
    what a run from scratch writes."""
    import hashlib

    from digits_data import digit_files

    from visionops.augment import pack
    from visionops.augment.reuse import kept_rows

    files = digit_files(raw_digits, per_class=20)
    files["file_sha256"] = [hashlib.sha256(raw_digits.member(p).read()).hexdigest() for p in files["path"]]
    spec = PackSpec(16, 1, copies=1, seed=0, steps=tuple(POLICY))
    before = files.drop(index=files.index[::7])  # 1 image in 7 not there yet
    _write_with_meta(tmp_path / "previous", before, raw_digits, spec)
    files.loc[files.index[3], "label"] = 9  # relabelled: the same file, another class
    decoded = []
    original = pack._decode
    monkeypatch.setattr(
        pack, "_decode", lambda member, *a: decoded.append(member.path) or original(member, *a)
    )
    kept = kept_rows(tmp_path / "previous", 16, 1)
    assert len(kept) == len(before)
    _write_with_meta(tmp_path / "again", files, raw_digits, spec, kept)
    assert sorted(decoded) == sorted(files["path"][::7])
    monkeypatch.setattr(pack, "_decode", original)
    _write_with_meta(tmp_path / "scratch", files, raw_digits, spec)
    for path in sorted((tmp_path / "scratch").iterdir()):
        assert path.read_bytes() == (tmp_path / "again" / path.name).read_bytes(), path.name


def test_previous_arrays_that_were_damaged_or_made_otherwise_are_not_reused(raw_digits, tmp_path, capsys):
    from digits_data import digit_files

    from visionops.augment.reuse import kept_rows

    files = digit_files(raw_digits, per_class=5).assign(file_sha256=lambda f: f["path"])
    _write_with_meta(tmp_path / "p", files, raw_digits, PackSpec(16, 1))
    assert len(kept_rows(tmp_path / "p", 16, 1)) == len(files)
    assert kept_rows(tmp_path / "p", 16, 3) == {}  # another channel count: nothing to reuse
    assert "not 16 px x3" in capsys.readouterr().err
    images = tmp_path / "p" / "train_x.npy"
    damaged = bytearray(images.read_bytes())
    damaged[-1] ^= 0xFF
    images.write_bytes(bytes(damaged))
    assert kept_rows(tmp_path / "p", 16, 1) == {}
    assert "damaged or edited" in capsys.readouterr().err
    assert kept_rows(tmp_path / "nothing-here", 16, 1) == {}


def test_a_kept_row_refuses_an_image_whose_bytes_changed_after_validation(raw_digits):
    import hashlib

    from visionops.augment.reuse import KeptRow

    member = next(iter(raw_digits)).member
    row = KeptRow(np.zeros((1, 16, 16, 1), np.uint8), 0)
    row.for_image(member, hashlib.sha256(member.read()).hexdigest()).check()  # the bytes validate saw
    with pytest.raises(VisionOpsError, match="changed after validation"):
        row.for_image(member, "0" * 64).check()


def test_building_and_serialising_the_policy_does_not_load_torch():
    """albumentations imports torch for its optional ToTensorV2 (3-5 s of every augment run);
    the augment stage never needs it."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from visionops.augment.policy import build_policy, serialize\n"
        "from visionops.config import AugmentStep\n"
        "p = build_policy([AugmentStep(name='HorizontalFlip', params={'p': 0.5})], 0)\n"
        "serialize(p, 0, 32)\n"
        "assert 'albumentations' in sys.modules and 'torch' not in sys.modules, 'torch was imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
