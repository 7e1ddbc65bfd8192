"""Device choice, on-device batch augmentation, and the loop (accuracy, determinism, NaN stop)."""

import math

import numpy as np
import pytest
import torch
from invariants import learned
from torch import nn

from visionops.config import TrainParams
from visionops.data.loader import ImageBatches
from visionops.device import resolve_device
from visionops.errors import VisionOpsError
from visionops.training.batch_augment import augment_batch
from visionops.training.loop import evaluate, fit


def test_auto_device_falls_back_to_cpu_with_bf16_only_where_native():
    from visionops.device import cpu_has_bf16

    setup = resolve_device("auto")
    if not torch.cuda.is_available():
        assert setup.device.type == "cpu" and setup.channels_last
        assert setup.amp_dtype == (torch.bfloat16 if cpu_has_bf16() else None)
    assert resolve_device("cpu", amp=False, channels_last=False).name == "cpu, fp32"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_requested_without_gpu_is_a_clear_error():
    with pytest.raises(VisionOpsError, match=r"(?s)no CUDA GPU.*fix: set train.device: auto"):
        resolve_device("cuda")


def test_translate_moves_pixels_within_padding_and_flip_mirrors():
    images = torch.zeros(64, 1, 5, 5, dtype=torch.uint8)
    images[:, :, 2, 2] = 255
    moved = augment_batch(images, 1, False, torch.Generator().manual_seed(0))
    rows, cols = (moved[:, 0] == 255).nonzero()[:, 1:].T
    assert set(rows.tolist()) == {1, 2, 3} and set(cols.tolist()) == {1, 2, 3}
    assert (moved.flatten(1) == 255).sum(1).eq(1).all()  # no sample lost its pixel
    ramp = torch.arange(4, dtype=torch.uint8).repeat(32, 1, 4, 1)
    flipped = augment_batch(ramp, 0, True, torch.Generator().manual_seed(0))
    mirrored = (flipped == ramp.flip(3)).flatten(1).all(1)
    assert 0 < mirrored.sum() < 32 and ((flipped == ramp).flatten(1).all(1) | mirrored).all()


def _datasets(arrays):
    mean, std = [0.3], [0.3]
    device = torch.device("cpu")
    train = ImageBatches(arrays["train_x"], arrays["train_y"], mean, std, device)
    test = ImageBatches(arrays["test_x"], arrays["test_y"], mean, std, device)
    return train, test


def test_fit_learns_digits_and_is_deterministic(digits_arrays):
    from visionops.models.zoo import create_model

    spec = {"arch": "simple_cnn", "in_channels": 1, "num_classes": 10, "width": 16, "dropout": 0.0}
    train, test = _datasets(digits_arrays)
    cfg = TrainParams(epochs=3, lr=0.01)
    results = []
    for _ in range(2):
        torch.manual_seed(0)
        model = create_model(spec)
        history = fit(model, train, test, cfg, resolve_device("cpu"), progress=False)
        results.append(evaluate(model, nn.CrossEntropyLoss(), test, 256, resolve_device("cpu")))
    assert [row["epoch"] for row in history] == [1, 2, 3]
    assert {"train_loss", "val_accuracy", "lr", "images_per_s"} <= set(history[0])
    assert learned(results[0]["accuracy"], digits_arrays["test_y"])
    assert results[0] == results[1]


class _Exploding(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(64, 10)

    def forward(self, x):
        return self.linear(x.flatten(1)) * float("nan")


def test_nan_loss_stops_with_epoch_step_and_lr(digits_arrays):
    train, _ = _datasets(digits_arrays)
    with pytest.raises(VisionOpsError, match=r"(?s)loss is nan at epoch 1, step 1 \(lr .*lower train.lr"):
        fit(_Exploding(), train, None, TrainParams(epochs=1), resolve_device("cpu"), progress=False)


def test_device_dataset_batches_cover_every_row_once(digits_arrays):
    train, _ = _datasets(digits_arrays)
    seen = torch.cat([labels for _, labels in train.batches(100, torch.Generator().manual_seed(1))])
    assert len(seen) == len(train)
    assert np.array_equal(np.sort(seen.numpy()), np.sort(digits_arrays["train_y"]))


class _StopAfter:
    """on_epoch callback that interrupts training after `epoch` (its checkpoint is saved)."""

    def __init__(self, epoch: int):
        self.epoch = epoch

    def __call__(self, row):
        if row["epoch"] == self.epoch:
            raise KeyboardInterrupt


def _train(arrays, checkpoint=None, job="job", on_epoch=None):
    from visionops.models.zoo import create_model

    spec = {"arch": "simple_cnn", "in_channels": 1, "num_classes": 10, "width": 8, "dropout": 0.2}
    train, test = _datasets(arrays)
    torch.manual_seed(0)
    model = create_model(spec)
    cfg = TrainParams(epochs=3, lr=0.01)
    history = fit(model, train, test, cfg, resolve_device("cpu"), on_epoch, False, checkpoint, job)
    return model, history


def test_resume_after_interruption_equals_uninterrupted_run(digits_arrays, tmp_path):
    reference, ref_history = _train(digits_arrays)
    checkpoint = tmp_path / "last.pt"
    with pytest.raises(KeyboardInterrupt):
        _train(digits_arrays, checkpoint, on_epoch=_StopAfter(1))
    assert checkpoint.is_file()
    resumed, history = _train(digits_arrays, checkpoint)
    for key, value in reference.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key
    assert [r["val_accuracy"] for r in history] == [r["val_accuracy"] for r in ref_history]


def test_checkpoint_of_other_params_is_ignored(digits_arrays, tmp_path, capsys):
    checkpoint = tmp_path / "last.pt"
    with pytest.raises(KeyboardInterrupt):
        _train(digits_arrays, checkpoint, job="old-params", on_epoch=_StopAfter(1))
    _, history = _train(digits_arrays, checkpoint, job="new-params")
    assert [r["epoch"] for r in history] == [1, 2, 3]
    assert "different params" in capsys.readouterr().out


@pytest.mark.slow
def test_two_process_gloo_ddp_matches_single_process(tmp_path, digits_arrays):
    """torchrun --nproc_per_node 2 on CPU (gloo): same data per epoch, accuracy within tolerance."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    from visionops.training.distributed import torchrun_command

    worker = str(Path(__file__).with_name("ddp_worker.py"))
    single, ddp = tmp_path / "single.json", tmp_path / "ddp.json"
    subprocess.run([sys.executable, worker, str(single)], check=True, capture_output=True)
    done = subprocess.run(torchrun_command(2, worker, str(ddp)), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    one, two = json.loads(single.read_text()), json.loads(ddp.read_text())
    assert one["world"] == 1 and two["world"] == 2
    assert two["images_per_epoch"] == [1436] * 4  # both shards, summed across ranks (1437 - 1437 % 2)
    assert learned(one["accuracy"], digits_arrays["test_y"]) and abs(one["accuracy"] - two["accuracy"]) < 0.03
    assert one["checksum"] != two["checksum"]  # really a different (sharded) run, not a copy


def _fit_digits(arrays, **options):
    from visionops.models.zoo import create_model

    train, test = _datasets(arrays)
    torch.manual_seed(0)
    model = create_model(
        {"arch": "simple_cnn", "in_channels": 1, "num_classes": 10, "width": 16, "dropout": 0.0}
    )
    cfg = TrainParams(**({"epochs": 3, "lr": 0.01} | options))
    history = fit(model, train, test, cfg, resolve_device("cpu", amp=False), progress=False)
    return model, history, evaluate(model, nn.CrossEntropyLoss(), test, 256, resolve_device("cpu", amp=False))


def test_sgd_nesterov_with_cosine_warmup_learns(digits_arrays):
    _, history, result = _fit_digits(
        digits_arrays, optimizer="sgd", schedule="cosine", warmup_epochs=1, lr=0.1, epochs=6
    )
    assert learned(result["accuracy"], digits_arrays["test_y"])
    assert history[0]["lr"] < history[1]["lr"]  # still warming up at the start of epoch 1


def test_cosine_schedule_warms_up_then_decays_to_zero():
    from visionops.training.optim import build_scheduler

    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    scheduler = build_scheduler(
        optimizer, TrainParams(epochs=2, schedule="cosine", warmup_epochs=1, lr=1.0), 10
    )
    lrs = []
    for _ in range(20):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == lrs[10] == pytest.approx(1.0) == max(lrs)
    assert lrs[-1] == pytest.approx(0.5 * (1 + math.cos(0.9 * math.pi))) and lrs[10:] == sorted(
        lrs[10:], reverse=True
    )


def test_grad_clip_bounds_the_gradient_norm():
    from visionops.training.loop import Optimization, _step
    from visionops.training.optim import build_ema

    model = nn.Linear(4, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    opt = Optimization(
        model,
        nn.MSELoss(),
        optimizer,
        torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0),
        torch.amp.GradScaler(enabled=False),
        build_ema(model, 0.0),
        grad_clip=0.01,
    )
    _step(opt, (model(torch.randn(8, 4) * 100) ** 2).sum())
    norm = torch.sqrt(sum((p.grad**2).sum() for p in model.parameters()))
    assert norm <= 0.01 + 1e-6


def test_ema_changes_the_kept_weights_and_still_learns(digits_arrays):
    plain, _, _ = _fit_digits(digits_arrays)
    ema, _, result = _fit_digits(digits_arrays, ema_decay=0.9)
    assert learned(result["accuracy"], digits_arrays["test_y"])
    assert not torch.equal(plain.head.weight, ema.head.weight)


def test_early_stopping_rule():
    from visionops.training.loop import _patience_exhausted

    rows = [{"val_accuracy": a} for a in (0.5, 0.7, 0.6, 0.65)]
    assert _patience_exhausted(rows, 2) and not _patience_exhausted(rows[:3], 2)
    assert not _patience_exhausted(rows, 0)


def test_deterministic_mode_is_switched_on_and_off(digits_arrays):
    _fit_digits(digits_arrays, epochs=1, deterministic=True)
    assert torch.are_deterministic_algorithms_enabled()
    _fit_digits(digits_arrays, epochs=1)
    assert not torch.are_deterministic_algorithms_enabled()


@pytest.mark.e2e
def test_torch_compile_trains_on_cpu(digits_arrays):
    _, history, result = _fit_digits(digits_arrays, epochs=2, compile=True)
    assert len(history) == 2 and learned(result["accuracy"], digits_arrays["test_y"])


def test_sigterm_is_deferred_to_a_safe_point_inside_training_only():
    from visionops.interrupts import deferred_interrupts, handle_sigterm, raise_if_interrupted

    with pytest.raises(KeyboardInterrupt):  # outside a safe-point loop: at once
        handle_sigterm(15, None)
    with deferred_interrupts():
        handle_sigterm(15, None)  # deferred: nothing raised mid-write
        with pytest.raises(KeyboardInterrupt):
            handle_sigterm(15, None)  # a second SIGTERM does not wait
        with pytest.raises(KeyboardInterrupt):
            raise_if_interrupted()  # the safe point raises the deferred one
        raise_if_interrupted()  # and only once


def test_deferred_sigterm_stops_fit_after_the_current_step(digits_arrays):
    from visionops.interrupts import handle_sigterm

    steps = []

    class Probe(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(64, 10)

        def forward(self, x):
            steps.append(1)
            if len(steps) == 3:
                handle_sigterm(15, None)  # arrives mid-step
            return self.linear(x.flatten(1))

    train, _ = _datasets(digits_arrays)
    with pytest.raises(KeyboardInterrupt):
        fit(Probe(), train, None, TrainParams(epochs=2), resolve_device("cpu", amp=False), progress=False)
    assert len(steps) == 3  # the step in flight finished, no further step began


@pytest.mark.parametrize("native_bf16", [True, False], ids=["bf16-autocast", "fp32"])
def test_training_learns_on_either_cpu_precision_path(digits_arrays, monkeypatch, native_bf16):
    """Issue 32: machines of this project's kind differ (AVX512-BF16, AMX or neither), and the
    CPU path follows them: bf16 autocast where oneDNN has native bf16, fp32 elsewhere. Both are
    forced here, so `make test` covers the path another machine takes (the bf16 one runs
    emulated where the CPU lacks it), and the digits model learns on each."""
    import visionops.device

    monkeypatch.setattr(visionops.device, "cpu_has_bf16", lambda: native_bf16)
    setup = resolve_device("cpu")
    assert setup.amp_dtype == (torch.bfloat16 if native_bf16 else None)
    from visionops.models.zoo import create_model

    train, test = _datasets(digits_arrays)
    torch.manual_seed(0)
    model = create_model(
        {"arch": "simple_cnn", "in_channels": 1, "num_classes": 10, "width": 16, "dropout": 0.0}
    )
    history = fit(model, train, test, TrainParams(epochs=2, lr=0.01), setup, progress=False)
    result = evaluate(model, nn.CrossEntropyLoss(), test, 256, setup)
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert learned(result["accuracy"], digits_arrays["test_y"])


def test_reading_the_loss_every_few_steps_changes_no_number(digits_arrays, monkeypatch):
    """Issue 36: on a GPU the loop reads its loss and accuracy sums every CUDA_SYNC_EVERY steps
    instead of every step (each read stalls the GPU's queue). Same history either way; a
    diverged loss is still caught before the next update is applied, naming the step checked."""
    from visionops.training import loop

    _, every_step, _ = _fit_digits(digits_arrays, epochs=2)
    monkeypatch.setattr(loop, "sync_interval", lambda device: 4)
    _, every_fourth, _ = _fit_digits(digits_arrays, epochs=2)
    timing = ("images_per_s", "seconds")
    assert [{k: v for k, v in row.items() if k not in timing} for row in every_step] == [
        {k: v for k, v in row.items() if k not in timing} for row in every_fourth
    ]
    train, _ = _datasets(digits_arrays)
    with pytest.raises(VisionOpsError, match=r"loss is nan at epoch 1, by step 4 \(checked every 4 steps"):
        fit(_Exploding(), train, None, TrainParams(epochs=1), resolve_device("cpu"), progress=False)


def test_translate_takes_each_image_from_its_own_shifted_window():
    """The batched translate (one gather, no masked copies) equals the definition: image i is
    the padded image i cut at its drawn shift, with the draws the generator gives."""
    import torch.nn.functional as F

    images = torch.randint(0, 256, (50, 3, 7, 9), dtype=torch.uint8)
    moved = augment_batch(images, 2, False, torch.Generator().manual_seed(5))
    shifts = torch.randint(0, 5, (50, 2), generator=torch.Generator().manual_seed(5))
    padded = F.pad(images, (2, 2, 2, 2))
    for i, (dy, dx) in enumerate(shifts.tolist()):
        assert torch.equal(moved[i], padded[i, :, dy : dy + 7, dx : dx + 9])
    assert len({tuple(s) for s in shifts.tolist()}) > 10  # many different shifts were drawn
