"""Issues 25 and 48: data/raw as tar shards + an index. Every image keeps its path, reads back
byte for byte (by index and with plain `tar`), the same images give the same bytes, a damaged or
pre-shard data/raw is named with its fix, and a new version adds shards and index fragments
without rewriting any."""

import hashlib
import tarfile

import pytest

from visionops.data.shards import RawImages, ShardWriter, dead_share, pack_tree, unpack
from visionops.errors import VisionOpsError

INDEX = "index/0000.csv"  # the first fragment: every row of a first pack

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
    assert not (tmp_path / "raw" / "index").exists()  # a failed pack publishes no index


def test_class_folders_from_an_older_visionops_are_named_with_the_fix(tmp_path):
    (tmp_path / "raw" / "train" / "cat").mkdir(parents=True)
    (tmp_path / "raw" / "train" / "cat" / "a.jpg").write_bytes(b"x")
    with pytest.raises(VisionOpsError, match=r"has no index \(index/ or index\.csv\)") as err:
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
    with pytest.raises(VisionOpsError, match=r"0000\.csv is damaged"):
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
        ({"sha256": "A" * 64}, "is not 64 lowercase hex digits"),
        ({"path": "train/cat/.."}, "is not split/class/file"),
        ({"path": "train/cat/"}, "is not split/class/file"),
        ({"path": "train/cat/deeper/b.png"}, "is not split/class/file"),
        ({"offset": "ten"}, r"0000\.csv is damaged \(line 5: "),
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


def test_the_index_checked_column_by_column_gives_what_row_by_row_gives(tmp_path):
    """RawImages checks its rows a column at a time (C speed) and falls back to the row-by-row
    checks only to name a damaged row: both must read a sound index alike."""
    raw = write(tmp_path / "raw")
    rows = sorted(raw.index.rows.values(), key=lambda item: item[0][0].split("/", 2))
    assert raw.entries == [raw._entry(row, fragment, line) for row, fragment, line in rows]
    assert [e.path for e in raw] == sorted((e.path for e in raw), key=lambda p: p.split("/", 2))


def test_an_index_of_random_bytes_is_named(tmp_path):
    write(tmp_path / "raw")
    (tmp_path / "raw" / INDEX).write_bytes(bytes(range(256)) * 4)
    with pytest.raises(VisionOpsError, match=r"0000\.csv is damaged|does not have the columns"):
        RawImages(tmp_path / "raw")


LONG = "n" * 150 + ".jpg"  # past ustar's 100 characters: its header holds a PAX record


def pack(root, images: dict, previous=None, shard_bytes=4096, **options) -> list[str]:
    """Pack `images` with `add_known`, in path order; the paths whose bytes were read."""
    read = []

    def load(key):
        read.append("/".join(key))
        return images[key]

    with ShardWriter(root, shard_bytes, previous, **options) as shards:
        for key in sorted(images):
            shards.add_known(*key, hashlib.sha256(images[key]).hexdigest(), lambda key=key: load(key))
    return read


def shard_files(root) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((root / "shards").iterdir())}


def contents(root) -> dict[str, bytes]:
    return {e.path: e.member.read() for e in RawImages(root)}


BEFORE = IMAGES | {("train", "dog", LONG): b"long" * 300}


def test_a_new_version_adds_shards_and_never_rewrites_one(tmp_path):
    """Issue 48: an added image goes into a new shard; a removed one leaves the index; a
    relabelled one is a new row pointing at the same bytes; an edited one is new bytes. Every
    previous shard a live image uses is carried over unchanged (the same file: a hard link),
    and only new bytes are read."""
    previous = tmp_path / "v1"
    assert len(pack(previous, BEFORE)) == len(BEFORE)
    after = {key: data for key, data in BEFORE.items() if key != ("train", "cat", "b.png")}  # removed
    after[("train", "dog", "a.jpg")] = after.pop(("train", "cat", "a.jpg"))  # relabelled: moved to dog
    after[("train", "cat", "new.jpg")] = b"\xff\xd8new"  # added
    after[("train", "dog", "c.jpg")] = b"\xff\xd8edited"  # edited
    read = pack(tmp_path / "v2", after, RawImages(previous))
    assert sorted(read) == ["train/cat/new.jpg", "train/dog/c.jpg"]
    old, new = shard_files(previous), shard_files(tmp_path / "v2")
    carried = set(old) & set(new)
    assert carried and all(new[name] == old[name] for name in carried)  # not one byte rewritten
    assert all(
        (tmp_path / "v2/shards" / name).stat().st_ino == (previous / "shards" / name).stat().st_ino
        for name in carried
    )
    added = sorted(set(new) - set(old))
    assert added and min(added) > max(old)  # numbered after the previous shards
    assert sum(len(new[name]) for name in added) < 4 * 4096  # the two new images, not a re-pack
    assert contents(tmp_path / "v2") == {"/".join(key): data for key, data in after.items()}
    pack(tmp_path / "scratch", after)  # the same images from nothing: another layout, the same index rows
    rows = {e.path: (e.split, e.label, e.sha256) for e in RawImages(tmp_path / "v2")}
    assert rows == {e.path: (e.split, e.label, e.sha256) for e in RawImages(tmp_path / "scratch")}
    unpack(tmp_path / "v2", tmp_path / "files")  # as the index names them, relabelled ones included
    assert (tmp_path / "files/train/dog/a.jpg").read_bytes() == IMAGES[("train", "cat", "a.jpg")]
    assert (
        not (tmp_path / "files/train/cat/a.jpg").exists()
        and not (tmp_path / "files/train/cat/b.png").exists()
    )


def test_the_same_bytes_under_two_paths_are_stored_once(tmp_path):
    twins = {("train", "cat", "x.jpg"): b"same" * 100, ("test", "dog", "y.jpg"): b"same" * 100}
    pack(tmp_path / "raw", twins)
    raw = RawImages(tmp_path / "raw")
    assert raw.member("train/cat/x.jpg").offset == raw.member("test/dog/y.jpg").offset
    assert len(shard_files(tmp_path / "raw")["raw-000.tar"]) < 2 * 512 + 400 + 10240 + 1


def test_removed_images_are_reclaimed_past_the_threshold_or_on_request(tmp_path):
    """Dead bytes stay in carried shards until they pass max_dead_fraction; then (or with
    `compact`) every live image is packed afresh in path order: the bytes of a fresh pack."""
    big = {("train", "cat", f"{i:02d}.jpg"): bytes([i]) * 30_000 for i in range(12)}
    layout = {"shard_bytes": 150_000}  # four images a shard: a removal leaves its shard in use
    pack(tmp_path / "v1", big, **layout)
    kept = {key: data for key, data in big.items() if int(key[2][:2]) % 4}  # a quarter removed
    pack(tmp_path / "v2", kept, RawImages(tmp_path / "v1"), max_dead_fraction=0.5, **layout)
    share, _ = dead_share(RawImages(tmp_path / "v2"))
    assert 0.15 < share < 0.35 and shard_files(tmp_path / "v2") == shard_files(tmp_path / "v1")
    fewer = {key: data for key, data in kept.items() if int(key[2][:2]) % 2}  # half of all removed
    pack(tmp_path / "v3", fewer, RawImages(tmp_path / "v2"), max_dead_fraction=0.4, **layout)
    assert dead_share(RawImages(tmp_path / "v3"))[0] == 0.0  # compacted
    pack(tmp_path / "scratch", fewer, **layout)
    assert shard_files(tmp_path / "v3") == shard_files(tmp_path / "scratch")
    assert contents(tmp_path / "v3") == {"/".join(key): data for key, data in fewer.items()}
    assert pack(tmp_path / "v4", kept, RawImages(tmp_path / "v2"), compact=True, **layout) == []  # none read
    pack(tmp_path / "scratch-kept", kept, **layout)
    assert shard_files(tmp_path / "v4") == shard_files(tmp_path / "scratch-kept")


def test_a_damaged_previous_shard_is_not_carried_and_its_images_are_read_again(tmp_path):
    """A previous shard whose audited images (its first, its last and a sample) no longer match
    their recorded SHA-256 is left behind: the damage never reaches the new data/raw."""
    pack(tmp_path / "previous", IMAGES)
    raw = RawImages(tmp_path / "previous")
    first = min(raw, key=lambda e: (e.member.shard.name, e.member.offset))
    with open(first.member.shard, "r+b") as shard:
        shard.seek(first.member.offset + 1)
        shard.write(b"!")
    damaged = {e.path for e in raw if e.member.shard == first.member.shard}
    read = pack(tmp_path / "repacked", IMAGES, raw)
    assert set(read) == damaged
    assert contents(tmp_path / "repacked") == {"/".join(key): data for key, data in IMAGES.items()}


def fragment(root, name: str) -> list[str]:
    """The paths a fragment of root's index holds."""
    import csv

    with open(root / "index" / name, newline="") as handle:
        return [row["path"] for row in csv.DictReader(handle)]


def test_a_version_writes_the_index_rows_it_adds_and_takes_back_the_ones_it_removes(tmp_path):
    """Issue 48: the index is append-only fragments and a removed.csv: a version that adds images
    writes their rows alone; one that removes or moves images writes removed.csv's entries (and a
    moved image's new row); the earlier fragments are carried as they are."""
    pack(tmp_path / "v1", BEFORE)
    added = BEFORE | {("train", "cat", "new.jpg"): b"\xff\xd8new"}
    pack(tmp_path / "v2", added, RawImages(tmp_path / "v1"))
    assert fragment(tmp_path / "v2", "0001.csv") == ["train/cat/new.jpg"]
    assert (tmp_path / "v2/index/0000.csv").stat().st_ino == (tmp_path / "v1/index/0000.csv").stat().st_ino
    assert (tmp_path / "v2/index/removed.csv").read_text() == "fragment,key\n"
    moved = {key: data for key, data in added.items() if key != ("train", "cat", "b.png")}
    moved[("test", "dog", "a.jpg")] = moved.pop(("train", "cat", "a.jpg"))  # moved to test, relabelled
    pack(tmp_path / "v3", moved, RawImages(tmp_path / "v2"))
    assert fragment(tmp_path / "v3", "0002.csv") == ["test/dog/a.jpg"]
    assert (tmp_path / "v3/index/removed.csv").read_text().splitlines()[1:] == [
        "0000.csv,train/cat/a.jpg",
        "0000.csv,train/cat/b.png",
    ]
    raw = RawImages(tmp_path / "v3")
    assert contents(tmp_path / "v3") == {"/".join(key): data for key, data in moved.items()}
    assert raw.member("test/dog/a.jpg").offset == RawImages(tmp_path / "v1").member("train/cat/a.jpg").offset
    gone = {
        key: data for key, data in moved.items() if key[:2] != ("train", "cat")
    }  # 0001.csv has no live row
    pack(tmp_path / "v4", gone, RawImages(tmp_path / "v3"))
    assert sorted(p.name for p in (tmp_path / "v4/index").iterdir()) == [
        "0000.csv",
        "0002.csv",
        "removed.csv",
    ]
    assert "0001.csv" not in (tmp_path / "v4/index/removed.csv").read_text()


def test_the_single_index_of_earlier_versions_is_read_and_written_as_a_fragment(tmp_path):
    import shutil

    pack(tmp_path / "v1", BEFORE)
    legacy = tmp_path / "legacy"
    shutil.copytree(tmp_path / "v1", legacy)
    (legacy / "index/0000.csv").rename(legacy / "index.csv")
    shutil.rmtree(legacy / "index")
    assert contents(legacy) == contents(tmp_path / "v1")
    assert pack(tmp_path / "v2", BEFORE, RawImages(legacy)) == []  # nothing read again
    assert sorted(fragment(tmp_path / "v2", "0000.csv")) == sorted(contents(tmp_path / "v1"))


def test_a_removed_list_naming_a_fragment_that_is_not_there_is_named(tmp_path):
    pack(tmp_path / "raw", IMAGES)
    (tmp_path / "raw/index/removed.csv").write_text("fragment,key\n0009.csv,train/cat/a.jpg\n")
    with pytest.raises(VisionOpsError, match=r"names fragment 0009\.csv") as err:
        RawImages(tmp_path / "raw")
    assert "dvc repro -f -s download" in err.value.fix
