"""Iterative pruning with fine-tunes between steps, a MACs target, global ranking, and
distillation from the unpruned teacher, on the trained digits CNN."""

import copy

import pytest
import torch

from visionops.compression.prune import prune_iteratively
from visionops.config import TrainParams
from visionops.data.loader import ImageBatches
from visionops.data.prepared import to_model_input
from visionops.device import resolve_device
from visionops.training.distill import Distillation
from visionops.training.loop import fit


@pytest.fixture
def model_and_example(trained, digits_arrays):
    model, _, meta = trained
    example = torch.from_numpy(to_model_input(digits_arrays["test_x"][:2], meta))
    return copy.deepcopy(model), example


def test_steps_reach_the_ratio_gradually_with_a_fine_tune_after_each(model_and_example):
    model, example = model_and_example
    tuned = []
    log = prune_iteratively(model, example, 0.6, steps=3, after_step=lambda m: tuned.append(m))
    assert [row["step"] for row in log] == [1, 2, 3] and len(tuned) == 3
    ratios = [row["macs_ratio"] for row in log]
    assert ratios[0] > ratios[1] > ratios[2] and ratios[2] < 0.3
    assert model(example).shape == (2, 10)


def test_macs_target_stops_as_soon_as_it_is_met(model_and_example):
    model, example = model_and_example
    log = prune_iteratively(model, example, 0.8, steps=10, target_macs_ratio=0.5)
    assert log[-1]["macs_ratio"] <= 0.5 < log[-2]["macs_ratio"] and len(log) < 10


def test_global_pruning_ranks_channels_across_layers(model_and_example):
    model, example = model_and_example
    uniform = copy.deepcopy(model)
    prune_iteratively(uniform, example, 0.5)
    prune_iteratively(model, example, 0.5, global_pruning=True)
    widths = lambda m: [c.out_channels for c in m.modules() if isinstance(c, torch.nn.Conv2d)]  # noqa: E731
    assert widths(model) != widths(uniform)


def test_distillation_loss_is_zero_when_the_student_matches_the_teacher():
    teacher = torch.nn.Linear(4, 3)
    x = torch.randn(8, 4)
    distill = Distillation(teacher, temperature=3.0, alpha=1.0)
    assert distill(torch.tensor(5.0), teacher(x).detach(), x).item() == pytest.approx(0.0, abs=1e-6)
    assert distill(torch.tensor(5.0), torch.zeros(8, 3), x).item() > 0.0
    assert Distillation(teacher, alpha=0.0)(torch.tensor(5.0), torch.zeros(8, 3), x).item() == 5.0


def test_fine_tune_with_distillation_recovers_a_pruned_model(trained, digits_arrays):
    model, _, meta = trained
    x = to_model_input(digits_arrays["test_x"], meta)
    student = copy.deepcopy(model)
    prune_iteratively(student, torch.from_numpy(x[:2]), 0.6)
    setup = resolve_device("cpu")
    data = ImageBatches(
        digits_arrays["train_x"], digits_arrays["train_y"], meta["mean"], meta["std"], setup.device
    )

    def accuracy(net):
        with torch.inference_mode():
            return (net.eval()(torch.from_numpy(x)).argmax(1).numpy() == digits_arrays["test_y"]).mean()

    before = accuracy(student)
    fit(
        student,
        data,
        None,
        TrainParams(epochs=2, lr=0.005, crop_padding=0),
        setup,
        progress=False,
        distill=Distillation(copy.deepcopy(model)),
    )
    assert accuracy(student.cpu()) > max(before, 0.8)
