"""params.yaml schema: the shipped file is valid; typos and wrong types name the key."""

import re
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
    assert "set 'train.epochs' to an integer >= 1" in str(err.value)


PYDANTIC_WORDS = {"Literal", "int", "float", "str", "bool", "NoneType", "Optional", "typing"}


@pytest.mark.parametrize(
    ("section", "values", "fix"),
    [
        ("train", {"lr": -1}, "set 'train.lr' to a number > 0"),
        ("train", {"epochs": True}, "set 'train.epochs' to an integer >= 1"),  # not read as 1
        ("train", {"epochs": 3.5}, "set 'train.epochs' to an integer >= 1"),  # not truncated to 3
        ("model", {"arch": "vgg99"}, "set 'model.arch' to one of: simple_cnn, resnet9, resnet_cifar"),
        ("augment", {"channels": 2}, "set 'augment.channels' to one of: 1, 3"),
        ("data", {"test_fraction": 1.5}, "set 'data.test_fraction' to a number > 0 and < 1"),
        ("compress", {"target_macs_ratio": 2}, "to a number > 0 and < 1 or null"),
        ("data", {"allow_http": "yes"}, "set 'data.allow_http' to true or false"),
        ("data", {"url": 5}, "set 'data.url' to text or null"),
        ("data", {"checksums": {"train.gz": 5}}, "set 'data.checksums.train.gz' to text"),
        ("tracking", {"experiment": ""}, "to text of at least 1 character(s)"),
        ("augment", {"policy": [{"name": 3}]}, "set 'augment.policy.0.name' to text"),
        ("augment", {"policy": "Affine"}, "to a list of {name, params} entries"),
        ("validate", {"leakage_severity": "fatal"}, "one of: critical, warning, info"),
    ],
)
def test_every_constraint_kind_is_stated_in_words(tmp_path, section, values, fix):
    with pytest.raises(VisionOpsError) as err:
        load_params(write(tmp_path, {section: values}), section)
    fix_line = str(err.value).splitlines()[-1]
    assert fix in fix_line
    words = set(re.findall(r"\w+", fix_line.split(" to ", 1)[1]))
    assert not words & PYDANTIC_WORDS, fix_line


def test_unknown_key_inside_a_policy_step_names_the_step_keys(tmp_path):
    path = write(tmp_path, {"augment": {"policy": [{"name": "Affine", "parms": {}}]}})
    with pytest.raises(
        VisionOpsError,
        match=r"(?s)did you mean 'params'.*\n.*allowed keys in 'augment.policy.0': name, params",
    ):
        load_params(path, "augment")


def test_yaml_1_2_floats_are_numbers_as_dvc_writes_them(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("train:\n  lr: 1e-3\n  weight_decay: 5E-4\n")
    loaded = load_params(path, "train")["train"]
    assert (loaded.lr, loaded.weight_decay) == (0.001, 0.0005)


def test_binary_params_file_is_named_with_a_fix(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe" * 10)
    with pytest.raises(VisionOpsError, match=r"(?s)not a UTF-8 text file.*\n  fix: restore it"):
        load_params(path, "train")


def test_empty_params_file_is_refused_not_run_on_defaults(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("# nothing here\n")
    with pytest.raises(VisionOpsError, match="is empty, so every stage would silently run on defaults"):
        load_params(path, "train")


def test_missing_section_is_refused_with_the_default_spelled_out(tmp_path):
    path = write(tmp_path, {"data": {"seed": 3}})
    with pytest.raises(
        VisionOpsError, match=r"(?s)section 'train' is missing.*'train: \{\}' to use every default"
    ):
        load_params(path, "train")
    assert load_params(write(tmp_path, {"train": {}}), "train")["train"].epochs == 8


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


def test_a_registered_model_name_longer_than_mlflow_stores_is_refused_with_the_params(tmp_path):
    """Issue 32: 600 characters reached PostgreSQL as StringDataRightTruncation mid-register."""
    path = write(tmp_path, {"register": {"model_name": "m" * 600}})
    with pytest.raises(VisionOpsError, match=r"register\.model_name") as err:
        load_params(path, "register")
    assert "256" in str(err.value) and "Traceback" not in str(err.value)


BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
    f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
    for i in range(9)
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"train:\n  lr: 0.1\n{BOMB}", r"an alias \(\*a\)"),  # billion laughs: 9^10 items if expanded
        ("train: &t {lr: 0.1}\nmodel: *t\n", r"an alias \(\*t\)"),
        ("train:\n  lr: 0.1\ntrain:\n  lr: 0.2\n", "'train' is given twice"),
        ("train:\n  lr: 0.1\n  lr: 0.2\n", "'lr' is given twice"),
    ],
)
def test_an_alias_or_a_key_twice_is_refused_before_anything_is_expanded(tmp_path, text, expected):
    """Issue 47 rows 17 and 25: an alias bomb grew by ~60 MB/s until killed; a section given twice
    was accepted (the last won)."""
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(VisionOpsError, match=expected) as refused:
        load_params(path, "train")
    assert "is not valid YAML" in str(refused.value) and "fix:" in str(refused.value)


@pytest.mark.parametrize(
    ("section", "values", "cause", "fix"),
    [
        ("model", {"logit_scale": float("inf")}, "model.logit_scale = inf is invalid", "'model.logit_scale'"),
        ("train", {"lr": float("inf")}, "train.lr = inf is invalid", "'train.lr' to a number > 0"),
        ("train", {"lr": float("nan")}, "train.lr = nan is invalid", "'train.lr' to a number > 0"),
        (
            "model",
            {"arch": "resnet18", "whiten_init": True},
            "model.whiten_init apply to the scratch",
            "model.arch",
        ),
    ],
)
def test_infinities_and_section_rules_name_the_key_not_the_section(tmp_path, section, values, cause, fix):
    """Issue 47 rows 23 and 24: `.inf` was accepted (then "diverged ... lower train.lr" for the
    logit scale); a rule over the section named `model.` and printed the whole section."""
    path = write(tmp_path, {section: values})
    with pytest.raises(VisionOpsError) as refused:
        load_params(path, section)
    text = str(refused.value)
    assert cause in text and fix in text.split("fix:")[1], text
    assert "model. " not in text and "{" not in text, text


def test_a_folder_passed_as_params_is_named_as_a_folder(tmp_path):
    with pytest.raises(VisionOpsError, match="is a folder, not a params file"):
        load_params(tmp_path, "train")
