"""Digits source, split and the atomic publish of a data folder."""

from pathlib import Path

from visionops.config import DataParams
from visionops.data.shards import RawImages
from visionops.data.sources import materialize
from visionops.io import publish_dir, read_json, staging_dir_for


def test_digits_become_stratified_class_folders(raw_digits: RawImages):
    assert len(raw_digits) == 1797
    for split in ("train", "test"):
        assert sorted({e.label for e in raw_digits if e.split == split}, key=int) == [
            str(i) for i in range(10)
        ]
    record = read_json(raw_digits.root / "source.json")
    assert sum(record["counts"]["test"].values()) == 360
    for name in record["classes"]:  # every class in both splits, ~20 % in test
        share = record["counts"]["test"][name] / (
            record["counts"]["test"][name] + record["counts"]["train"][name]
        )
        assert 0.15 < share < 0.25


def test_split_is_deterministic_and_seeded(tmp_path: Path):
    def listing(root: Path, seed: int) -> list:
        materialize(DataParams(seed=seed), root)
        return [(e.path, e.member.read()) for e in RawImages(root)]

    assert listing(tmp_path / "a", 1) == listing(tmp_path / "b", 1)
    assert listing(tmp_path / "a2", 1) != listing(tmp_path / "c", 2)


def test_publish_dir_replaces_completely(tmp_path: Path):
    final = tmp_path / "raw"
    final.mkdir()
    (final / "old.txt").write_text("old")
    staging = staging_dir_for(final)
    (staging / "new.txt").write_text("new")
    publish_dir(staging, final)
    assert sorted(p.name for p in final.iterdir()) == ["new.txt"]
    assert not staging.exists() and not (tmp_path / ".raw.old").exists()


def test_leftover_partial_build_is_discarded_and_published_folder_untouched(tmp_path: Path):
    final = tmp_path / "raw"
    final.mkdir()
    (final / "good.txt").write_text("good")
    crashed = staging_dir_for(final)  # an earlier run died while writing here
    (crashed / "half.png").write_bytes(b"\x89PNG")
    fresh = staging_dir_for(final)
    assert fresh == crashed and list(fresh.iterdir()) == []
    assert (final / "good.txt").read_text() == "good"
