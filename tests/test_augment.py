"""albumentations policy from params, seeded packing, and the leak-free validation split."""

import hashlib

import numpy as np
import pytest

from visionops.augment.pack import PackSpec, copies_chunk, pack_chunk, pixel_sums
from visionops.augment.policy import build_policy, serialize
from visionops.config import AugmentStep
from visionops.data.prepared import Split, to_model_input, train_val_split
from visionops.data.shards import Member, RawImages
from visionops.errors import VisionOpsError

POLICY = [AugmentStep(name="Affine", params={"rotate": [-15, 15], "p": 1.0})]


def ones(raw: RawImages, count: int) -> list[Member]:
    """The first `count` training images of the digit 1."""
    return [e.member for e in raw if e.split == "train" and e.label == "1"][:count]


def packed(raw_digits, seed: int, copies: int = 2, count: int = 6):
    """The first `count` ones resized, and `copies` augmented copies of each."""
    members = ones(raw_digits, count)
    originals = pack_chunk(PackSpec(16, 1), members)
    keys = [hashlib.sha256(m.read()).hexdigest() for m in members]
    return originals, copies_chunk(PackSpec(16, 1, copies, seed, tuple(POLICY)), originals, keys)


def test_copies_follow_each_other_image_by_image(raw_digits):
    originals, copies = packed(raw_digits, seed=1)
    assert originals.shape == (6, 16, 16, 1) and copies.shape == (12, 16, 16, 1) and copies.dtype == np.uint8
    assert not np.array_equal(copies[0], originals[0])  # Affine rotates every copy


def test_same_seed_reproduces_different_seed_differs_and_content_alone_decides(raw_digits):
    """Issue 48: an image's copies are seeded by its file's sha256, not its place: the same image
    gets the same copies whatever else the dataset holds."""
    a, b, c = packed(raw_digits, 7)[1], packed(raw_digits, 7)[1], packed(raw_digits, 8)[1]
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    fewer = packed(raw_digits, 7, count=3)[1]  # a chunk of three: the first three images' copies alike
    assert np.array_equal(fewer, a[:6])
    members = ones(raw_digits, 6)[::-1]  # another order
    originals = pack_chunk(PackSpec(16, 1), members)
    keys = [hashlib.sha256(m.read()).hexdigest() for m in members]
    reversed_copies = copies_chunk(PackSpec(16, 1, 2, 7, tuple(POLICY)), originals, keys)
    assert np.array_equal(reversed_copies[-2:], a[:2])


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
        copies_chunk(
            PackSpec(16, 1, 1, 0, crop), pack_chunk(PackSpec(16, 1), ones(raw_digits, 2)), ["ab" * 32] * 2
        )


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


def write_version(root, files, raw, spec, previous=None, max_dead_fraction=1.0):
    """What the augment stage writes: the chunks and view, and a meta.json naming the decoder
    and the policy (what the next run checks before reusing chunks); opened."""
    from visionops.augment.policy import build_policy, serialize
    from visionops.augment.prepare import write_prepared
    from visionops.augment.reuse import decoder_id, policy_id
    from visionops.data.decode import RESIZE_METHOD
    from visionops.data.prepared import PreparedMeta, open_prepared, write_meta

    policy = policy_id(
        serialize(build_policy(list(spec.steps), spec.seed), spec.seed, spec.image_size), spec.copies
    )
    options = {"previous": previous, "policy": policy, "max_dead_fraction": max_dead_fraction}
    written = write_prepared(root, files, raw, spec, chunk_mb=0.05, workers=1, progress=False, **options)
    meta = PreparedMeta(
        classes=[str(i) for i in range(10)],
        image_size=spec.image_size,
        channels=spec.channels,
        resize=RESIZE_METHOD,
        copies=spec.copies,
        source="digits",
        decoder=decoder_id(),
        policy=policy,
        **written,
    )
    write_meta(root, meta)
    return open_prepared(root), policy


def splits(prepared) -> dict:
    return {
        name: (np.asarray(split.x), split.y)
        for name, split in (("train", prepared.train), ("test", prepared.test))
    }


def test_a_version_references_the_previous_chunks_and_decodes_only_what_is_new(
    raw_digits, tmp_path, monkeypatch
):
    """Issue 48: images the previous version's chunks hold are referenced (the chunk files
    carried as they are), only new ones are decoded and augmented; the splits read exactly what
    a build from scratch gives (so a model trained on either is the same bytes)."""
    from digits_data import digit_files

    from visionops.augment import pack
    from visionops.augment.reuse import previous_chunks

    files = digit_files(raw_digits, per_class=20)
    spec = PackSpec(16, 1, copies=1, seed=0, steps=tuple(POLICY))
    before = files.drop(index=files.index[::7])  # 1 image in 7 not there yet
    first, policy = write_version(tmp_path / "v1", before, raw_digits, spec)
    files.loc[files.index[3], "label"] = 9  # relabelled: the same file, another class
    decoded = []
    original = pack._decode
    monkeypatch.setattr(
        pack, "_decode", lambda member, *a: decoded.append(member.member.path) or original(member, *a)
    )
    previous = previous_chunks(tmp_path / "v1", spec, policy, raw_digits)
    decoded.clear()  # the audit's sample
    again, _ = write_version(tmp_path / "v2", files, raw_digits, spec, previous)
    assert sorted(decoded) == sorted(files["path"][::7])
    carried = {p.name for p in (tmp_path / "v1/chunks").iterdir()}
    assert carried <= {p.name for p in (tmp_path / "v2/chunks").iterdir()}
    assert all(
        (tmp_path / "v2/chunks" / n).stat().st_ino == (tmp_path / "v1/chunks" / n).stat().st_ino
        for n in carried
    )
    monkeypatch.setattr(pack, "_decode", original)
    scratch, _ = write_version(tmp_path / "scratch", files, raw_digits, spec)
    for name, (x, y) in splits(scratch).items():
        assert np.array_equal(splits(again)[name][0], x) and np.array_equal(splits(again)[name][1], y), name
    assert again.meta.content_sha256 == scratch.meta.content_sha256 and again.meta.mean == scratch.meta.mean
    assert again.meta.content_sha256 != first.meta.content_sha256


def test_unused_chunk_rows_past_the_threshold_are_written_afresh(raw_digits, tmp_path):
    from digits_data import digit_files

    from visionops.augment.reuse import previous_chunks

    files = digit_files(raw_digits, per_class=20)
    spec = PackSpec(16, 1, copies=1, seed=0, steps=tuple(POLICY))
    _, policy = write_version(tmp_path / "v1", files, raw_digits, spec)
    fewer = files.iloc[::2]  # half removed
    previous = previous_chunks(tmp_path / "v1", spec, policy, raw_digits)
    kept, _ = write_version(tmp_path / "v2", fewer, raw_digits, spec, previous, max_dead_fraction=0.9)
    assert {p.name for p in (tmp_path / "v2/chunks").iterdir()} == {
        p.name for p in (tmp_path / "v1/chunks").iterdir()
    }
    previous = previous_chunks(tmp_path / "v1", spec, policy, raw_digits)
    compacted, _ = write_version(tmp_path / "v3", fewer, raw_digits, spec, previous, max_dead_fraction=0.25)
    scratch, _ = write_version(tmp_path / "scratch", fewer, raw_digits, spec)
    for name in ("v3", "scratch"):  # the same layout as a build from scratch
        assert sorted(p.name for p in (tmp_path / name / "chunks").iterdir()) == sorted(
            p.name for p in (tmp_path / "scratch/chunks").iterdir()
        )
    assert all(
        (tmp_path / "v3/chunks" / p.name).read_bytes() == p.read_bytes()
        for p in (tmp_path / "scratch/chunks").iterdir()
    )
    for name, (x, _) in splits(scratch).items():
        assert np.array_equal(splits(kept)[name][0], x) and np.array_equal(splits(compacted)[name][0], x)


def test_previous_chunks_that_were_damaged_or_made_otherwise_are_not_reused(raw_digits, tmp_path, capsys):
    from digits_data import digit_files

    from visionops.augment.reuse import previous_chunks

    files = digit_files(raw_digits, per_class=5)
    spec = PackSpec(16, 1)
    _, policy = write_version(tmp_path / "p", files, raw_digits, spec)
    assert len(previous_chunks(tmp_path / "p", spec, policy, raw_digits).originals) == len(files)
    assert previous_chunks(tmp_path / "p", PackSpec(16, 3), policy, raw_digits).originals == {}
    assert "not 16 px x3" in capsys.readouterr().err
    chunk = next((tmp_path / "p/chunks").glob("*.npy"))
    images = np.load(chunk)
    images[:] = 255 - images  # every row: whatever the audit draws differs
    np.save(chunk, images)
    assert previous_chunks(tmp_path / "p", spec, policy, raw_digits).originals == {}
    assert "differs from what it makes again" in capsys.readouterr().err
    assert previous_chunks(tmp_path / "nothing-here", spec, policy, raw_digits).originals == {}


def test_an_image_whose_bytes_changed_after_validation_is_refused_when_decoded(raw_digits):
    from visionops.augment.reuse import RawImage

    member = next(iter(raw_digits)).member
    pack_chunk(
        PackSpec(16, 1), [RawImage(member, hashlib.sha256(member.read()).hexdigest())]
    )  # the bytes validate saw
    with pytest.raises(VisionOpsError, match="changed after validation"):
        pack_chunk(PackSpec(16, 1), [RawImage(member, "0" * 64)])


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
