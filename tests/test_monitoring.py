"""Monitoring's parts on synthetic and real (digits) data: the shift tests' false alarms and
power, ATC's accuracy estimate, the reference's round trip and damage, the check's verdicts and
bad windows, and `visionops monitor` on the session's exported digits model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from visionops.config import MonitorParams
from visionops.errors import VisionOpsError
from visionops.monitoring.accuracy import atc_threshold, estimate, scores
from visionops.monitoring.check import DEGRADED, DRIFT, OK, OUT_OF_DOMAIN, check
from visionops.monitoring.reference import Reference, build_reference, load_reference, save_reference
from visionops.monitoring.shift import drifted, shift_tests
from visionops.monitoring.stats import STATS, image_stats
from visionops.monitoring.window import Window

CLASSES = [str(k) for k in range(5)]


def calibrated(rng: np.random.Generator, n: int, sharpness: float, shares=None):
    """(probabilities, labels) of a calibrated 5-class model: the top class is right with
    exactly its probability, so any accuracy estimate has a known truth."""
    k = len(CLASSES)
    predicted = rng.choice(k, n, p=shares)
    top = np.clip(rng.beta(sharpness, 1.0, n), 1 / k + 0.01, 1.0)
    probs = np.tile(((1 - top) / (k - 1))[:, None], (1, k))
    probs[np.arange(n), predicted] = top
    right = rng.random(n) < top
    wrong = (predicted + rng.integers(1, k, n)) % k
    return probs, np.where(right, predicted, wrong)


def stats_like(rng: np.random.Generator, n: int, brightness: float = 120.0) -> np.ndarray:
    return np.column_stack(
        [
            rng.normal(brightness, 20, n),
            rng.normal(60, 10, n),
            rng.lognormal(0, 0.3, n),
            np.full((2, n), 32.0).T,
        ]
    )


def reference_of(probs, labels, stats) -> Reference:
    return Reference(CLASSES, probs.astype(np.float32), labels, stats, "sha", atc_threshold(probs, labels))


def test_atc_threshold_reproduces_the_reference_accuracy_and_tracks_a_shift():
    rng = np.random.default_rng(0)
    probs, labels = calibrated(rng, 4000, 4.0)
    threshold = atc_threshold(probs, labels)
    accuracy = (probs.argmax(1) == labels).mean()
    assert estimate(probs, threshold)["value"] == pytest.approx(accuracy, abs=1e-3)
    for _ in range(3):  # unshifted windows: within 3 points (ATC's own claim)
        window, truth = calibrated(rng, 4000, 4.0)
        found = estimate(window, threshold)
        true_accuracy = (window.argmax(1) == truth).mean()
        assert abs(found["value"] - true_accuracy) < 0.03, (found, true_accuracy)
        assert found["low"] < found["value"] < found["high"]
    # a less sure (and less right) model: the estimate falls with the accuracy (how far ATC is
    # off under real shifts is benchmarks/drift_power.py's to measure)
    estimates = [estimate(calibrated(rng, 4000, s)[0], threshold)["value"] for s in (4.0, 2.0, 1.2)]
    assert estimates[0] > estimates[1] > estimates[2]
    assert scores(np.array([[1.0, 0.0]]))[0] == pytest.approx(0.0, abs=1e-9)


def test_unshifted_windows_rarely_alarm_and_shifted_ones_do():
    rng = np.random.default_rng(1)
    ref_probs, _ = calibrated(rng, 2000, 4.0)
    ref_stats = stats_like(rng, 2000)
    alarms = 0
    for _ in range(60):
        probs, _ = calibrated(rng, 300, 4.0)
        alarms += bool(drifted(shift_tests(ref_probs, ref_stats, probs, stats_like(rng, 300), CLASSES), 0.05))
    assert alarms <= 6, f"{alarms} false alarms in 60 unshifted windows at alpha 0.05"
    darker = drifted(
        shift_tests(ref_probs, ref_stats, calibrated(rng, 300, 4.0)[0], stats_like(rng, 300, 90.0), CLASSES),
        0.05,
    )
    assert [(t.name, t.note) for t in darker if t.family == "image"] == [("brightness", "darker")]
    shares = [0.6, 0.1, 0.1, 0.1, 0.1]  # class 0 six times as frequent as the others
    tilted = drifted(
        shift_tests(
            ref_probs, ref_stats, calibrated(rng, 300, 4.0, shares)[0], stats_like(rng, 300), CLASSES
        ),
        0.05,
    )
    label_shift = [t for t in tilted if t.family == "predicted_classes"]
    assert label_shift and "'0'" in label_shift[0].note
    smallest = min(tilted, key=lambda t: t.p_value)  # no embedding: Holm's first step, p x tests
    assert smallest.p_adjusted == pytest.approx(min(1.0, smallest.p_value * (len(CLASSES) + 1 + len(STATS))))


def test_weighted_holm_steps_down_and_gives_the_embedding_test_half_of_alpha():
    from visionops.monitoring.shift import shares, weighted_holm

    equal = weighted_holm(np.array([0.01, 0.04, 0.03, 0.005]), np.full(4, 0.25))
    assert np.allclose(equal, [0.03, 0.06, 0.06, 0.02])  # Holm: 4p, 3p, 2p, p, never decreasing
    weighted = weighted_holm(np.array([0.02, 0.001, 0.04]), np.array([0.5, 0.25, 0.25]))
    assert np.allclose(weighted, [0.03, 0.004, 0.04])  # Bonferroni over 3 would give it 0.06
    families = ["softmax"] * 10 + ["embedding", "predicted_classes"] + ["image"] * 5
    split = shares(families)
    assert split.sum() == pytest.approx(1.0) and split[10] == 0.5 and np.allclose(split[:10], 0.5 / 16)
    rng = np.random.default_rng(0)  # family-wise error under the null, with the weights, at most alpha
    nulls = rng.random((20_000, len(families)))
    rejected = np.mean([(weighted_holm(p, split) <= 0.05).any() for p in nulls])
    assert 0.035 < rejected <= 0.055


def test_image_stats_read_dark_and_blurry_as_such():
    from scipy import ndimage

    rng = np.random.default_rng(2)
    sharp = rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    blurred = ndimage.gaussian_filter(sharp.astype(float), sigma=(0, 2, 2, 0)).astype(np.uint8)
    darker = (sharp // 2).astype(np.uint8)
    sizes = np.array([[640.0, 480.0]] * 4)
    base, blur, dark = (image_stats(x, sizes) for x in (sharp, blurred, darker))
    b, c, s = (STATS.index(name) for name in ("brightness", "contrast", "sharpness"))
    assert (dark[:, b] < base[:, b]).all() and (dark[:, c] < base[:, c]).all()
    assert (blur[:, s] < base[:, s] / 4).all()
    assert np.allclose(dark[:, s], base[:, s], rtol=0.05)  # darker is not blurrier
    assert (base[:, 3:] == sizes).all()


def test_mmd_keeps_its_level_on_the_same_distribution_and_finds_a_moved_embedding():
    from visionops.monitoring.mmd import mmd_test

    rng = np.random.default_rng(7)
    reference = rng.normal(size=(600, 16))
    p_values = [mmd_test(reference, rng.normal(size=(200, 16)), permutations=200)[1] for _ in range(30)]
    assert sum(p <= 0.05 for p in p_values) <= 5, sorted(p_values)[:6]  # level 0.05: ~1.5 expected
    moved = rng.normal(size=(200, 16)) + np.r_[np.full(4, 0.5), np.zeros(12)]  # a quarter of the dims
    squared, p = mmd_test(reference, moved, permutations=200)
    assert p < 0.01 and squared > 0
    again = mmd_test(reference, moved, permutations=200)
    assert again == (squared, p)  # seeded: the same window gets the same verdict


def test_the_mmd_test_can_reject_at_a_small_alpha_and_stops_early_far_from_it(monkeypatch):
    """Issue 49: 1,000 permutations put the p-value's floor at 1/1001, so under a share of
    monitor.alpha 0.001 (1/17 of it) the embedding test could never reject. The
    permutations now follow the threshold; a window far from it stops once 50 permutations
    reach its MMD."""
    from visionops.monitoring import mmd

    rng = np.random.default_rng(3)
    reference, moved = rng.normal(size=(60, 8)), rng.normal(size=(60, 8)) + 1.0
    smallest = 0.001 / 17
    assert mmd.mmd_test(reference, moved)[1] > smallest  # 1,000 permutations: never under 1/1001
    assert mmd.mmd_test(reference, moved, smallest=smallest)[1] <= smallest
    same = rng.normal(size=(60, 8))
    drawn, real = [], np.random.default_rng

    class Counting:
        def __init__(self, seed):
            self.rng = real(seed)

        def permutation(self, values):
            drawn.append(1)
            return self.rng.permutation(values)

    monkeypatch.setattr(mmd.np.random, "default_rng", Counting)
    _, p = mmd.mmd_test(reference, same, smallest=smallest)
    assert p > 0.05 and len(drawn) == mmd.BLOCK  # settled by the first block, not 34,000


def test_the_check_runs_mmd_when_both_sides_have_embeddings_and_says_why_not_otherwise():
    rng = np.random.default_rng(8)
    probs, labels = calibrated(rng, 1000, 4.0)
    reference = Reference(
        CLASSES,
        probs.astype(np.float32),
        labels,
        stats_like(rng, 1000),
        "sha",
        atc_threshold(probs, labels),
        rng.normal(size=(1000, 8)).astype(np.float32),
    )
    window_probs, _ = calibrated(rng, 300, 4.0)
    moved = Window([], window_probs, stats_like(rng, 300), embeddings=rng.normal(size=(300, 8)) + 1.0)
    result = check(reference, moved, MonitorParams())
    assert result["embedding_test"] == "ran" and result["verdict"] == DRIFT
    assert any("embedding (MMD)" in reason for reason in result["reasons"])
    assert len(result["tests"]) == len(CLASSES) + 2 + len(STATS)  # softmax, MMD, class shares, stats
    unembedded = check(reference, Window([], window_probs, stats_like(rng, 300)), MonitorParams())
    assert (
        unembedded["verdict"] == OK and "window's records hold no embedding" in unembedded["embedding_test"]
    )
    older = Reference(
        *[getattr(reference, f) for f in ("classes", "probabilities", "labels", "stats")], "sha", 0.5
    )
    assert "dvc repro` and register again" in check(older, moved, MonitorParams())["embedding_test"]


def test_a_reference_round_trips_and_a_damaged_one_is_refused(tmp_path):
    rng = np.random.default_rng(3)
    probs, labels = calibrated(rng, 200, 4.0)
    stats = stats_like(rng, 200)
    batches = [(np.zeros((100, 8, 8, 1), np.uint8), np.full((100, 2), 8.0))] * 2
    vectors = rng.normal(size=(200, 6))
    fake_model = iter([(probs[:100], vectors[:100]), (probs[100:], vectors[100:])])
    built = build_reference(lambda images: next(fake_model), batches, labels, CLASSES, "abc")
    save_reference(built, tmp_path / "ref")
    loaded = load_reference(tmp_path / "ref")
    assert loaded.classes == CLASSES and loaded.model_sha256 == "abc"
    assert (
        np.array_equal(loaded.probabilities, probs.astype(np.float32)) and loaded.accuracy == built.accuracy
    )
    assert np.array_equal(loaded.embeddings, vectors.astype(np.float32))  # 200 rows: all kept
    assert len(loaded.domain.rows) == 100
    assert np.array_equal(loaded.domain.calibration, built.domain.calibration)
    np.save(tmp_path / "ref" / "domain_rows.npy", np.arange(5))
    with pytest.raises(VisionOpsError, match="the domain fit do not match"):
        load_reference(tmp_path / "ref")
    np.save(tmp_path / "ref" / "domain_rows.npy", built.domain.rows)
    record = json.loads((tmp_path / "ref" / "reference.json").read_text())  # one built before issue 49
    older = record | {"format": "visionops-reference/1", "domain_calibration_images": 0}
    (tmp_path / "ref" / "reference.json").write_text(json.dumps(older))
    assert load_reference(tmp_path / "ref").domain is None
    (tmp_path / "ref" / "reference.json").write_text(json.dumps(record))
    np.save(tmp_path / "ref" / "embeddings.npy", vectors[:5])
    with pytest.raises(VisionOpsError, match="embeddings do not match"):
        load_reference(tmp_path / "ref")
    np.save(tmp_path / "ref" / "embeddings.npy", vectors)
    np.save(tmp_path / "ref" / "stats.npy", stats[:10])
    with pytest.raises(VisionOpsError, match="stats do not match") as error:
        load_reference(tmp_path / "ref")
    assert "dvc repro reference" in str(error.value)
    (tmp_path / "ref" / "labels.npy").write_bytes(b"not numpy")
    with pytest.raises(VisionOpsError, match="missing or damaged"):
        load_reference(tmp_path / "ref")
    with pytest.raises(VisionOpsError, match="holds no monitoring reference"):
        load_reference(tmp_path / "nothing")


def test_the_verdict_follows_the_policy_and_a_small_window_is_an_error():
    rng = np.random.default_rng(4)
    probs, labels = calibrated(rng, 2000, 4.0)
    reference = reference_of(probs, labels, stats_like(rng, 2000))
    policy = MonitorParams(min_window=50, max_accuracy_drop=0.05)

    def window(n, sharpness=4.0, brightness=120.0):
        p, truth = calibrated(rng, n, sharpness)
        return Window([Path(f"{i}.png") for i in range(n)], p, stats_like(rng, n, brightness)), truth

    clean, _ = window(400)
    assert check(reference, clean, policy)["verdict"] == OK
    dark, _ = window(400, brightness=80.0)
    result = check(reference, dark, policy)
    assert result["verdict"] == DRIFT and result["retrain"] and any("darker" in r for r in result["reasons"])
    unsure, truth = window(400, sharpness=1.2)
    result = check(reference, unsure, policy)
    assert result["verdict"] == DEGRADED and "estimated accuracy" in result["reasons"][0]
    labels_csv = {f"{i}.png": CLASSES[t] for i, t in enumerate(truth[:100])}
    result = check(reference, unsure, policy, labels_csv)
    assert result["accuracy"]["labelled"]["images"] == 100 and "labelled accuracy" in result["reasons"][0]
    with pytest.raises(VisionOpsError, match="not one of the model's classes"):
        check(reference, unsure, policy, {"0.png": "cat"})
    small, _ = window(20)
    with pytest.raises(VisionOpsError, match=r"20 readable image\(s\).*monitor.min_window"):
        check(reference, small, policy)


def test_degraded_takes_the_whole_interval_under_the_floor():
    """The same estimated fall (3 points under the floor) is noise in 60 images and evidence
    in 4,000: only the second is `degraded`."""
    rng = np.random.default_rng(6)
    probs, labels = calibrated(rng, 4000, 4.0)
    reference = reference_of(probs, labels, stats_like(rng, 4000))
    high = scores(probs) > reference.atc_threshold
    share = reference.accuracy - 0.05 - 0.03
    verdicts = {}
    for n in (60, 4000):
        k = round(share * n)
        rows = np.r_[rng.choice(np.flatnonzero(high), k), rng.choice(np.flatnonzero(~high), n - k)]
        window = Window([], probs[rows], stats_like(rng, n))
        result = check(reference, window, MonitorParams(max_accuracy_drop=0.05))
        assert result["accuracy"]["estimated"]["value"] == pytest.approx(share, abs=0.01)
        verdicts[n] = result["verdict"]
    assert verdicts[60] != DEGRADED and verdicts[4000] == DEGRADED


@pytest.fixture(scope="module")
def monitored_model(deployable_onnx, digits_arrays, tmp_path_factory):
    """The session's exported digits model, its reference built on half the test images (the
    other half is the clean window: the two never share an image), and image folders."""
    from PIL import Image

    from visionops.export.classifier import OnnxClassifier
    from visionops.io import file_sha256

    folder = tmp_path_factory.mktemp("monitored")
    model = OnnxClassifier(deployable_onnx)
    x, y = digits_arrays["test_x"], digits_arrays["test_y"]
    # every other image: digits are stored writer by writer, and the two halves of the list are
    # different people's handwriting (a real shift, which the tests do find)
    ref_x, window_x = x[0::2], x[1::2]
    reference = build_reference(
        model.outputs,
        [(ref_x, np.full((len(ref_x), 2), 8.0))],
        y[0::2],
        model.classes,
        file_sha256(deployable_onnx),
    )
    save_reference(reference, folder / "reference")
    for name, pixels in (("clean", window_x), ("dark", window_x // 3)):
        (folder / name).mkdir()
        for i, image in enumerate(pixels):
            Image.fromarray(image[..., 0]).save(folder / name / f"{i:04d}.png")
    (folder / "clean" / "broken.png").write_bytes(b"not an image")
    return folder


def monitor(folder: Path, images: str, *extra: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING")}
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{folder / 'mlflow.db'}"
    command = [sys.executable, "-m", "visionops", "monitor", str(folder / images), "--no-progress"]
    command += ["--reference", str(folder / "reference"), "--out", str(folder / f"{images}.json"), *extra]
    return subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, check=False)


@pytest.mark.slow  # two CLI runs, one creating an MLflow store (~20 s)
def test_monitor_says_ok_on_clean_images_and_names_what_befell_dark_ones(monitored_model, deployable_onnx):
    folder = monitored_model
    clean = monitor(folder, "clean", "--model", str(deployable_onnx), "--no-track")
    assert clean.returncode == 0, clean.stderr
    report = json.loads((folder / "clean.json").read_text())
    assert report["verdict"] == OK and report["skipped"] == 1 and "broken.png" in clean.stderr
    assert (folder / "clean.png").stat().st_size > 10_000
    clean_share = report["out_of_domain"]["value"]
    dark = monitor(folder, "dark", "--model", str(deployable_onnx))
    report = json.loads((folder / "dark.json").read_text())
    codes = {DRIFT: 3, DEGRADED: 4, OUT_OF_DOMAIN: 5}  # a third of the brightness: often out of domain
    assert report["verdict"] in codes and dark.returncode == codes[report["verdict"]]
    assert report["retrain"] == (report["verdict"] != OUT_OF_DOMAIN)
    assert "darker" in dark.stdout and "mlflow_run_id" in report
    assert report["out_of_domain"]["value"] > clean_share + 0.2
    assert report["embedding_test"] == "ran" and any(t["family"] == "embedding" for t in report["tests"])
    found = len(list((folder / "dark").iterdir()))
    assert report["window"] == {
        "sources": [str(folder / "dark")],
        "rule": "newest 1000 by modification time",
        "found": found,
        "chosen": found,
        "left_out": 0,
    }
    run = tracked_run(folder, report["mlflow_run_id"])  # issue 49: a check a team reads over time
    assert run.info.run_name.startswith(f"monitor {deployable_onnx.name} 20") and str(folder / "dark") in (
        run.info.run_name
    )
    families = {t["family"] for t in report["tests"]}
    assert {f"min_p_adjusted_{family}" for family in families} <= run.data.metrics.keys()
    smallest = min(t["p_adjusted"] for t in report["tests"] if t["family"] == "image")
    assert run.data.metrics["min_p_adjusted_image"] == pytest.approx(smallest)
    assert run.data.metrics["mmd2"] > 0 and run.data.metrics["window_left_out"] == 0
    share = run.data.metrics["out_of_domain_share"]
    assert share == pytest.approx(report["out_of_domain"]["value"])
    assert "out_of_domain_share_low" in run.data.metrics
    estimable = report["accuracy"]["estimated"]["estimable"]
    assert ("estimated_accuracy" in run.data.metrics) == estimable  # a gap, never a number, where not
    assert run.data.params["window_rule"] == "newest 1000 by modification time"


def tracked_run(folder: Path, run_id: str):
    import mlflow

    return mlflow.MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}").get_run(run_id)


@pytest.mark.slow  # one CLI run (~8 s)
def test_a_sampled_window_is_drawn_from_the_whole_folder_and_says_so(monitored_model, deployable_onnx):
    """Issue 49: `--sample N` draws N images at random (seeded) instead of the newest N, and the
    report says which rule chose the window and how many files it left out."""
    folder = monitored_model
    done = monitor(
        folder, "clean", "--model", str(deployable_onnx), "--no-track", "--sample", "60", "--seed", "3"
    )
    assert done.returncode == 0, done.stderr
    window = json.loads((folder / "clean.json").read_text())["window"]
    found = len(list((folder / "clean").iterdir()))
    assert window["rule"] == "60 drawn at random (seed 3)"
    assert (window["found"], window["chosen"], window["left_out"]) == (found, 60, found - 60)


def test_a_seeded_sample_is_repeatable_spread_out_and_differs_by_seed():
    from visionops.monitoring.window import sampled

    files = [Path(f"day{day}/{i:04d}.png") for day in range(5) for i in range(200)]
    first = sampled(files, 100, seed=0)
    assert first == sampled(list(reversed(files)), 100, seed=0) and len(set(first)) == 100
    assert first != sampled(files, 100, seed=1) and sampled(files, 5000, seed=0) == sorted(files)
    per_day = [sum(path.parent.name == f"day{day}" for path in first) for day in range(5)]
    assert min(per_day) >= 8  # every day's files, where the newest 100 would all be day4's


def test_monitor_refuses_a_reference_of_another_model_and_writes_nothing(monitored_model, trained, tmp_path):
    import torch

    from visionops.data.decode import RESIZE_METHOD
    from visionops.export.deployable import Deployable, onnx_metadata
    from visionops.export.onnx_export import export_onnx

    model, _, meta = trained
    other = tmp_path / "other.onnx"
    export_onnx(
        Deployable(model, meta["mean"], [s * 2 for s in meta["std"]]),
        torch.zeros(2, 8, 8, 1, dtype=torch.uint8),
        other,
        20,
        onnx_metadata(meta, RESIZE_METHOD),
    )
    (monitored_model / "clean.json").unlink(missing_ok=True)
    done = monitor(monitored_model, "clean", "--model", str(other), "--no-track")
    assert done.returncode == 1 and "measured on another model" in done.stderr
    assert "fix:" in done.stderr and not (monitored_model / "clean.json").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    done = monitor(tmp_path, "empty", "--model", str(other), "--no-track")
    assert done.returncode == 1 and "the window is empty" in done.stderr


def test_the_request_log_keeps_the_newest_records_of_its_model(tmp_path, monkeypatch):
    from visionops.monitoring import request_log

    monkeypatch.setattr(request_log, "MAX_BYTES", 2_000)  # rotate after a few records
    rng = np.random.default_rng(5)
    probs, stats = rng.dirichlet(np.ones(5), 60), stats_like(rng, 60)
    vectors = rng.normal(size=(60, 4)).astype(np.float32)
    log = request_log.RequestLog(tmp_path, "mine")
    for start in range(0, 60, 7):
        log.append(probs[start : start + 7], stats[start : start + 7], vectors[start : start + 7])
    request_log.RequestLog(tmp_path, "another model").append(probs[:3], stats[:3], None)
    assert len(list(tmp_path.glob("requests-*.jsonl.*"))) > 1  # rotated, none lost
    with open(next(tmp_path.glob("requests-*.jsonl")), "a") as torn:
        torn.write('{"time": 1e12, "model_sha256": "mine", "proba')  # a crash mid-line
    shape = request_log.Shape(5, stats.shape[1], 4)
    newest = request_log.read_newest(tmp_path, "mine", 25, shape)
    assert newest.others == 3 and len(newest.probabilities) == 25 and newest.malformed == 1
    assert np.allclose(newest.probabilities, probs[35:]) and np.allclose(newest.stats, stats[35:])
    assert np.allclose(newest.embeddings, vectors[35:], atol=2e-3)  # float16 in the log
    assert np.allclose(request_log.read_newest(tmp_path, "mine", 1000, shape).probabilities, probs)
    request_log.RequestLog(tmp_path, "mine").append(probs[:1], stats[:1], None)  # an older server
    assert request_log.read_newest(tmp_path, "mine", 1000, shape).embeddings is None
    with pytest.raises(VisionOpsError, match="holds no request log"):
        request_log.read_newest(tmp_path / "empty", "mine", 10, shape)


RECORD = {"time": 1, "seq": 0, "model_sha256": "mine", "probabilities": [0.2, 0.3, 0.5], "stats": "S"}


@pytest.mark.parametrize(
    ("line", "why"),
    [
        (b"[1, 2, 3]", "a JSON list, not a record"),
        (b'{"time": 1, "model_sha256": "mine"}', "no seq, probabilities, stats"),
        ({"probabilities": [0.5, 0.5]}, "probabilities has 2 values, the model's has 3"),
        ({"probabilities": [float("nan"), 0.5, 0.5]}, "not a finite number"),
        ({"probabilities": [0.9, 0.5, 0.5]}, "not a distribution"),
        ({"stats": [1]}, "stats has 1 values"),
        ({"embedding": "AAAAAAAA"}, "embedding has 3 values, the model's has 4"),
        ({"embedding": "**"}, "embedding is not base64"),
        (b"\xff\xfe not utf-8", "not UTF-8 text"),
    ],
)
def test_a_request_log_line_that_is_not_a_record_of_this_model_is_left_out_and_named(tmp_path, line, why):
    """Issue 47 row 15: a non-object line, a record missing keys, a wrong-length embedding or
    probabilities, non-UTF-8 bytes: five tracebacks; NaN probabilities were accepted silently."""
    from visionops.monitoring import request_log

    rng = np.random.default_rng(7)
    stats = stats_like(rng, 3)
    request_log.RequestLog(tmp_path, "mine").append(rng.dirichlet(np.ones(3), 2), stats[:2], None)
    if isinstance(line, dict):
        line = json.dumps(RECORD | {"stats": stats[2].tolist()} | line).encode()  # NaN as json writes it
    with open(next(tmp_path.glob("requests-*.jsonl")), "ab") as log:
        log.write(line + b"\n")
    logged = request_log.read_newest(tmp_path, "mine", 10, request_log.Shape(3, stats.shape[1], 4))
    assert len(logged.probabilities) == 2 and logged.malformed == 1
    assert why in logged.first_problem and "line 3" in logged.first_problem, logged.first_problem


def test_serve_refuses_a_request_log_that_is_a_file_before_anything_starts(tmp_path):
    """Issue 47 row 16: `serve --request-log EXISTING_FILE` started, then answered every request
    400 with a stack trace holding server paths."""
    import argparse

    from visionops.cli import serve

    taken = tmp_path / "notes.txt"
    taken.write_text("mine")
    args = argparse.Namespace(model="models:/none/1", host="127.0.0.1", port=1, workers=1, request_log=taken)
    with pytest.raises(VisionOpsError, match="is a file: the log is a folder") as refused:
        serve.run(args)
    assert "--request-log" in refused.value.fix and taken.read_text() == "mine"


def test_a_request_log_that_cannot_be_written_never_fails_a_prediction(tmp_path, capsys):
    from visionops.monitoring import request_log

    blocked = tmp_path / "full"
    blocked.mkdir()
    log = request_log.RequestLog(blocked, "mine")
    rng = np.random.default_rng(8)
    blocked.chmod(0o500)  # a full disk or a folder taken away behaves the same to the handler
    try:
        if os.geteuid() == 0:  # root writes anywhere: take the folder away instead
            blocked.chmod(0o700)
            log.folder = tmp_path / "full" / "gone" / "deeper"
            (tmp_path / "full" / "gone").write_text("a file where the folder should be")
        for _ in range(3):
            log.append(rng.dirichlet(np.ones(3), 2), stats_like(rng, 2), None)
    finally:
        blocked.chmod(0o700)
    assert capsys.readouterr().err.count("request log: cannot write to") == 1


def test_concurrent_first_requests_log_each_image_once(tmp_path):
    """The scoring server calls predict from several threads at once: the first calls of a
    process must open one file handler between them, not one each (every record then written
    twice: 4,039 records for 2,020 requests, seen in `request_log_overhead.py`)."""
    import threading

    from visionops.monitoring import request_log

    rng = np.random.default_rng(6)
    probs, stats, threads = rng.dirichlet(np.ones(3), 1), stats_like(rng, 1), 8
    for attempt in range(20):  # the race needs the threads to meet at the first call
        folder, start = tmp_path / str(attempt), threading.Barrier(threads)
        log = request_log.RequestLog(folder, "mine")

        def first_request(log=log, start=start) -> None:
            start.wait()
            log.append(probs, stats, None)

        workers = [threading.Thread(target=first_request) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        shape = request_log.Shape(3, stats.shape[1], None)
        assert len(request_log.read_newest(folder, "mine", 100, shape).probabilities) == threads, attempt


@pytest.fixture
def store(tmp_path, monkeypatch):
    from visionops.tracking.runs import configure

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    configure(tmp_path)
    return tmp_path


def register(name: str, artifacts: dict, images) -> str:
    """A sealed version of `name` carrying `artifacts`, as register makes it; its number."""
    import mlflow

    from visionops.serving.packaging import pyfunc_spec
    from visionops.tracking import registry
    from visionops.tracking.version_files import record_files

    with mlflow.start_run() as run:
        info = registry.log_image_model(artifacts, pyfunc_spec(images[0]))
    sealed = record_files(run.info.run_id, info.model_uri, info.model_id, Path(f"seal-{name}"))
    return registry.register_version(info.model_uri, name, sealed, "test").version


def test_a_registered_version_carries_its_reference_and_an_older_one_says_how_to_add_it(
    store, monitored_model, deployable_onnx, digits_arrays
):
    from visionops.cli.monitor import open_model_and_reference

    images = digits_arrays["test_x"]
    old = register("old", {"onnx": deployable_onnx}, images)
    with pytest.raises(VisionOpsError, match="carries no monitoring reference") as error:
        open_model_and_reference(f"models:/old/{old}", None, store / "a")
    assert "dvc repro reference register" in str(error.value)
    new = register("new", {"onnx": deployable_onnx, "reference": monitored_model / "reference"}, images)
    model, reference, version = open_model_and_reference(f"models:/new/{new}", None, store / "b")
    assert version == ("new", str(new)) and reference.classes == model.classes
    assert len(reference.labels) == (len(images) + 1) // 2
    # issue 49: a check downloads the files it loads (ONNX, reference), checked; not the version's code
    fetched = sorted(p.relative_to(store / "b").as_posix() for p in (store / "b").rglob("*") if p.is_file())
    assert any(p.endswith(".onnx") for p in fetched) and any(p.endswith("reference.json") for p in fetched)
    assert not any(p.endswith((".py", ".yaml", "MLmodel")) for p in fetched), fetched
    array = next((store / "b").rglob("reference/labels.npy"))
    stored = next((store / "mlruns").rglob("reference/labels.npy"))  # the store's own copy
    stored.write_bytes(array.read_bytes()[:-8] + bytes(8))  # after the seal: a label changed
    with pytest.raises(VisionOpsError, match=r"new v\d+ is not what was registered: changed: .*labels\.npy"):
        open_model_and_reference(f"models:/new/{new}", None, store / "c")


def test_an_unreachable_store_is_an_error_and_writes_nothing(monitored_model, deployable_onnx, monkeypatch):
    from visionops.__main__ import main
    from visionops.stack.processes import free_port

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    out = monitored_model / "unlogged.json"
    args = ["monitor", str(monitored_model / "clean"), "--model", str(deployable_onnx), "--no-progress"]
    args += ["--reference", str(monitored_model / "reference"), "--out", str(out)]
    assert main(args) == 1
    assert not out.exists() and not out.with_suffix(".png").exists()


def test_a_labels_csv_that_is_missing_or_wrong_is_named(tmp_path):
    from visionops.cli.monitor import read_labels

    with pytest.raises(VisionOpsError, match=r"--labels .*missing.csv cannot be read") as error:
        read_labels(tmp_path / "missing.csv")
    assert "path,label" in str(error.value)
    (tmp_path / "wrong.csv").write_text("file,class\na.png,cat\n")
    with pytest.raises(VisionOpsError, match="no 'path' and 'label' columns"):
        read_labels(tmp_path / "wrong.csv")
    (tmp_path / "ok.csv").write_text("path,label\na.png,007\n")
    assert read_labels(tmp_path / "ok.csv") == {"a.png": "007"}  # class names stay text


def test_monitor_replaces_only_its_own_report_and_plot(monitored_model, deployable_onnx, tmp_path, capsys):
    """Issue 47 row 8: `--out reports/evaluate.json` overwrote it, and `--out imgs/7.json`
    replaced the input image imgs/7.png with the plot. Both files are replaced only when monitor
    wrote them (its report's format key, its plot's PNG text), or with --force."""
    from visionops.__main__ import main

    images = monitored_model / "clean"
    victim_image = sorted(images.rglob("*.png"))[0]
    evaluate = tmp_path / "evaluate.json"
    evaluate.write_text('{"accuracy": 0.99}')
    base = ["monitor", str(images), "--model", str(deployable_onnx), "--no-progress", "--no-track"]
    base += ["--reference", str(monitored_model / "reference")]
    for out in (evaluate, victim_image.with_suffix(".json")):
        kept = {p: p.read_bytes() for p in (out, out.with_suffix(".png")) if p.exists()}
        assert main([*base, "--out", str(out)]) == 1
        err = capsys.readouterr().err
        assert "exists and is not a" in err and "--force" in err, err
        assert {p: p.read_bytes() for p in kept} == kept
    assert not victim_image.with_suffix(".json").exists()
    out = tmp_path / "checks" / "monitor.json"
    assert main([*base, "--out", str(out)]) in (0, 3, 4)
    assert json.loads(out.read_text())["report"] == "visionops-monitor/1"
    assert main([*base, "--out", str(out)]) in (0, 3, 4)  # its own report and plot: replaced
    assert main([*base, "--out", str(evaluate), "--force"]) in (0, 3, 4)
    assert json.loads(evaluate.read_text())["report"] == "visionops-monitor/1"


def test_a_labels_csv_that_gives_one_image_two_labels_is_refused(tmp_path):
    from visionops.cli.monitor import read_labels

    (tmp_path / "torn.csv").write_text("path,label\na.png,cat\nb.png,dog\na.png,dog\nb.png,dog\n")
    with pytest.raises(VisionOpsError, match=r"gives 1 image\(s\) two different labels \(a.png: cat / dog\)"):
        read_labels(tmp_path / "torn.csv")
    (tmp_path / "twice.csv").write_text("path,label\na.png,cat\na.png,cat\n")
    assert read_labels(tmp_path / "twice.csv") == {"a.png": "cat"}


def test_an_out_that_cannot_be_written_is_refused_before_any_work(tmp_path):
    from visionops.cli.monitor import check_out

    with pytest.raises(VisionOpsError, match=r"is not a \.json file path"):
        check_out(tmp_path / "monitor.png")
    with pytest.raises(VisionOpsError, match="/proc is not a writable folder"):
        check_out(Path("/proc/monitor.json"))
    check_out(tmp_path / "new" / "monitor.json")
    assert (tmp_path / "new").is_dir()


@pytest.mark.parametrize(
    "key",
    [
        "../../escape.png",
        "/etc/cron.d/x.png",
        "a/../../../b.png",
        "..",
        "x/..\\..\\y.png",
        "a/b/.hidden.png",
        "served/2026/12/07/<img src=x>.jpg",
        "k" * 500 + ".png",
    ],
)
def test_an_object_key_is_confined_to_the_scratch_folder(tmp_path, key):
    """Issue 47 row 9: an s3:// window whose keys hold `../` or start with `/` was written
    outside the scratch folder (AWS accepts such keys; SeaweedFS refuses them)."""
    from visionops.monitoring.s3_window import local_path

    local = local_path(tmp_path, 7, key)
    assert local.parent == tmp_path and local.name.startswith("000007-")
    assert set(local.name) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
    assert len(local.name) <= 127
