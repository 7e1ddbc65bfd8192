"""atomic_path: the one write-then-rename mechanism every output file goes through."""

from pathlib import Path

import pytest

from visionops.io import atomic_path, write_json


def test_success_replaces_the_file_and_leaves_no_temp(tmp_path: Path):
    target = tmp_path / "sub" / "model.onnx"
    with atomic_path(target, suffix=".onnx") as tmp:
        assert tmp.name.endswith(".onnx") and tmp.parent == target.parent
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new"
    assert [p.name for p in target.parent.iterdir()] == ["model.onnx"]


def test_failure_keeps_the_previous_file_and_removes_the_temp(tmp_path: Path):
    target = tmp_path / "report.json"
    write_json(target, {"version": 1})
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half written")
        raise RuntimeError("killed mid-write")
    assert target.read_text() == '{\n  "version": 1\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]
