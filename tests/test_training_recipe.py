"""Issue 36: the fast-training recipe's options (airbench94's parts), each on its own: logit
scaling, identity and whitening initialisation, the BatchNorm biases' learning rate, alternating
flip, and test-time augmentation as evaluate scores it and the exported graph predicts."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pydantic import ValidationError
from torch import nn

from visionops.config import ModelParams, TrainParams
from visionops.data.loader import ImageBatches
from visionops.models.recipe import first_conv, whiten_first_conv_
from visionops.models.tta import AveragedViews, with_tta
from visionops.models.zoo import create_model
from visionops.training.batch_augment import alternating_flips, augment_batch

RESNET9 = {"arch": "resnet9", "in_channels": 3, "num_classes": 10, "width": 32, "dropout": 0.0}


def _model(**recipe) -> nn.Module:
    torch.manual_seed(0)
    return create_model(RESNET9 | recipe).eval()


def test_logit_scale_multiplies_the_logits_and_adds_no_weight():
    plain, scaled = _model(), _model(logit_scale=1 / 9)
    assert plain.state_dict().keys() == scaled.state_dict().keys()
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(scaled(x), plain(x) / 9, atol=1e-6)


def test_recipe_options_are_refused_for_torchvision_backbones():
    with pytest.raises(ValidationError, match=r"model.whiten_init apply to the scratch networks.*resnet18"):
        ModelParams(arch="resnet18", whiten_init=True)
    assert ModelParams(arch="resnet18", tta="flip").tta == "flip"  # TTA wraps any network
    with pytest.raises(ValidationError):
        TrainParams(hflip="sometimes")
    assert TrainParams(hflip="alternating").hflip == "alternating"


def test_the_spec_names_only_the_recipe_options_that_are_set():
    from visionops.data.prepared import PreparedMeta
    from visionops.training.setup import model_spec

    meta = PreparedMeta(
        classes=["a", "b"], image_size=8, channels=3, resize="bilinear", counts={"train": 10, "test": 4},
        mean=[0.5] * 3, std=[0.2] * 3, copies=0, source="test",
    )  # fmt: skip
    assert set(model_spec(ModelParams(), meta)) == {
        "arch",
        "in_channels",
        "num_classes",
        "image_size",
        "width",
        "dropout",
        "pretrained",
    }  # fmt: skip  (a default model's file keeps its bytes)
    spec = model_spec(ModelParams(arch="resnet9", tta="flip", logit_scale=0.5), meta)
    assert spec["tta"] == "flip" and spec["logit_scale"] == 0.5 and "whiten_init" not in spec


def test_dirac_init_makes_each_conv_pass_its_input_through():
    model = _model(dirac_init=True)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 8
    for conv in convs:
        x = torch.randn(2, conv.in_channels, 6, 6)
        out = nn.functional.conv2d(x, conv.weight, padding=1)
        assert torch.allclose(out[:, : conv.in_channels], x, atol=1e-6)
    plain = [m for m in _model().modules() if isinstance(m, nn.Conv2d)][1]  # without the option
    x = torch.randn(2, plain.in_channels, 6, 6)
    assert not torch.allclose(nn.functional.conv2d(x, plain.weight, padding=1)[:, : plain.in_channels], x)


def _correlated_images(n: int = 64) -> torch.Tensor:
    torch.manual_seed(1)
    x = torch.randn(n, 3, 16, 16)
    x[:, 1] = 0.8 * x[:, 0] + 0.2 * x[:, 1]  # channels 0 and 1 strongly correlated
    return x + 0.5 * x.roll(1, dims=3)  # and each pixel with its left neighbour


def test_whitening_decorrelates_what_the_first_conv_sees():
    model = _model(width=64)
    before = first_conv(model).weight.detach().clone()
    images = _correlated_images()
    set_filters = whiten_first_conv_(model, images)
    weight = first_conv(model).weight.detach()
    assert set_filters == 54  # 27 patch dimensions (3 channels x 3 x 3), as +/- pairs; 64 filters
    assert torch.equal(weight[27:54], -weight[:27]) and torch.equal(weight[54:], before[54:])
    out = nn.functional.conv2d(images, weight[:27])  # the patches' 27 whitened coordinates
    flat = out.permute(0, 2, 3, 1).reshape(-1, 27).double()
    covariance = flat.T @ flat / len(flat)
    variances, off_diagonal = covariance.diag(), covariance - torch.diag(covariance.diag())
    assert off_diagonal.abs().max() < 1e-4  # decorrelated
    assert ((variances > 0.95) & (variances <= 1)).all()  # unit variance (eps damps it slightly)
    raw = nn.functional.conv2d(images, before[:27]).permute(0, 2, 3, 1).reshape(-1, 27).double()
    raw_covariance = raw.T @ raw / len(raw)
    assert (raw_covariance - torch.diag(raw_covariance.diag())).abs().max() > 0.01  # Kaiming's is not


def test_a_narrow_first_conv_keeps_the_strongest_directions():
    model = _model(width=8)  # 8 filters: the top 4 eigen-directions as +/- pairs
    assert whiten_first_conv_(model, _correlated_images()) == 8
    top = first_conv(model).weight.detach()[:4].flatten(1)
    wide = _model(width=64)
    whiten_first_conv_(wide, _correlated_images())
    assert torch.allclose(top, first_conv(wide).weight.detach()[:4].flatten(1), atol=1e-5)


def test_build_model_whitens_from_the_training_split_only_when_asked(digits_arrays):
    from visionops.training.setup import build_model

    train = ImageBatches(
        digits_arrays["train_x"], digits_arrays["train_y"], [0.3], [0.3], torch.device("cpu")
    )
    spec = {"arch": "simple_cnn", "in_channels": 1, "num_classes": 10, "width": 16, "dropout": 0.0}
    torch.manual_seed(0)
    plain = build_model(spec, train)
    torch.manual_seed(0)
    whitened = build_model(spec | {"whiten_init": True}, train)
    torch.manual_seed(0)
    assert all(
        torch.equal(a, b)
        for a, b in zip(plain.state_dict().values(), create_model(spec).state_dict().values(), strict=True)
    )
    changed = (first_conv(plain).weight != first_conv(whitened).weight).flatten(1).any(1)
    assert changed.sum() == 16  # 9 patch dimensions for grey 3x3: 16 of 16 filters (8 pairs)


def test_whitening_samples_every_class_of_a_split_stored_class_by_class(monkeypatch):
    """Prepared splits are stored class by class: the sample must span the split, not be the
    first 5,000 images (all one class on CIFAR-10)."""
    from visionops.training import setup

    labels = np.repeat(np.arange(4), 50)  # 200 images, class by class
    images = np.repeat(labels.astype(np.uint8)[:, None, None, None] * 60, 8, axis=1).repeat(8, 2)
    train = ImageBatches(images, labels, [0.5], [0.5], torch.device("cpu"))
    sampled = []
    monkeypatch.setattr(setup, "WHITENING_IMAGES", 20)
    monkeypatch.setattr("visionops.models.recipe.whiten_first_conv_", lambda model, x: sampled.append(x) or 0)
    spec = {"arch": "simple_cnn", "in_channels": 1, "num_classes": 4, "width": 8, "dropout": 0.0}
    setup.build_model(spec | {"whiten_init": True}, train)
    values = torch.unique(sampled[0][:, 0, 0, 0])
    assert len(sampled[0]) == 20 and len(values) == 4  # all four classes' pixels are in the sample


@pytest.mark.parametrize("schedule", ["onecycle", "cosine"])
def test_batchnorm_biases_learn_faster_by_their_scale(schedule):
    from visionops.training.optim import build_optimizer, build_scheduler

    model = _model(width=4)
    bn_biases = {id(m.bias) for m in model.modules() if isinstance(m, nn.BatchNorm2d)}
    cfg = TrainParams(optimizer="sgd", lr=0.4, schedule=schedule, epochs=2, bn_bias_lr_scale=64.0)
    optimizer = build_optimizer(model, cfg)
    scheduler = build_scheduler(optimizer, cfg, 10)
    assert {id(p) for p in optimizer.param_groups[2]["params"]} == bn_biases
    for _ in range(19):
        lrs = [group["lr"] for group in optimizer.param_groups]
        assert lrs[2] == pytest.approx(64 * lrs[0]) and lrs[1] == pytest.approx(lrs[0])
        optimizer.step()
        scheduler.step()
    default = build_optimizer(model, TrainParams(optimizer="sgd", lr=0.4))
    assert len(default.param_groups) == 2  # unchanged without the option


def test_alternating_flip_shows_every_image_both_ways_in_two_epochs():
    first, second, third = (alternating_flips(1000, 7, epoch) for epoch in (1, 2, 3))
    assert torch.equal(second, ~first) and torch.equal(third, first)
    assert 400 < int(first.sum()) < 600
    assert not torch.equal(alternating_flips(1000, 8, 1), first)
    ramp = torch.arange(4, dtype=torch.uint8).repeat(6, 1, 4, 1)
    flips = torch.tensor([True, False, True, False, False, True])
    out = augment_batch(ramp, 0, "alternating", torch.Generator().manual_seed(0), flips)
    assert torch.equal(out[flips], ramp[flips].flip(3)) and torch.equal(out[~flips], ramp[~flips])


@pytest.mark.parametrize("resident", [True, False])
def test_batches_can_say_where_each_image_sits(digits_arrays, resident):
    x, y = digits_arrays["train_x"], digits_arrays["train_y"]
    rows = np.arange(5, 300, 2)
    data = ImageBatches(x, y, [0.3], [0.3], torch.device("cpu"), rows, resident)
    seen = []
    for images, labels, positions in data.batches(64, torch.Generator().manual_seed(3), positions=True):
        assert torch.equal(labels, torch.from_numpy(y[rows][positions.numpy()]).long())
        assert np.array_equal(images.permute(0, 2, 3, 1).numpy(), x[rows][positions.numpy()])
        seen += positions.tolist()
    assert sorted(seen) == list(range(len(rows)))


def test_fit_flips_each_image_in_alternate_epochs(monkeypatch):
    """Images whose pixels say which image they are: training records, per epoch, which of them
    augment_batch was told to flip."""
    from visionops.device import resolve_device
    from visionops.training import loop

    n = 120
    x = np.repeat(np.arange(n, dtype=np.uint8)[:, None, None, None], 4, axis=1).repeat(4, 2)
    data = ImageBatches(x, np.arange(n) % 2, [0.5], [0.5], torch.device("cpu"))
    flipped: dict[int, dict[int, bool]] = {}
    real, epoch = loop.augment_batch, [1]

    def spy(images, padding, hflip, generator, flips=None):
        for image, flip in zip(images[:, 0, 0, 0].tolist(), flips.tolist(), strict=True):
            flipped.setdefault(epoch[0], {})[image] = flip
        return real(images, padding, hflip, generator, flips)

    def next_epoch(_row):
        epoch[0] += 1

    monkeypatch.setattr(loop, "augment_batch", spy)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))
    cfg = TrainParams(epochs=3, batch_size=32, hflip="alternating", crop_padding=0, val_fraction=0.0)
    loop.fit(model, data, None, cfg, resolve_device("cpu", amp=False), next_epoch, progress=False)
    assert sorted(flipped) == [1, 2, 3] and all(len(flipped[e]) == n for e in (1, 2, 3))
    assert all(flipped[1][i] != flipped[2][i] and flipped[1][i] == flipped[3][i] for i in range(n))


def test_flip_tta_predicts_the_same_for_an_image_and_its_mirror():
    model = _model()
    x = torch.randn(3, 3, 32, 32)
    tta = with_tta(model, {"tta": "flip"})
    with torch.no_grad():
        assert torch.allclose(tta(x), tta(x.flip(3)), atol=1e-5)
        assert torch.allclose(tta(x), 0.5 * (model(x) + model(x.flip(3))), atol=1e-6)
        assert not torch.allclose(model(x), model(x.flip(3)), atol=1e-3)
    assert with_tta(model, {}) is model and with_tta(model, {"tta": "none"}) is model


def test_flip_translate_tta_averages_the_shifted_views():
    model = _model()
    x = torch.randn(2, 3, 32, 32)
    padded = nn.functional.pad(x, (1, 1, 1, 1), mode="reflect")
    with torch.no_grad():

        def mirrored(v):
            return 0.5 * (model(v) + model(v.flip(3)))

        expected = 0.5 * mirrored(x) + 0.25 * (
            mirrored(padded[..., :32, :32]) + mirrored(padded[..., 2:, 2:])
        )
        assert torch.allclose(with_tta(model, {"tta": "flip_translate"})(x), expected, atol=1e-5)
    with pytest.raises(ValueError, match="unknown test-time augmentation"):
        AveragedViews(model, "rotate")


@pytest.mark.slow
def test_the_exported_graph_predicts_with_the_models_tta(tmp_path):
    """export puts the views inside the ONNX graph: ONNX Runtime gives the wrapped model's
    logits, mirror-invariant for flip, and the embedding is the views' mean."""
    from visionops.export.classifier import OnnxClassifier
    from visionops.export.deployable import Deployable, onnx_metadata
    from visionops.export.onnx_export import export_onnx

    model = _model(width=8)
    meta = {"classes": [str(i) for i in range(10)], "image_size": 32, "channels": 3}
    meta |= {"mean": [0.5] * 3, "std": [0.25] * 3}
    path = tmp_path / "model.onnx"
    deployable = Deployable(with_tta(model, {"tta": "flip"}), meta["mean"], meta["std"]).eval()
    pixels = torch.randint(0, 256, (5, 32, 32, 3), dtype=torch.uint8)
    export_onnx(deployable, pixels[:2], path, 20, onnx_metadata(meta, "bilinear"))
    onnx = OnnxClassifier(path)
    with torch.no_grad():
        logits, embedding = deployable(pixels)
        features = model.features((pixels.permute(0, 3, 1, 2).float() / 255 - 0.5) / 0.25)
        mirrored = model.features((pixels.flip(2).permute(0, 3, 1, 2).float() / 255 - 0.5) / 0.25)
    assert np.allclose(onnx.logits(pixels.numpy()), logits.numpy(), atol=1e-4)
    assert np.allclose(onnx.logits(pixels.numpy()), onnx.logits(pixels.flip(2).numpy()), atol=1e-4)
    assert torch.allclose(embedding, 0.5 * (features + mirrored), atol=1e-5)
