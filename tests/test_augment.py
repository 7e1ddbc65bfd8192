"""albumentations policy from params, seeded packing, and the leak-free validation split."""

import numpy as np
import pytest

from visionops.augment.pack import channel_stats, pack
from visionops.augment.policy import build_eval_transform, build_train_transform, serialize
from visionops.augment.prepared import to_model_input, train_val_split
from visionops.config import AugmentStep
from visionops.errors import VisionOpsError

POLICY = [AugmentStep(name="Affine", params={"rotate": [-15, 15], "p": 1.0})]


def packed(raw_digits, seed: int, copies: int = 2):
    paths = sorted((raw_digits / "train" / "1").iterdir())[:6]
    transform = build_train_transform(POLICY, 16, seed)
    return pack(paths, 1, transform, copies, build_eval_transform(16), progress=False)


def test_pack_shapes_and_source_index(raw_digits):
    images, source = packed(raw_digits, seed=1)
    assert images.shape == (18, 16, 16, 1) and images.dtype == np.uint8
    assert source.tolist() == [i for i in range(6) for _ in range(3)]


def test_same_seed_reproduces_different_seed_differs(raw_digits):
    a, _ = packed(raw_digits, seed=7)
    b, _ = packed(raw_digits, seed=7)
    c, _ = packed(raw_digits, seed=8)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert np.array_equal(a[::3], c[::3])  # originals are resized only, never augmented


def test_unknown_transform_suggests_the_right_name():
    with pytest.raises(VisionOpsError, match=r"(?s)'Afine' is not an albumentations transform.*'Affine'"):
        build_train_transform([AugmentStep(name="Afine")], 16, 0)


def test_unknown_transform_argument_is_refused_with_accepted_list():
    with pytest.raises(VisionOpsError, match=r"(?s)unknown argument\(s\) rotat.*accepts:.*rotate"):
        build_train_transform([AugmentStep(name="Affine", params={"rotat": 3})], 16, 0)


def test_serialized_policy_records_seed_and_transforms():
    policy = serialize(build_train_transform(POLICY, 16, 5), 5)
    assert policy["seed"] == 5
    names = [t["__class_fullname__"] for t in policy["transform"]["transform"]["transforms"]]
    assert names == ["Resize", "Affine"]


def test_channel_stats_and_model_input_normalise():
    images = np.stack([np.full((4, 4, 1), 0, np.uint8), np.full((4, 4, 1), 255, np.uint8)])
    mean, std = channel_stats(images)
    assert mean == [0.5] and std == [0.5]
    x = to_model_input(images, {"mean": mean, "std": std})
    assert x.shape == (2, 1, 4, 4) and x.dtype == np.float32
    assert np.allclose(x[0], -1.0) and np.allclose(x[1], 1.0)


def test_val_split_keeps_all_copies_of_an_original_on_one_side():
    n, copies = 100, 3
    source = np.repeat(np.arange(n), copies)
    train = {
        "source": source,
        "copy": np.tile(np.arange(copies), n),
        "y": np.repeat(np.arange(n) % 5, copies),
    }
    train_rows, val_rows = train_val_split(train, 0.2, 0)
    assert set(source[train_rows]).isdisjoint(source[val_rows])
    assert (train["copy"][val_rows] == 0).all() and val_rows.sum() == 20
    assert train_rows.sum() == 80 * copies
