"""Model factory and the pickle-free model file: round trips, pruned shapes, refused payloads."""

import pickle

import pytest
import torch

from visionops.compression.prune import count_macs_params, prune_channels
from visionops.errors import VisionOpsError
from visionops.models.serialize import load_model, save_model
from visionops.models.zoo import create_model

SPEC = {"arch": "simple_cnn", "in_channels": 3, "num_classes": 5, "width": 8, "dropout": 0.0}


def test_create_model_outputs_logits_per_class():
    model = create_model(SPEC).eval()
    assert model(torch.randn(4, 3, 12, 12)).shape == (4, 5)


def test_round_trip_is_exact(tmp_path):
    model = create_model(SPEC).eval()
    save_model(tmp_path / "m.pt", model, SPEC, {"classes": list("abcde")})
    loaded, payload = load_model(tmp_path / "m.pt")
    x = torch.randn(2, 3, 12, 12)
    assert torch.equal(model(x), loaded(x))
    assert payload["meta"]["classes"] == list("abcde") and payload["spec"] == SPEC


def test_pruned_model_reloads_with_its_smaller_shapes(tmp_path):
    model = create_model(SPEC).eval()
    example = torch.randn(2, 3, 12, 12)
    macs, params = count_macs_params(model, example)
    prune_channels(model, example, 0.5)
    macs_p, params_p = count_macs_params(model, example)
    assert params_p < params / 2.5 and macs_p < macs / 2.5
    save_model(tmp_path / "p.pt", model, SPEC, {})
    loaded, _ = load_model(tmp_path / "p.pt")
    assert torch.equal(model(example), loaded(example))
    assert loaded.head.in_features == model.head.in_features < 16


class _Exploit:
    def __reduce__(self):
        import pathlib

        return (pathlib.Path.touch, (pathlib.Path(_Exploit.marker),))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_swapped_file_with_pickle_payload_is_refused_not_executed(tmp_path):
    _Exploit.marker = str(tmp_path / "pwned")
    bad = tmp_path / "model.pt"
    with open(bad, "wb") as fh:
        pickle.dump({"format": "visionops-model/1", "spec": SPEC, "state_dict": _Exploit()}, fh)
    with pytest.raises(VisionOpsError, match=r"refusing to load"):
        load_model(bad)
    assert not (tmp_path / "pwned").exists()


def test_missing_model_file_says_to_train_first(tmp_path):
    with pytest.raises(VisionOpsError, match=r"run the train stage"):
        load_model(tmp_path / "absent.pt")
