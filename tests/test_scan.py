"""The scan stage's listing of a folder source (issue 33): every change is seen, an unchanged
file is never hashed twice, a damaged stamps file is never trusted, and download packs exactly
the listed bytes."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest
from PIL import Image

from visionops.config import DataParams
from visionops.data import scan
from visionops.data.scan import read_listing, update_listing
from visionops.data.shards import RawImages
from visionops.data.sources import materialize
from visionops.errors import VisionOpsError


def picture(path: Path, shade: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (12, 10), (shade, 255 - shade, shade // 2)).save(path)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "photos"
    for i in range(4):
        picture(root / "cat" / f"{i}.png", 10 + i)
        picture(root / "dog" / f"{i}.png", 100 + i)
    return root


@pytest.fixture
def hashed(monkeypatch) -> list[str]:
    """The paths the scan hashes (the real hashing, observed)."""
    seen: list[str] = []
    real = scan._hash_files

    def observed(files, progress):
        seen.extend(f.path for f in files)
        return real(files, progress)

    monkeypatch.setattr(scan, "_hash_files", observed)
    return seen


def rescan(tree: Path, tmp_path: Path, follow_links: bool = False) -> tuple[int, str | None]:
    return update_listing(tree, follow_links, tmp_path / "listing", tmp_path / "stamps", False)


def test_the_listing_holds_every_files_sha256_and_a_second_scan_hashes_nothing(tree, tmp_path, hashed):
    assert rescan(tree, tmp_path) == (8, "8 added (first: cat/0.png)")
    listing = read_listing(tmp_path / "listing")
    assert [r.path for r in listing] == sorted(f"{c}/{i}.png" for c in ("cat", "dog") for i in range(4))
    for row in listing:
        data = (tree / row.path).read_bytes()
        assert (row.size, row.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    written = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "listing").iterdir()}
    hashed.clear()
    assert rescan(tree, tmp_path) == (8, None)
    assert (
        hashed == [] and {p.name: p.stat().st_mtime_ns for p in (tmp_path / "listing").iterdir()} == written
    )


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda t: picture(t / "cat" / "new.png", 200), "1 added (first: cat/new.png)"),
        (lambda t: (t / "dog" / "3.png").unlink(), "1 removed (first: dog/3.png)"),
        (
            lambda t: (t / "cat" / "1.png").rename(t / "dog" / "1-was-a-cat.png"),
            "1 added (first: dog/1-was-a-cat.png), 1 removed (first: cat/1.png)",
        ),
        (lambda t: picture(t / "dog" / "0.png", 250), "1 changed (first: dog/0.png)"),
    ],
    ids=["added", "removed", "relabelled", "edited"],
)
def test_every_change_is_named_and_only_new_files_are_hashed(tree, tmp_path, hashed, change, expected):
    rescan(tree, tmp_path)
    hashed.clear()
    change(tree)
    assert rescan(tree, tmp_path)[1] == expected
    assert len(hashed) <= 1  # the new or edited file alone
    assert read_listing(tmp_path / "listing") == read_listing_afresh(tree, tmp_path)


def read_listing_afresh(tree: Path, tmp_path: Path):
    """The listing a scan with no stamps at all gives."""
    fresh = tmp_path / "fresh"
    fresh.mkdir(exist_ok=True)
    update_listing(tree, False, fresh / "listing", fresh / "stamps", False)
    return read_listing(fresh / "listing")


def test_an_edit_that_keeps_size_and_mtime_is_still_seen(tree, tmp_path):
    """Stamps include ctime, which a program cannot set back (git's test, not only mtime's)."""
    rescan(tree, tmp_path)
    target = tree / "cat" / "2.png"
    before = target.stat()
    data = bytearray(target.read_bytes())
    data[-5] ^= 0xFF
    target.write_bytes(bytes(data))
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert rescan(tree, tmp_path)[1] == "1 changed (first: cat/2.png)"


def test_a_damaged_stamps_file_is_not_trusted(tree, tmp_path, hashed, capsys):
    rescan(tree, tmp_path)
    picture(tree / "cat" / "0.png", 77)  # changed, and its stamp's hash faked back to the old one
    stamps = tmp_path / "stamps"
    header, body = stamps.read_text().split("\n", 1)
    fields = body.split("\0")
    at = fields.index("cat/0.png")
    st = (tree / "cat" / "0.png").stat()
    fields[at + 1] = f"{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}"  # the old hash stays
    stamps.write_text(header + "\n" + "\0".join(fields))
    hashed.clear()
    assert rescan(tree, tmp_path)[1] == "1 changed (first: cat/0.png)"
    assert "damaged, of another folder or older" in capsys.readouterr().out and len(hashed) == 8


def test_a_listing_restored_to_an_older_version_is_brought_back_up_to_date(tree, tmp_path):
    """`git checkout <old> && dvc checkout` puts back an older listing while the folder stayed:
    the scan must rewrite it, so download sees what the folder holds."""
    rescan(tree, tmp_path)
    shutil.copytree(tmp_path / "listing", tmp_path / "older")
    picture(tree / "cat" / "9.png", 9)
    rescan(tree, tmp_path)
    shutil.rmtree(tmp_path / "listing")
    shutil.copytree(tmp_path / "older", tmp_path / "listing")
    assert rescan(tree, tmp_path)[1] == "1 added (first: cat/9.png)"
    shutil.rmtree(tmp_path / "listing")
    assert rescan(tree, tmp_path)[1] == "9 added (first: cat/0.png)"


def test_links_leaving_the_folder_are_refused_before_anything_is_hashed(tree, tmp_path, hashed):
    outside = tmp_path / "elsewhere.png"
    picture(outside, 1)
    (tree / "cat" / "alias.png").symlink_to(outside)
    with pytest.raises(VisionOpsError, match="point outside it"):
        rescan(tree, tmp_path)
    assert hashed == [] and not (tmp_path / "listing").exists()
    assert rescan(tree, tmp_path, follow_links=True)[0] == 9


def test_download_packs_the_listed_bytes_and_refuses_a_file_changed_since_the_scan(tree, tmp_path):
    rescan(tree, tmp_path)
    listing = read_listing(tmp_path / "listing")
    cfg = DataParams(source="folder", path=str(tree), test_fraction=0.25)
    materialize(cfg, tmp_path / "raw", False, listing)
    packed = {e.path.split("/", 1)[1]: e.member.read() for e in RawImages(tmp_path / "raw")}
    assert packed == {r.path: (tree / r.path).read_bytes() for r in listing}

    picture(tree / "dog" / "2.png", 33)  # edited after the scan, before download
    with pytest.raises(VisionOpsError, match="changed after the scan stage listed it") as err:
        materialize(cfg, tmp_path / "raw2", False, listing)
    assert "dvc repro" in err.value.fix
    shutil.rmtree(tmp_path / "raw2", ignore_errors=True)


def test_a_folder_that_cannot_be_listed_is_named(tmp_path):
    from visionops.data.folders import walk_folder

    not_a_folder = tmp_path / "photos"
    not_a_folder.write_bytes(b"x")
    with pytest.raises(VisionOpsError, match=r"cannot read the folder .*photos") as err:
        walk_folder(not_a_folder)
    assert "data.path" in err.value.fix


def test_a_link_to_itself_and_a_name_that_is_not_utf8_are_named(tree, tmp_path):
    """Issue 47 row 13: `ln -s self 2/self` ended in an ELOOP traceback, a non-UTF-8 file name in
    a UnicodeEncodeError from the listing's digest."""
    loop = tree / "cat" / "self"
    loop.symlink_to("self")
    with pytest.raises(VisionOpsError, match=r"cat/self cannot be followed: Too many levels") as err:
        rescan(tree, tmp_path)
    assert "remove that link" in err.value.fix
    loop.unlink()
    latin1 = os.fsencode(tree / "dog") + b"/caf\xe9.png"
    Image.new("RGB", (12, 10)).save(latin1.decode(errors="surrogateescape"), format="PNG")
    with pytest.raises(VisionOpsError, match=r"the file name 'dog/caf.\.png' is not UTF-8 text") as err:
        rescan(tree, tmp_path)
    assert "rename it" in err.value.fix and not (tmp_path / "listing").exists()


@pytest.mark.parametrize(
    "row",
    ["/tmp/cat/0.png", "../outside/0.png", "cat/../../0.png", "cat//0.png", "cat/..", "./cat/0.png", "cat/"],
)
def test_a_listing_row_outside_the_folder_is_named_as_such(tmp_path, row):
    """Issue 47 row 21: a hand-edited row with an absolute path said "class folder .../tmp has no
    images"."""
    listing = tmp_path / "listing"
    listing.mkdir()
    (listing / "removed.csv").write_text("fragment,key\n")
    (listing / "0000.csv").write_text(f"path,size,sha256\ncat/1.png,3,{'a' * 64}\n{row},3,{'b' * 64}\n")
    with pytest.raises(VisionOpsError, match=r"is damaged .*is not a path inside data.path") as err:
        read_listing(listing)
    assert "dvc repro" in err.value.fix


def test_names_with_dots_are_paths_inside_the_folder(tmp_path):
    """The check above runs over all paths at once: a dot inside a name is no '.' component."""
    listing = tmp_path / "listing"
    listing.mkdir()
    (listing / "removed.csv").write_text("fragment,key\n")
    names = ["cat/..png", "cat/.hidden.png", "cat.v2/0..png", "dog/x./a.png"]
    (listing / "0000.csv").write_text("path,size,sha256\n" + "".join(f"{n},3,{'a' * 64}\n" for n in names))
    assert [row.path for row in read_listing(listing)] == sorted(names)


def test_a_change_writes_a_fragment_of_what_changed_and_never_rewrites_one(tree, tmp_path):
    """Issue 48: the listing is append-only fragments (data/fragments.py): an added file is a row
    in a new fragment, a moved one a row there and an entry in removed.csv; the fragments before
    are carried as they are."""
    import csv

    rescan(tree, tmp_path)
    first = (tmp_path / "listing/0000.csv").read_bytes()
    picture(tree / "cat" / "new.png", 77)
    (tree / "dog" / "0.png").rename(tree / "cat" / "moved.png")
    assert rescan(tree, tmp_path)[1] == "2 added (first: cat/moved.png), 1 removed (first: dog/0.png)"
    assert (tmp_path / "listing/0000.csv").read_bytes() == first
    with open(tmp_path / "listing/0001.csv", newline="") as handle:
        added = [row["path"] for row in csv.DictReader(handle)]
    assert added == ["cat/moved.png", "cat/new.png"]
    assert (tmp_path / "listing/removed.csv").read_text() == "fragment,key\n0000.csv,dog/0.png\n"
    assert [r.path for r in read_listing(tmp_path / "listing")] == sorted(
        p.relative_to(tree).as_posix() for p in tree.rglob("*.png")
    )
