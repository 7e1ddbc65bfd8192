"""params.yaml schema: the shipped file is valid; typos and wrong types name the key."""

from pathlib import Path

import pytest
import yaml

from visionops.config import SECTIONS, flatten, load_params
from visionops.errors import VisionOpsError

ROOT = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, params: dict) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def test_shipped_params_are_valid_and_complete():
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert set(raw) == set(SECTIONS)
    loaded = load_params(ROOT / "params.yaml", *SECTIONS)
    assert loaded["train"].epochs >= 1 and loaded["data"].source == "digits"


def test_unknown_key_names_key_section_allowed_keys_and_suggestion(tmp_path):
    path = write(tmp_path, {"train": {"lrr": 0.1}})
    with pytest.raises(VisionOpsError) as err:
        load_params(path, "train")
    text = str(err.value)
    assert "unknown key 'train.lrr'" in text
    assert "did you mean 'lr'" in text
    assert "allowed keys in 'train'" in text and "batch_size" in text


def test_wrong_type_names_key_and_expected_type(tmp_path):
    path = write(tmp_path, {"train": {"epochs": "many"}})
    with pytest.raises(VisionOpsError) as err:
        load_params(path, "train")
    assert "train.epochs = 'many'" in str(err.value)
    assert "set 'train.epochs' to int" in str(err.value)


def test_unknown_section_is_refused(tmp_path):
    path = write(tmp_path, {"trian": {"lr": 0.1}})
    with pytest.raises(VisionOpsError, match=r"unknown section 'trian'.*did you mean 'train'"):
        load_params(path, "train")


def test_only_requested_sections_are_validated(tmp_path):
    path = write(tmp_path, {"train": {"lrr": 1}, "data": {"seed": 3}})
    assert load_params(path, "data")["data"].seed == 3


def test_out_of_range_value_is_refused(tmp_path):
    path = write(tmp_path, {"data": {"test_fraction": 1.5}})
    with pytest.raises(VisionOpsError, match=r"data.test_fraction"):
        load_params(path, "data")


def test_flatten_uses_dotted_keys():
    assert flatten({"a": {"b": 1, "c": {"d": 2}}, "e": 3}) == {"a.b": 1, "a.c.d": 2, "e": 3}
