"""Model factory and the pickle-free model file: round trips, pruned shapes, refused payloads."""

import pickle

import pytest
import torch
from torch import nn

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


@pytest.mark.parametrize(
    "arch", ["resnet9", "resnet_cifar", "resnet18", "mobilenet_v3_small", "efficientnet_b0"]
)
@pytest.mark.parametrize("channels", [1, 3])
def test_zoo_builds_every_arch_for_small_inputs(arch, channels):
    from visionops.models.zoo import classifier_head

    spec = {
        "arch": arch,
        "in_channels": channels,
        "num_classes": 7,
        "image_size": 32,
        "width": 8,
        "dropout": 0.1,
    }
    model = create_model(spec).eval()
    assert model(torch.randn(2, channels, 32, 32)).shape == (2, 7)
    assert classifier_head(model).out_features == 7


def test_small_input_stem_keeps_resolution_large_input_stem_downsamples():
    small = create_model({"arch": "resnet18", "in_channels": 3, "num_classes": 2, "image_size": 32})
    large = create_model({"arch": "resnet18", "in_channels": 3, "num_classes": 2, "image_size": 224})
    assert small.conv1.stride == (1, 1) and isinstance(small.maxpool, torch.nn.Identity)
    assert large.conv1.stride == (2, 2) and large.conv1.kernel_size == (7, 7)


@pytest.mark.parametrize("arch", ["resnet9", "mobilenet_v3_small"])
def test_pruned_backbones_round_trip_through_the_model_file(arch, tmp_path):
    spec = {"arch": arch, "in_channels": 3, "num_classes": 4, "image_size": 32, "width": 8, "dropout": 0.0}
    model = create_model(spec).eval()
    example = torch.randn(2, 3, 32, 32)
    before = count_macs_params(model, example)
    prune_channels(model, example, 0.5)
    assert count_macs_params(model, example)[0] < before[0] / 2
    save_model(tmp_path / "p.pt", model, spec, {})
    loaded, _ = load_model(tmp_path / "p.pt")
    assert torch.allclose(model(example), loaded(example), atol=1e-6)


def test_pretrained_offline_names_the_weights_file_and_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("https_proxy", "http://127.0.0.1:9")  # nothing listens: fail fast, offline
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    original = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    try:
        with pytest.raises(VisionOpsError) as err:
            create_model({"arch": "resnet18", "in_channels": 3, "num_classes": 2, "pretrained": True})
    finally:
        torch.hub.set_dir(original)
    text = str(err.value)
    assert "resnet18-f37072fd.pth" in text and str(tmp_path / "hub" / "checkpoints") in text
    assert "model.pretrained: false" in text


def test_global_max_pool_matches_adaptive_max_pool():
    """ResNet-9's pool is `amax` (exports on torch 2.11, where AdaptiveMaxPool2d(1) did not):
    the same numbers as AdaptiveMaxPool2d(1) + Flatten, so trained checkpoints keep their meaning."""
    from visionops.models.classifier import GlobalMaxPool

    x = torch.randn(3, 5, 7, 6)
    expected = nn.Sequential(nn.AdaptiveMaxPool2d(1), nn.Flatten())(x)
    assert torch.equal(GlobalMaxPool()(x), expected)
