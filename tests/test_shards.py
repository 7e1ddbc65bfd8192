"""Issue 25: data/raw as tar shards + index.csv. Every image keeps its path, reads back byte for
byte (by index and with plain `tar`), the same images give the same bytes, and a damaged or
pre-shard data/raw is named with its fix."""

import hashlib
import tarfile

import pytest

from visionops.data.shards import INDEX, RawImages, ShardWriter, pack_tree, unpack
from visionops.errors import VisionOpsError

IMAGES = {
    ("train", "cat", "a.jpg"): b"\xff\xd8" + bytes(range(256)) * 3,
    ("train", "cat", "b.png"): b"\x89PNG" + b"x" * 1000,
    ("train", "dog", "c.jpg"): b"\xff\xd8" + b"y" * 513,  # one byte over a tar block
    ("test", "dog", "d.jpg"): b"",  # empty files are data too (validation reports them)
    ("test", "cat", "e.webp"): b"RIFF" + b"z" * 70_000,
}


def write(root, shard_bytes=2**20, order=None):
    with ShardWriter(root, shard_bytes) as shards:
        for key in order or IMAGES:
            shards.add(*key, IMAGES[key])
    assert shards.counts(["cat", "dog"]) == {"train": {"cat": 2, "dog": 1}, "test": {"cat": 1, "dog": 1}}
    return RawImages(root)


def test_every_image_reads_back_by_its_path_in_class_folder_order(tmp_path):
    raw = write(tmp_path / "raw")
    assert [e.path for e in raw] == [
        "test/cat/e.webp",
        "test/dog/d.jpg",
        "train/cat/a.jpg",
        "train/cat/b.png",
        "train/dog/c.jpg",
    ]
    for (split, label, name), data in IMAGES.items():
        member = raw.member(f"{split}/{label}/{name}")
        assert member.read() == data and member.open().read() == data


def test_shards_are_plain_tar_that_tar_lists_and_unpacks(tmp_path):
    write(tmp_path / "raw")
    with tarfile.open(tmp_path / "raw" / "shards" / "raw-000.tar") as tar:
        names = tar.getnames()
        tar.extractall(tmp_path / "unpacked", filter="data")
    assert sorted(names) == sorted("/".join(key) for key in IMAGES)
    for key, data in IMAGES.items():
        assert (tmp_path / "unpacked").joinpath(*key).read_bytes() == data


def test_a_full_shard_starts_the_next_and_every_image_still_reads(tmp_path):
    raw = write(tmp_path / "raw", shard_bytes=4096)
    shards = sorted(p.name for p in (tmp_path / "raw" / "shards").iterdir())
    assert len(shards) >= 3 and shards[0] == "raw-000.tar"
    assert {e.member.shard.name for e in raw} == set(shards)
    for (split, label, name), data in IMAGES.items():
        assert raw.member(f"{split}/{label}/{name}").read() == data


def test_unpack_over_several_shards_gives_the_files_back_and_pack_tree_the_same_bytes(tmp_path):
    write(tmp_path / "raw", shard_bytes=4096)
    assert unpack(tmp_path / "raw", tmp_path / "test-only", split="test") == tmp_path / "test-only"
    assert sorted(p.name for p in (tmp_path / "test-only").rglob("*.*")) == ["d.jpg", "e.webp"]
    unpack(tmp_path / "raw", tmp_path / "files")
    for key, data in IMAGES.items():
        assert (tmp_path / "files").joinpath(*key).read_bytes() == data
    repacked = pack_tree(tmp_path / "files", tmp_path / "repacked")
    assert [e.path for e in repacked] == [e.path for e in RawImages(tmp_path / "raw")]
    write(tmp_path / "one-shard", order=sorted(IMAGES))  # pack_tree adds in path order
    one = tmp_path / "one-shard" / "shards" / "raw-000.tar"
    assert (tmp_path / "repacked" / "shards" / "raw-000.tar").read_bytes() == one.read_bytes()


def test_the_same_images_give_the_same_bytes(tmp_path):
    write(tmp_path / "a")
    write(tmp_path / "b")
    for name in ("shards/raw-000.tar", INDEX):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_a_path_given_twice_is_refused(tmp_path):
    with (
        pytest.raises(VisionOpsError, match=r"both be stored as train/cat/a__b\.jpg") as err,
        ShardWriter(tmp_path / "raw") as shards,
    ):
        shards.add("train", "cat", "a__b.jpg", b"1")
        shards.add("train", "cat", "a__b.jpg", b"2")
    assert "'__'" in err.value.fix
    assert not (tmp_path / "raw" / INDEX).exists()  # a failed pack publishes no index


def test_class_folders_from_an_older_visionops_are_named_with_the_fix(tmp_path):
    (tmp_path / "raw" / "train" / "cat").mkdir(parents=True)
    (tmp_path / "raw" / "train" / "cat" / "a.jpg").write_bytes(b"x")
    with pytest.raises(VisionOpsError, match=r"has no index\.csv") as err:
        RawImages(tmp_path / "raw")
    assert "dvc repro -f -s download" in err.value.fix


def test_a_truncated_shard_or_damaged_index_is_named(tmp_path):
    raw = write(tmp_path / "raw")
    shard = tmp_path / "raw" / "shards" / "raw-000.tar"
    shard.write_bytes(shard.read_bytes()[:2000])
    with pytest.raises(VisionOpsError, match=r"ends inside train/cat/b\.png"):
        raw.member("train/cat/b.png").read()
    index = tmp_path / "raw" / INDEX
    index.write_text(index.read_text().rsplit(",", 1)[0])  # torn inside its last row
    with pytest.raises(VisionOpsError, match=r"index\.csv is damaged"):
        RawImages(tmp_path / "raw")
    with pytest.raises(VisionOpsError, match="not in"):
        write(tmp_path / "raw2").member("train/cat/nope.jpg")


def edit_row(root, which: str, changes: dict) -> None:
    """Rewrite one row of root's index.csv (column: new value)."""
    import csv

    index = root / INDEX
    rows = list(csv.DictReader(index.open()))
    with index.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(row | changes if row["path"] == which else row for row in rows)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"shard": "../../../../outside/secret.png"}, "is not a shard's name"),
        ({"shard": "raw-999.tar"}, "shard raw-999.tar does not exist"),
        ({"offset": "-5"}, "must not be negative"),
        ({"size": "99999999999999"}, "lie beyond the end of raw-000.tar"),
        ({"label": "dog"}, r"\(train, dog\) are not those of its path"),
        ({"path": "train/cat/../../../x.png"}, "is not split/class/file"),
        ({"path": "train/cat/a.jpg"}, "train/cat/a.jpg is listed twice"),
        ({"sha256": "not-a-digest"}, "is not 64 lowercase hex digits"),
    ],
)
def test_an_index_row_pointing_elsewhere_is_refused_before_any_read(tmp_path, changes, expected):
    """Issue 32: index.csv is the only map of data/raw; a row that leaves the shards folder,
    names a missing shard, a byte range outside it, another row's path or a class other than
    its folder's is refused by name (it was read, or replaced another image, silently)."""
    write(tmp_path / "raw")
    edit_row(tmp_path / "raw", "train/cat/b.png", changes)
    with pytest.raises(VisionOpsError, match=expected) as caught:
        RawImages(tmp_path / "raw")
    assert "dvc repro -f -s download" in str(caught.value)


def test_an_index_of_random_bytes_is_named(tmp_path):
    write(tmp_path / "raw")
    (tmp_path / "raw" / INDEX).write_bytes(bytes(range(256)) * 4)
    with pytest.raises(VisionOpsError, match=r"index\.csv is damaged|does not have the columns"):
        RawImages(tmp_path / "raw")


LONG = "n" * 150 + ".jpg"  # past ustar's 100 characters: its header holds a PAX record


def pack(root, images: dict, previous=None) -> list[str]:
    """Pack `images` with `add_known`; the paths whose bytes were read (not copied)."""
    read = []

    def load(key):
        read.append("/".join(key))
        return images[key]

    with ShardWriter(root, 4096, previous) as shards:
        for key in sorted(images):
            shards.add_known(*key, hashlib.sha256(images[key]).hexdigest(), lambda key=key: load(key))
    return read


def test_a_repack_copies_unchanged_images_and_writes_the_bytes_of_a_fresh_pack(tmp_path):
    """Issue 33: after a change to the source, an image the previous data/raw holds under the
    same path with the same bytes is copied from its shard, not read again, and the result is
    byte for byte what a pack from nothing writes (shards and index)."""
    before = IMAGES | {("train", "dog", LONG): b"long" * 300}
    previous = tmp_path / "previous"
    assert len(pack(previous, before)) == len(before)
    after = {key: data for key, data in before.items() if key != ("train", "cat", "b.png")}
    after[("train", "cat", "new.jpg")] = b"\xff\xd8new"
    after[("train", "dog", "c.jpg")] = b"\xff\xd8edited"
    read = pack(tmp_path / "repacked", after, RawImages(previous))
    assert sorted(read) == ["train/cat/new.jpg", "train/dog/c.jpg"]
    pack(tmp_path / "fresh", after)
    for name in [INDEX, *(p.name for p in (tmp_path / "fresh" / "shards").iterdir())]:
        folder = "" if name == INDEX else "shards"
        fresh = (tmp_path / "fresh" / folder / name).read_bytes()
        assert (tmp_path / "repacked" / folder / name).read_bytes() == fresh, name
    raw = RawImages(tmp_path / "repacked")
    assert all(raw.member("/".join(key)).read() == data for key, data in after.items())
    assert {e.sha256 for e in raw} == {hashlib.sha256(data).hexdigest() for data in after.values()}


def test_a_damaged_previous_shard_is_read_afresh_never_copied(tmp_path):
    """A previous image whose bytes no longer match its recorded SHA-256, or whose tar header
    was damaged, is read from the source again: the damage never reaches the new data/raw."""
    pack(tmp_path / "previous", IMAGES)
    raw = RawImages(tmp_path / "previous")
    member = raw.member("train/cat/a.jpg")
    with open(member.shard, "r+b") as shard:
        shard.seek(member.offset + 10)
        shard.write(b"!")
    header = raw.member("train/dog/c.jpg")
    with open(header.shard, "r+b") as shard:  # inside c.jpg's own tar header: its name field
        shard.seek(header.offset - tarfile.BLOCKSIZE + 3)
        shard.write(b"!")
    assert pack(tmp_path / "repacked", IMAGES, raw) == ["train/cat/a.jpg", "train/dog/c.jpg"]
    assert (
        RawImages(tmp_path / "repacked").member("train/cat/a.jpg").read() == IMAGES[("train", "cat", "a.jpg")]
    )
