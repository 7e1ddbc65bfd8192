"""atomic_path: the one write-then-rename mechanism every output file goes through; metrics files."""

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


def test_metrics_files_hold_numbers_only(tmp_path):
    import json

    import numpy as np

    from visionops.io import write_metrics

    write_metrics(
        tmp_path / "m.json",
        {"promoted": True, "acc": np.float32(0.5), "n": np.int64(3), "p_value": None, "delta": float("nan")},
    )
    assert json.loads((tmp_path / "m.json").read_text()) == {"promoted": 1, "acc": 0.5, "n": 3}
    with pytest.raises(TypeError, match="'path' is str, not a number"):
        write_metrics(tmp_path / "bad.json", {"path": "models/model.onnx"})
    assert not (tmp_path / "bad.json").exists()


def test_timing_marks_are_written_once_per_event_and_only_when_asked(tmp_path, monkeypatch):
    """benchmarks/first_epoch.py's marks: nothing without VISIONOPS_TIMINGS; with it, one JSON
    line per event and process (the first training step is marked once, not per step)."""
    import json

    from visionops import timings

    monkeypatch.setattr(timings, "_seen", set())
    monkeypatch.delenv(timings.ENV, raising=False)
    timings.mark("start", "train")
    target = tmp_path / "marks.jsonl"
    monkeypatch.setenv(timings.ENV, str(target))
    for _ in range(3):
        timings.mark("first_step", "train")
    timings.mark("end", "train")
    lines = [json.loads(line) for line in target.read_text().splitlines()]
    assert [(m["event"], m["stage"]) for m in lines] == [("first_step", "train"), ("end", "train")]
    assert lines[0]["t"] <= lines[1]["t"]
