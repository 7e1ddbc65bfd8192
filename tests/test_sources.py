"""Data sources against a real HTTP server on 127.0.0.1, with archives built here.

Every bad case must fail with a message naming the cause and a fix, and leave nothing
half-written behind.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import shutil
import struct
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from http_fixture import Answer, LocalServer

from visionops.config import DataParams
from visionops.data.archive import Limits, extract
from visionops.data.fetch import Checksum, FetchSettings, fetch
from visionops.data.shards import RawImages
from visionops.data.sources import materialize
from visionops.errors import VisionOpsError

RNG = np.random.default_rng(0)
HYMENOPTERA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "hymenoptera"


def image_bytes(fmt: str = "PNG", size: tuple[int, int] = (12, 10), mode: str = "RGB") -> bytes:
    from PIL import Image

    channels = {"RGB": 3, "L": 1}[mode]
    pixels = RNG.integers(0, 256, (size[1], size[0], channels), dtype=np.uint8).squeeze()
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode=mode).save(buffer, format=fmt)
    return buffer.getvalue()


def class_tree(splits=("train", "test"), classes=("cat", "dog"), per_class=6) -> dict[str, bytes]:
    """{member name: bytes} of a small class-folder dataset inside a wrapper folder."""
    return {
        f"pets/{split}/{name}/{i:03d}.{'png' if i % 2 else 'jpg'}": image_bytes("PNG" if i % 2 else "JPEG")
        for split in splits
        for name in classes
        for i in range(per_class)
    }


def tgz(files: dict[str, bytes], links: dict[str, tuple[bytes, str]] | None = None) -> bytes:
    """A .tar.gz of files, plus links {name: (tarfile.SYMTYPE/LNKTYPE, target)}."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, (kind, target) in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, target
            tar.addfile(info)
    return buffer.getvalue()


def zipped(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def server():
    with LocalServer() as running:
        yield running


def settings(tmp_path: Path, **overrides) -> FetchSettings:
    values = {"cache_dir": tmp_path / "cache", "timeout_s": 2.0, "retries": 2, "allow_http": True}
    return FetchSettings(progress=False, **(values | overrides))


def params(tmp_path: Path, **overrides) -> DataParams:
    values = {"cache_dir": str(tmp_path / "cache"), "allow_http": True, "timeout_s": 2.0, "retries": 2}
    return DataParams(**(values | overrides))


# --- download ---------------------------------------------------------------------------


def test_404_names_the_status_and_the_url_to_check(server, tmp_path):
    with pytest.raises(VisionOpsError, match="HTTP 404") as err:
        fetch(server.url("/missing.tgz"), settings(tmp_path), None)
    assert "data.url" in err.value.fix


def test_500_then_success_is_retried(server, tmp_path):
    body = b"x" * 5000
    server.script.serve("/flaky.bin", Answer(status=500), Answer(body=body))
    path = fetch(server.url("/flaky.bin"), settings(tmp_path), Checksum("sha256", sha256(body)))
    assert path.read_bytes() == body
    assert [r[0] for r in server.script.requests] == ["/flaky.bin", "/flaky.bin"]


def test_persistent_500_fails_after_the_retries(server, tmp_path):
    server.script.serve("/down.bin", Answer(status=503))
    with pytest.raises(VisionOpsError, match="HTTP 503"):
        fetch(server.url("/down.bin"), settings(tmp_path, retries=1), None)
    assert len(server.script.requests) == 2


def test_connection_cut_mid_file_resumes_with_range(server, tmp_path):
    body = bytes(range(256)) * 4000  # ~1 MB
    server.script.serve("/big.bin", Answer(body=body, cut_at=300_000), Answer(body=body))
    path = fetch(server.url("/big.bin"), settings(tmp_path), Checksum("sha256", sha256(body)))
    assert path.read_bytes() == body
    (_, first_range), (_, resumed_range) = server.script.requests
    start = int(resumed_range.removeprefix("bytes=").removesuffix("-"))
    assert first_range is None and 200_000 < start <= 300_000  # only the chunk being read is lost


def test_checksum_mismatch_keeps_nothing_in_the_cache(server, tmp_path):
    server.script.serve("/x.tgz", Answer(body=b"tampered"))
    with pytest.raises(VisionOpsError, match="checksum mismatch") as err:
        fetch(server.url("/x.tgz"), settings(tmp_path), Checksum("sha256", sha256(b"original")))
    assert "data.sha256" in err.value.fix
    assert list((tmp_path / "cache").iterdir()) == []


def test_a_server_that_never_answers_times_out(server, tmp_path):
    server.script.serve("/slow.bin", Answer(hang_s=5))
    with pytest.raises(VisionOpsError, match="failed after 1 attempt") as err:
        fetch(server.url("/slow.bin"), settings(tmp_path, timeout_s=0.5, retries=0), None)
    assert "data.timeout_s" in err.value.fix


def test_verified_file_is_served_from_the_cache_the_second_time(server, tmp_path):
    body = b"cached" * 100
    server.script.serve("/c.bin", Answer(body=body))
    checksum = Checksum("sha256", sha256(body))
    first = fetch(server.url("/c.bin"), settings(tmp_path), checksum)
    second = fetch(server.url("/c.bin"), settings(tmp_path), checksum)
    assert first == second and len(server.script.requests) == 1


def test_plain_http_is_refused_unless_allowed(tmp_path):
    with pytest.raises(VisionOpsError, match="refusing plain http") as err:
        fetch("http://127.0.0.1:9/x.tgz", settings(tmp_path, allow_http=False), None)
    assert "allow_http" in err.value.fix


# --- archives ---------------------------------------------------------------------------


def limits(mb: int = 100) -> Limits:
    return Limits(max_bytes=mb * 1_000_000, max_members=10_000)


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("name", "message"),
    [("../evil.txt", "climbs out"), ("/tmp/evil.txt", "absolute path"), ("a/../../evil.txt", "climbs out")],
)
def test_tar_members_escaping_the_target_are_refused(tmp_path, name, message):
    target = tmp_path / "out"
    target.mkdir()
    archive = write(tmp_path, "bad.tgz", tgz({"ok/1.png": image_bytes(), name: b"evil"}))
    with pytest.raises(VisionOpsError, match=message) as err:
        extract(archive, target, limits())
    assert "unsafe" in err.value.fix
    assert not (tmp_path / "evil.txt").exists() and list(target.iterdir()) == []


def test_tar_symlink_pointing_outside_is_refused(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    archive = write(
        tmp_path, "link.tgz", tgz({}, links={"data/passwd": (tarfile.SYMTYPE, "../../etc/passwd")})
    )
    with pytest.raises(VisionOpsError, match="links outside"):
        extract(archive, target, limits())


def test_zip_bomb_beyond_the_cap_is_refused_before_writing(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    archive = write(tmp_path, "bomb.zip", zipped({"train/a/zeros.png": b"\0" * 30_000_000}))
    assert archive.stat().st_size < 100_000
    with pytest.raises(VisionOpsError, match="zip bomb") as err:
        extract(archive, target, limits(mb=10))
    assert "max_extract_mb" in err.value.fix and list(target.iterdir()) == []


def test_zip_traversal_and_macos_metadata(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    with pytest.raises(VisionOpsError, match="climbs out"):
        extract(write(tmp_path, "bad.zip", zipped({"..\\evil.txt": b"x"})), target, limits())
    files = {
        "a/1.png": image_bytes(),
        "__MACOSX/a/._1.png": b"meta",
        "a/.DS_Store": b"x",
        "a/Thumbs.db": b"x",
    }
    extract(write(tmp_path, "mac.zip", zipped(files)), target, limits())
    assert sorted(str(p.relative_to(target)) for p in target.rglob("*") if p.is_file()) == ["a/1.png"]


def test_a_web_page_instead_of_an_archive(tmp_path):
    page = write(tmp_path, "x.tgz", b"<!DOCTYPE html><html><body>Not found</body></html>")
    with pytest.raises(VisionOpsError, match="neither a tar nor a zip") as err:
        extract(page, tmp_path, limits())
    assert "not at a web page" in err.value.fix


# --- the url source, end to end through materialize ----------------------------------------


@pytest.mark.parametrize(
    ("members", "links", "message"),
    [
        ({"pets/train/cat/1.png": b"x", "../evil.png": b"evil"}, {}, "climbs out"),
        (
            {"pets/train/cat/1.png": b"x"},
            {"pets/train/cat/p.png": (tarfile.SYMTYPE, "/etc/passwd")},
            "links outside",
        ),
    ],
)
def test_the_streamed_url_source_checks_every_member_before_packing_any(
    server, tmp_path, members, links, message
):
    """Issue 25: the url source no longer unpacks; the listing runs extract's checks first."""
    data = tgz(members, links=links)
    url = serve_archive(server, "/bad.tgz", data)
    with pytest.raises(VisionOpsError, match=message):
        materialize(params(tmp_path, source="url", url=url, sha256=sha256(data)), tmp_path / "raw", False)
    assert not list((tmp_path / "raw").rglob("*.tar")) and not (tmp_path / "raw" / "index.csv").exists()


@pytest.mark.parametrize("kind", ["zip", "tgz"])
def test_the_streamed_url_source_stops_a_bomb(server, tmp_path, kind):
    tree = {f"pets/train/{c}/{i}.png": b"\0" * 3_000_000 for c in ("cat", "dog") for i in range(2)}
    data = zipped(tree) if kind == "zip" else tgz(tree)
    url = serve_archive(server, f"/bomb.{kind}", data)
    cfg = params(tmp_path, source="url", url=url, sha256=sha256(data), max_extract_mb=10)
    with pytest.raises(VisionOpsError, match="zip bomb") as err:
        materialize(cfg, tmp_path / "raw", False)
    assert "max_extract_mb" in err.value.fix and not (tmp_path / "raw" / "index.csv").exists()


def test_read_members_holds_the_byte_cap_even_when_the_listing_passed(tmp_path):
    """The budget is also counted on the bytes actually read (a header can understate them)."""
    from visionops.data.archive import read_members

    archive = write(tmp_path, "big.zip", zipped({"a/1.png": b"\0" * 3_000_000, "a/2.png": b"\0" * 3_000_000}))
    with pytest.raises(VisionOpsError, match="zip bomb"):
        list(read_members(archive, {"a/1.png", "a/2.png"}, Limits(max_bytes=4_000_000, max_members=10)))
    assert [name for name, _ in read_members(archive, {"a/1.png"}, limits())] == ["a/1.png"]


def serve_archive(server, path: str, data: bytes) -> str:
    server.script.serve(path, Answer(body=data))
    return server.url(path)


def test_url_source_lands_in_class_folders(server, tmp_path):
    files = class_tree() | {"pets/README.txt": b"hi", "pets/train/cat/.hidden.png": b"x"}
    data = tgz(files)
    url = serve_archive(server, "/pets.tgz", data)
    record = materialize(
        params(tmp_path, source="url", url=url, sha256=sha256(data)), tmp_path / "raw", False
    )
    assert record["classes"] == ["cat", "dog"] and record["checksum"] == f"sha256:{sha256(data)}"
    assert record["counts"] == {"train": {"cat": 6, "dog": 6}, "test": {"cat": 6, "dog": 6}}
    copied = RawImages(tmp_path / "raw").member("train/cat/001.png").read()
    assert copied == files["pets/train/cat/001.png"]
    assert not [p for p in tmp_path.rglob("*.png")]  # streamed into the shards: nothing unpacked


def test_url_source_without_checksum_is_refused(tmp_path):
    with pytest.raises(VisionOpsError, match="without a checksum") as err:
        materialize(params(tmp_path, source="url", url="http://127.0.0.1:9/x.tgz"), tmp_path / "raw", False)
    assert "data.sha256" in err.value.fix and "allow_unverified" in err.value.fix


def test_unverified_url_source_prints_the_hash_to_pin(server, tmp_path, capsys):
    data = tgz(class_tree())
    url = serve_archive(server, "/pets.tgz", data)
    materialize(params(tmp_path, source="url", url=url, allow_unverified=True), tmp_path / "raw", False)
    assert f"data.sha256: {sha256(data)}" in capsys.readouterr().out


def test_single_tree_archive_is_split_by_the_seeded_fraction(server, tmp_path):
    data = zipped({k.replace("pets/train/", ""): v for k, v in class_tree(("train",), per_class=10).items()})
    url = serve_archive(server, "/flat.zip", data)
    cfg = params(tmp_path, source="url", url=url, sha256=sha256(data), test_fraction=0.2)
    first = materialize(cfg, tmp_path / "a", False)
    materialize(cfg, tmp_path / "b", False)
    counts = first["counts"]
    assert all(
        counts["train"][c] + counts["test"][c] == 10 and counts["test"][c] >= 1 for c in ("cat", "dog")
    )
    assert first["split"]["by"].startswith("a seeded hash")
    assert [e.path for e in RawImages(tmp_path / "a")] == [e.path for e in RawImages(tmp_path / "b")]
    assert (tmp_path / "a/shards/raw-000.tar").read_bytes() == (
        tmp_path / "b/shards/raw-000.tar"
    ).read_bytes()


def test_archive_with_no_class_folders(server, tmp_path):
    data = tgz({"1.png": image_bytes(), "2.png": image_bytes()})  # loose files: no class at all
    url = serve_archive(server, "/flat.tgz", data)
    with pytest.raises(VisionOpsError, match="no class folders") as err:
        materialize(params(tmp_path, source="url", url=url, sha256=sha256(data)), tmp_path / "raw", False)
    assert "train/<class>" in err.value.fix


def test_class_folder_with_no_images(server, tmp_path):
    data = tgz(class_tree() | {"pets/train/bird/notes.txt": b"todo"})
    url = serve_archive(server, "/pets.tgz", data)
    with pytest.raises(VisionOpsError, match=r"class folder pets.tgz/train/bird has no images"):
        materialize(params(tmp_path, source="url", url=url, sha256=sha256(data)), tmp_path / "raw", False)


# --- the folder source -------------------------------------------------------------------


def test_folder_source_copies_mixed_images_and_never_touches_the_source(tmp_path):
    source = tmp_path / "photos"
    for i, (name, fmt, size) in enumerate(
        [
            ("ant", "JPEG", (40, 30)),
            ("ant", "PNG", (64, 64)),
            ("bee", "WEBP", (20, 50)),
            ("bee", "BMP", (33, 17)),
        ]
        * 4
    ):
        path = source / name / f"img{i}.{fmt.lower()}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(image_bytes(fmt, size))
    (source / "ant" / "nested").mkdir()
    (source / "ant" / "nested" / "deep.png").write_bytes(image_bytes())
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in source.rglob("*") if p.is_file()}
    record = materialize(
        params(tmp_path, source="folder", path=str(source), test_fraction=0.25), tmp_path / "raw"
    )
    assert record["classes"] == ["ant", "bee"] and record["url"].startswith("file://")
    assert sum(sum(c.values()) for c in record["counts"].values()) == 17
    assert any(e.path.endswith("/ant/nested__deep.png") for e in RawImages(tmp_path / "raw"))
    assert before == {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in source.rglob("*") if p.is_file()}


def test_folder_source_that_does_not_exist(tmp_path):
    with pytest.raises(VisionOpsError, match="not an existing folder") as err:
        materialize(params(tmp_path, source="folder", path=str(tmp_path / "nope")), tmp_path / "raw")
    assert "data.path" in err.value.fix


def photo_tree(root: Path, classes=("cat", "dog"), per_class=4) -> Path:
    for name in classes:
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            (root / name / f"{i}.png").write_bytes(image_bytes())
    return root


SECRET = b"root:x:0:0:root:/root:/bin/bash\n"


def all_bytes_under(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in folder.rglob("*") if p.is_file())


@pytest.mark.parametrize("kind", ["file", "class folder"])
def test_folder_source_refuses_links_leading_out_of_the_tree(tmp_path, kind):
    """Issue 18: a `passwd.png -> /etc/passwd`-style link must not copy a byte of its target."""
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "passwd.png").write_bytes(SECRET)
    source = photo_tree(tmp_path / "photos")
    if kind == "file":
        (source / "cat" / "passwd.png").symlink_to(outside / "passwd.png")
    else:
        (source / "secrets").symlink_to(outside, target_is_directory=True)
    raw = tmp_path / "raw"
    with pytest.raises(VisionOpsError, match="point outside it") as err:
        materialize(params(tmp_path, source="folder", path=str(source)), raw)
    assert str(outside) in str(err.value) and "data.follow_links" in err.value.fix
    assert SECRET not in all_bytes_under(tmp_path / "raw") if raw.exists() else True
    assert not raw.exists() or not any(raw.rglob("*.tar"))  # stopped before the first image


def test_folder_source_follows_links_inside_the_tree_and_outside_only_when_asked(tmp_path):
    source = photo_tree(tmp_path / "photos")
    (source / "dog" / "alias.png").symlink_to(source / "cat" / "0.png")  # inside: fine
    record = materialize(params(tmp_path, source="folder", path=str(source)), tmp_path / "raw")
    assert sum(record["counts"]["train"].values()) + sum(record["counts"]["test"].values()) == 9

    shared = photo_tree(tmp_path / "store", classes=("bird",))
    (source / "bird").symlink_to(shared / "bird", target_is_directory=True)  # a symlink farm
    cfg = params(tmp_path, source="folder", path=str(source), follow_links=True)
    record = materialize(cfg, tmp_path / "raw2")
    assert record["classes"] == ["bird", "cat", "dog"]


def test_folder_source_pointed_at_the_project_itself_says_so(tmp_path):
    project = photo_tree(tmp_path / "project")
    (project / "dvc.yaml").write_text("stages: {}\n")
    with pytest.raises(VisionOpsError, match="is a DVC project") as err:
        materialize(params(tmp_path, source="folder", path=str(project)), tmp_path / "raw")
    assert "sub-folders are your classes" in err.value.fix


def test_a_one_class_tree_is_read_as_one_class_not_as_a_wrapper(tmp_path):
    """Issue 18: `<class>/*` with one class said 'no class folders found'; it is one class
    (validation then fails it for having fewer than two)."""
    source = photo_tree(tmp_path / "photos", classes=("cat",), per_class=10)
    record = materialize(params(tmp_path, source="folder", path=str(source)), tmp_path / "raw")
    assert record["classes"] == ["cat"]
    wrapped = tmp_path / "wrapped"
    photo_tree(wrapped / "dataset")  # a real wrapper folder is still stepped through
    record = materialize(params(tmp_path, source="folder", path=str(wrapped)), tmp_path / "raw2")
    assert record["classes"] == ["cat", "dog"]


@pytest.mark.skipif(not HYMENOPTERA.is_dir(), reason="shared dataset absent (../shared/datasets)")
def test_folder_source_on_the_real_hymenoptera_photos(tmp_path):
    source = HYMENOPTERA
    record = materialize(params(tmp_path, source="folder", path=str(source)), tmp_path / "raw", False)
    assert record["classes"] == ["ants", "bees"] and min(record["counts"]["test"].values()) > 0


# --- CIFAR and MNIST formats -------------------------------------------------------------


def cifar_archive(train_per_batch: int = 40, test: int = 60) -> tuple[bytes, dict]:
    """The canonical cifar-10-python.tar.gz layout, with random but valid 32x32 images."""
    names = [
        b"airplane",
        b"automobile",
        b"bird",
        b"cat",
        b"deer",
        b"dog",
        b"frog",
        b"horse",
        b"ship",
        b"truck",
    ]

    def batch(n: int) -> dict:
        return {
            b"data": RNG.integers(0, 256, (n, 3072), dtype=np.uint8),
            b"labels": [int(x) for x in RNG.integers(0, 10, n)],
            b"batch_label": b"x",
        }

    batches = {f"data_batch_{i}": batch(train_per_batch) for i in range(1, 6)} | {"test_batch": batch(test)}
    members = {f"cifar-10-batches-py/{k}": pickle.dumps(v, protocol=2) for k, v in batches.items()}
    members["cifar-10-batches-py/batches.meta"] = pickle.dumps({b"label_names": names}, protocol=2)
    return tgz(members), batches


def test_cifar10_format_archive_lands_in_named_class_folders(server, tmp_path):
    from PIL import Image

    data, batches = cifar_archive()
    url = serve_archive(server, "/cifar-10-python.tar.gz", data)
    cfg = params(tmp_path, source="cifar10", url=url, sha256=sha256(data))
    record = materialize(cfg, tmp_path / "raw", False)
    assert record["classes"][:3] == ["airplane", "automobile", "bird"] and len(record["classes"]) == 10
    assert sum(record["counts"]["train"].values()) == 200 and sum(record["counts"]["test"].values()) == 60
    first = batches["data_batch_1"]
    label = record["classes"][first[b"labels"][0]]
    written = np.asarray(Image.open(RawImages(tmp_path / "raw").member(f"train/{label}/00000.png").open()))
    assert np.array_equal(written, first[b"data"][0].reshape(3, 32, 32).transpose(1, 2, 0))


def test_cifar_batch_with_a_foreign_pickle_global_is_refused(server, tmp_path, capsys):
    class Exploit:
        def __reduce__(self):
            return (print, ("pwned",))

    data = tgz({"cifar-10-batches-py/batches.meta": pickle.dumps(Exploit(), protocol=2)})
    url = serve_archive(server, "/cifar-10-python.tar.gz", data)
    with pytest.raises(VisionOpsError, match="print, which the format never needs"):
        materialize(params(tmp_path, source="cifar10", url=url, sha256=sha256(data)), tmp_path / "raw", False)
    assert "pwned" not in capsys.readouterr().out


def test_cifar10_default_checksum_is_the_canonical_md5(server, tmp_path):
    data, _ = cifar_archive(2, 2)
    url = serve_archive(server, "/cifar-10-python.tar.gz", data)
    with pytest.raises(VisionOpsError, match="expected md5 c58f30108f718f92721af3b95e74349a"):
        materialize(params(tmp_path, source="cifar10", url=url), tmp_path / "raw", False)


def idx_gz(array: np.ndarray) -> bytes:
    """MNIST's IDX format: magic (0, 0, type 0x08 = ubyte, ndim), big-endian dims, data."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return gzip.compress(header + array.astype(np.uint8).tobytes())


def test_fashion_mnist_idx_files_land_in_class_folders(server, tmp_path):
    files = {
        "train-images-idx3-ubyte.gz": idx_gz(RNG.integers(0, 256, (30, 28, 28))),
        "train-labels-idx1-ubyte.gz": idx_gz(np.arange(30) % 10),
        "t10k-images-idx3-ubyte.gz": idx_gz(RNG.integers(0, 256, (10, 28, 28))),
        "t10k-labels-idx1-ubyte.gz": idx_gz(np.arange(10)),
    }
    for name, data in files.items():
        server.script.serve(f"/fashion/{name}", Answer(body=data))
    cfg = params(
        tmp_path,
        source="fashion-mnist",
        url=server.url("/fashion/"),
        checksums={name: sha256(data) for name, data in files.items()},
    )
    record = materialize(cfg, tmp_path / "raw", False)
    assert record["classes"][0] == "T-shirt-top" and record["counts"]["train"]["T-shirt-top"] == 3
    assert record["counts"]["test"] == {name: 1 for name in record["classes"]}


# --- the download stage ------------------------------------------------------------------


def run_download_stage(workdir: Path, data: dict) -> subprocess.CompletedProcess:
    """The stage script in a project of its own (a stage writes into the project it lives in)."""
    (workdir / "params.yaml").write_text(yaml.safe_dump({"data": data}))
    script = workdir / "pipeline" / "download.py"
    script.parent.mkdir(exist_ok=True)
    shutil.copy2(Path(__file__).resolve().parents[1] / "pipeline" / "download.py", script)
    return subprocess.run([sys.executable, str(script)], cwd=workdir, capture_output=True, text=True)


def test_failed_download_stage_keeps_the_previous_data_raw(server, tmp_path):
    workdir = tmp_path / "project"
    workdir.mkdir()
    assert run_download_stage(workdir, {"source": "digits"}).returncode == 0
    before = {p: p.read_bytes() for p in (workdir / "data" / "raw").rglob("*") if p.is_file()}
    server.script.serve("/pets.tgz", Answer(body=b"x" * 1000, cut_at=10))
    result = run_download_stage(
        workdir,
        {
            "source": "url",
            "url": server.url("/pets.tgz"),
            "sha256": "0" * 64,
            "allow_http": True,
            "retries": 1,
            "cache_dir": str(tmp_path / "cache"),
        },
    )
    assert result.returncode != 0 and "download of http://127.0.0.1" in result.stderr
    assert "fix:" in result.stderr and "Traceback" not in result.stderr
    assert before == {p: p.read_bytes() for p in (workdir / "data" / "raw").rglob("*") if p.is_file()}
    assert sorted(p.name for p in (workdir / "data").iterdir()) == ["raw"]  # no staging left over


def test_an_image_gone_between_listing_and_reading_is_an_error_not_a_smaller_dataset(tmp_path):
    from visionops.data.folders import Placement
    from visionops.data.shards import ShardWriter
    from visionops.data.sources import pack_placements
    from visionops.errors import VisionOpsError

    placements = [Placement("train", "cat", f"{n}.jpg", f"cat/{n}.jpg") for n in range(3)]

    def read(handles):  # the source lost cat/1.jpg after it was listed
        yield from ((handle, b"\xff\xd8") for handle in handles if handle != "cat/1.jpg")

    gone = r"1 image\(s\) listed in photos were gone"
    with pytest.raises(VisionOpsError, match=gone) as err, ShardWriter(tmp_path / "raw") as shards:
        pack_placements(shards, placements, read, progress=False, where="photos")
    assert "first: cat/1.jpg" in str(err.value) and "dvc repro -f -s download" in err.value.fix


def test_dot_slash_members_and_a_root_entry_plan_like_plain_names(tmp_path):
    """`tar -czf x.tgz .` writes `./` and `./pets/train/cat/0.png`: the same tree, the same plan
    (the listing's keys are normalised strings, '' for the top)."""
    from visionops.data.archive import archive_listing
    from visionops.data.folders import plan_splits

    files = class_tree(per_class=3)
    plain, dotted = tmp_path / "plain.tgz", tmp_path / "dotted.tgz"
    plain.write_bytes(tgz(files))
    with tarfile.open(dotted, "w:gz") as tar:
        for folder in (".", "./pets"):
            tar.addfile(_dir_info(folder))
        for name, data in files.items():
            info = tarfile.TarInfo(f"./{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    classes, placements = plan_splits(archive_listing(plain, limits()), 0.2, 0, "plain")
    dot_classes, dot_placements = plan_splits(archive_listing(dotted, limits()), 0.2, 0, "dotted")
    assert classes == dot_classes == ["cat", "dog"]
    assert [(p.split, p.label, p.name) for p in placements] == [
        (p.split, p.label, p.name) for p in dot_placements
    ]
    assert len(placements) == 12 and {p.handle.removeprefix("./") for p in dot_placements} == set(files)


def _dir_info(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    return info


def test_a_growing_folder_keeps_every_image_on_its_side_of_the_split():
    """Issue 33: adding, removing or relabelling images moves no other image between train and
    test (a reshuffle would put the champion's training images in the candidate's test set);
    a changed seed is a new split, and every class keeps images on both sides."""
    from visionops.data.folders import listing_of, plan_splits

    def sides(files: dict[str, str], seed: int = 0) -> dict[str, str]:
        _, placements = plan_splits(listing_of(files.items()), 0.2, seed, "photos")
        return {p.handle: p.split for p in placements}

    files = {f"{c}/{c}{i}.jpg": f"{c}/{c}{i}.jpg" for c in ("cat", "dog", "emu") for i in range(300)}
    before = sides(files)
    test_share = sum(side == "test" for side in before.values()) / len(before)
    assert 0.15 < test_share < 0.25, test_share
    grown = sides(files | {f"cat/new{i}.jpg": f"cat/new{i}.jpg" for i in range(30)})
    assert {path: grown[path] for path in before} == before
    shrunk = sides({path: handle for path, handle in files.items() if not path.endswith("7.jpg")})
    assert all(before[path] == side for path, side in shrunk.items())
    relabelled = sides({path.replace("emu/emu1", "dog/emu1"): handle for path, handle in files.items()})
    assert relabelled == before  # handles are the old paths: emu1*.jpg, now in dog/
    assert sides(files, seed=1) != before
    tiny = sides({"a/1.jpg": "a/1.jpg", "a/2.jpg": "a/2.jpg", "b/1.jpg": "b/1.jpg", "b/2.jpg": "b/2.jpg"})
    assert sorted(tiny.values()) == ["test", "test", "train", "train"]
    with pytest.raises(VisionOpsError, match="class 'lonely' has 1 image") as refused:
        sides({"a/1.jpg": "a/1.jpg", "a/2.jpg": "a/2.jpg", "lonely/1.jpg": "lonely/1.jpg"})
    assert "at least 2 images" in str(refused.value)
