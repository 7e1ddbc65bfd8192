"""The GX suites on real digits: clean data passes; each broken case fires the named check."""

import shutil
from pathlib import Path

import pytest

from visionops.config import ValidateParams
from visionops.io import read_json
from visionops.validation.manifest import build_manifest, class_counts
from visionops.validation.report import failure_message, summarize
from visionops.validation.suite import copy_data_docs, run_suites


def validate(raw: Path, workdir: Path, **overrides):
    classes = read_json(raw / "source.json")["classes"]
    manifest = build_manifest(raw, progress=False)
    cfg = ValidateParams(**overrides)
    results, _, site = run_suites(manifest, class_counts(manifest, classes), cfg, classes, workdir)
    return results, summarize(results, manifest), site


def failed(results) -> dict[str, str]:
    return {r.check: r.severity for r in results if not r.success}


@pytest.fixture
def clean_run(raw_digits, tmp_path):
    return validate(raw_digits, tmp_path / "gx")


def test_clean_digits_pass_every_check(clean_run):
    results, summary, _ = clean_run
    assert summary["success"] and summary["rows"] == 1797
    assert failed(results) == {}
    assert summary["failed"] == {"critical": 0, "warning": 0, "info": 0}


def test_truncated_png_fails_decode_check_naming_the_file(raw_digits, tmp_path):
    victim = raw_digits / "train" / "3" / sorted(p.name for p in (raw_digits / "train" / "3").iterdir())[0]
    victim.write_bytes(victim.read_bytes()[:40])
    results, summary, _ = validate(raw_digits, tmp_path / "gx")
    assert failed(results) == {"every file decodes": "critical"}
    assert not summary["success"] and summary["undecodable"] == 1
    message = failure_message(results)
    assert f"train/3/{victim.name}" in message and "fix:" in message


def test_text_file_named_png_is_undecodable(raw_digits, tmp_path):
    (raw_digits / "test" / "5" / "notes.png").write_text("not an image")
    results, _, _ = validate(raw_digits, tmp_path / "gx")
    check = next(r for r in results if r.check == "every file decodes")
    assert not check.success and check.examples == ["test/5/notes.png"]


def test_image_copied_from_train_into_test_is_a_duplicate(raw_digits, tmp_path):
    source = next((raw_digits / "train" / "7").iterdir())
    shutil.copy(source, raw_digits / "test" / "7" / "leak.png")
    results, _, _ = validate(raw_digits, tmp_path / "gx")
    assert failed(results) == {"unique images": "critical"}
    check = next(r for r in results if r.check == "unique images")
    assert "test/7/leak.png" in check.examples and f"train/7/{source.name}" in check.examples


def test_duplicate_severity_can_be_lowered_to_warning(raw_digits, tmp_path):
    source = next((raw_digits / "train" / "7").iterdir())
    shutil.copy(source, raw_digits / "test" / "7" / "leak.png")
    results, summary, _ = validate(raw_digits, tmp_path / "gx", duplicate_severity="warning")
    assert failed(results) == {"unique images": "warning"} and summary["success"]


def test_empty_class_fails_min_images_per_class(raw_digits, tmp_path):
    shutil.rmtree(raw_digits / "test" / "4")
    (raw_digits / "test" / "4").mkdir()
    results, _, _ = validate(raw_digits, tmp_path / "gx")
    assert failed(results) == {"min images per class": "critical"}
    assert next(r for r in results if not r.success).examples == ["test/4"]


def test_too_small_images_are_a_size_warning(raw_digits, tmp_path):
    results, summary, _ = validate(raw_digits, tmp_path / "gx", min_width=9)
    assert failed(results) == {"width in bounds": "warning"} and summary["success"]


def test_missing_split_is_critical(raw_digits, tmp_path):
    shutil.rmtree(raw_digits / "test")
    results, _, _ = validate(raw_digits, tmp_path / "gx")
    assert failed(results)["both splits present"] == "critical"


def test_data_docs_list_the_suites_and_the_failure(raw_digits, tmp_path):
    (raw_digits / "test" / "5" / "notes.png").write_text("not an image")
    _, _, site = validate(raw_digits, tmp_path / "gx")
    index = copy_data_docs(site, tmp_path / "docs")
    html = index.read_text()
    assert "manifest_suite" in html and "class_counts_suite" in html
    pages = "".join(p.read_text() for p in (tmp_path / "docs" / "validations").rglob("*.html"))
    assert "decode_ok" in pages and "notes.png" in pages


def test_rerun_in_same_gx_project_is_idempotent(raw_digits, tmp_path):
    first, _, _ = validate(raw_digits, tmp_path / "gx")
    second, _, _ = validate(raw_digits, tmp_path / "gx")
    assert [r.check for r in first] == [r.check for r in second]
