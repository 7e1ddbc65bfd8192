"""Presets are overrides (issue 34): a preset names only the keys it changes, each one that
params.yaml has; `visionops preset` writes them into params.yaml with its comments kept."""

import shutil
from pathlib import Path

import pytest
import yaml

from visionops.__main__ import main as visionops
from visionops.cli.preset import merged, preset_values
from visionops.config import load_params
from visionops.errors import VisionOpsError

ROOT = Path(__file__).resolve().parents[1]
PRESETS = sorted((ROOT / "params").glob("*.yaml"))


@pytest.mark.parametrize("preset", PRESETS, ids=[p.name for p in PRESETS])
def test_every_preset_changes_only_keys_params_yaml_has_into_valid_params(preset):
    values = preset_values(preset, ROOT / "params.yaml")
    assert values and len(preset.read_text().splitlines()) <= 40
    result = merged(preset, ROOT / "params.yaml")
    assert set(result) == set(yaml.safe_load((ROOT / "params.yaml").read_text()))  # nothing dropped


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("train:\n  lrr: 0.1\n", r"'train\.lrr' is not a key of"),
        ("trian:\n  lr: 0.1\n", "'trian' is not a section"),
    ],
)
def test_a_preset_key_params_yaml_lacks_is_refused_by_name(tmp_path, text, expected):
    preset = tmp_path / "typo.yaml"
    preset.write_text(text)
    with pytest.raises(VisionOpsError, match=expected):
        preset_values(preset, ROOT / "params.yaml")


def test_a_preset_value_the_schema_refuses_is_refused_before_writing(tmp_path):
    params = shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    before = Path(params).read_bytes()
    preset = tmp_path / "bad.yaml"
    preset.write_text("train:\n  epochs: -3\n")
    assert visionops(["preset", str(preset), "--params", str(params)]) == 1
    assert Path(params).read_bytes() == before


def test_visionops_preset_writes_the_values_and_keeps_the_comments(tmp_path, capsys):
    params = Path(shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml"))
    preset = ROOT / "params" / "cifar10-fast.yaml"
    assert visionops(["preset", str(preset), "--params", str(params), "--print"]) == 0
    assert "-S model.arch=resnet9" in capsys.readouterr().out
    assert visionops(["preset", str(preset), "--params", str(params)]) == 0
    loaded = load_params(params, "data", "model", "train", "tune")
    assert (
        loaded["model"].arch == "resnet9" and loaded["train"].lr == 0.4 and loaded["data"].source == "cifar10"
    )
    assert loaded["tune"].trials == load_params(ROOT / "params.yaml", "tune")["tune"].trials  # kept
    assert "# visionops parameters: one section per stage" in params.read_text()


@pytest.mark.parametrize(
    "text",
    [
        "train:\n  lr: &l [1, 1]\n  batch_size: *l\n",
        "augment:\n  policy:\n    - name: HorizontalFlip\n      params: &p {p: 0.5}\n"
        "    - name: HorizontalFlip\n      params: *p\n",
        "train:\n  lr: 0.1\ntrain:\n  lr: 0.2\n",
    ],
)
def test_a_preset_with_an_alias_or_a_section_twice_changes_nothing(tmp_path, capsys, text):
    """Issue 47 rows 17 and 25: an alias inside augment.policy[].params was written into
    params.yaml, where `dvc status` then grew without bound."""
    params = tmp_path / "params.yaml"
    shutil.copy(ROOT / "params.yaml", params)
    before = params.read_bytes()
    (tmp_path / "bad.yaml").write_text(text)
    assert visionops(["preset", str(tmp_path / "bad.yaml"), "--params", str(params)]) == 1
    err = capsys.readouterr().err
    assert "is not valid YAML" in err and "Traceback" not in err, err
    assert params.read_bytes() == before
    assert visionops(["preset", str(tmp_path), "--params", str(params)]) == 1
    assert "is a folder, not a params file" in capsys.readouterr().err
