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
