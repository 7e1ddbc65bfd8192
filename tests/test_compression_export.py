"""Real ONNX export + ONNX Runtime parity, INT8 quantization, and the TensorRT skip/dispatch logic."""

import copy

import numpy as np
import onnx
import pytest
import torch
from invariants import learned

from visionops.cli.predict import open_model
from visionops.compression.prune import count_macs_params, prune_channels
from visionops.compression.quantize import quantize_int8
from visionops.config import ExportParams
from visionops.data.prepared import to_model_input
from visionops.errors import VisionOpsError
from visionops.export import tensorrt as trt
from visionops.export.checks import export_and_check, tensorrt_record
from visionops.export.classifier import OnnxClassifier
from visionops.export.deployable import Deployable, onnx_metadata
from visionops.export.engine_classifier import TensorRTClassifier
from visionops.export.onnx_export import export_onnx, read_metadata
from visionops.export.runtime import cpu_session, parity, run_session
from visionops.io import file_sha256


@pytest.fixture(scope="module")
def inputs(trained, digits_arrays):
    _, _, meta = trained
    return to_model_input(digits_arrays["test_x"], meta)


def torch_logits(model, x):
    with torch.inference_mode():
        return model(torch.from_numpy(x)).numpy()


def test_export_has_dynamic_batch_metadata_and_parity(trained, digits_arrays, tmp_path):
    model, _, meta = trained
    images = digits_arrays["test_x"][:100]
    report = export_and_check(
        model,
        meta,
        images,
        tmp_path / "m.onnx",
        tmp_path / "m16.onnx",
        tmp_path / "m.engine",
        ExportParams(latency_repeats=3),
        "bilinear",
        tmp_path / "absent_int8.onnx",
    )
    assert report["parity"]["passed"] and report["parity"]["max_abs_diff"] < 1e-4
    assert report["parity"]["top1_agreement"] == 1.0
    session = cpu_session(tmp_path / "m.onnx", 1)
    assert session.get_inputs()[0].type == "tensor(uint8)"  # the deployable graph takes pixels
    for batch in (1, 7, 100):
        assert run_session(session, images[:batch]).shape == (batch, 10)
    metadata = read_metadata(tmp_path / "m.onnx")
    assert metadata["classes"] == '["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]'
    assert metadata["resize"] == "bilinear" and metadata["image_size"] == "8" and "uint8" in metadata["input"]
    assert report["tensorrt"]["status"] in {"skipped", "built"}
    fp16 = report["fp16"]
    assert fp16["parity"]["passed"] and fp16["parity"]["top1_agreement"] > 0.98
    weights = onnx.load(str(tmp_path / "m16.onnx")).graph.initializer
    float_types = {t.data_type for t in weights} & {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16}
    assert float_types == {onnx.TensorProto.FLOAT16}
    assert run_session(cpu_session(tmp_path / "m16.onnx", 1), images[:3]).dtype == np.float32  # same I/O


def test_tampered_onnx_weights_fail_parity(trained, inputs, tmp_path):
    model, _, _ = trained
    path = tmp_path / "m.onnx"
    export_onnx(model, torch.from_numpy(inputs[:2]), path, 20, {})
    proto = onnx.load(str(path))
    weight = max(proto.graph.initializer, key=lambda t: int(np.prod(t.dims)))
    values = onnx.numpy_helper.to_array(weight).copy()
    values *= -1.0
    weight.CopyFrom(onnx.numpy_helper.from_array(values, weight.name))
    onnx.save(proto, str(path))
    result = parity(torch_logits(model, inputs), run_session(cpu_session(path, 1), inputs))
    assert result["max_abs_diff"] > 1e-2 and result["top1_agreement"] < 0.9


def test_an_opset_the_exporter_cannot_write_is_refused_and_nothing_is_written(trained, inputs, tmp_path):
    """Issue 32: export.opset 999 made export.json say 999 over a file that declares 18."""
    model, path = copy.deepcopy(trained[0]), tmp_path / "m.onnx"
    with pytest.raises(VisionOpsError, match=r"export\.opset is 999, but .* wrote opset \d+") as caught:
        export_onnx(model, torch.from_numpy(inputs[:2]), path, 999, {})
    assert "set export.opset to" in str(caught.value) and not path.exists()


def test_int8_keeps_accuracy_and_shrinks_file(trained, inputs, digits_arrays, tmp_path):
    model, _, meta = trained
    fp32, int8 = tmp_path / "fp32.onnx", tmp_path / "int8.onnx"
    export_onnx(model, torch.from_numpy(inputs[:2]), fp32, 20, {})
    calibration = to_model_input(digits_arrays["train_x"][:256], meta)
    quantize_int8(fp32, int8, calibration, "cpu")
    y = digits_arrays["test_y"]
    acc32 = (run_session(cpu_session(fp32, 1), inputs).argmax(1) == y).mean()
    acc8 = (run_session(cpu_session(int8, 1), inputs).argmax(1) == y).mean()
    assert learned(acc32, y) and acc8 > acc32 - 0.02
    assert int8.stat().st_size < fp32.stat().st_size / 2
    ops = {node.op_type for node in onnx.load(str(int8)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert not list(tmp_path.glob(".*"))  # no temp files left behind


def test_pruning_shrinks_the_trained_network(trained, inputs):
    model, _, _ = trained
    example = torch.from_numpy(inputs[:2])
    pruned = prune_channels(copy.deepcopy(model), example, 0.5)
    (macs, params), (macs_p, params_p) = (
        count_macs_params(model, example),
        count_macs_params(pruned, example),
    )
    assert macs_p < macs / 2.5 and params_p < params / 2.5
    assert pruned(example).shape == (2, 10)


def test_tensorrt_off_is_a_skip_with_reason(tmp_path):
    record = tensorrt_record(ExportParams(tensorrt="off"), {}, tmp_path / "e", None, None, {})
    assert record == {"status": "skipped", "reason": "export.tensorrt is 'off'"}


def test_tensorrt_availability_explains_itself():
    available = trt.tensorrt_availability()
    if not available.ok:
        assert "tensorrt" in available.reason.lower() or "CUDA" in available.reason


def test_tensorrt_version_dispatch():
    assert trt.major_version("10.13.0.35") == 10 and trt.major_version("11.0.1") == 11
    v10 = trt.build_settings(10, "fp16")
    assert v10["fp16_flag"] and not v10["strongly_typed"] and v10["onnx"] == "fp32"
    assert not trt.build_settings(10, "fp32")["fp16_flag"]
    v11 = trt.build_settings(11, "fp16")
    assert v11["strongly_typed"] and not v11["fp16_flag"]  # TRT 11 removed the FP16 flag
    assert v11["onnx"] == "fp16" and trt.build_settings(11, "fp32")["onnx"] == "fp32"
    for major in (10, 11):  # explicit quantization: the Q/DQ ONNX, strongly typed, no flags
        assert trt.build_settings(major, "int8") == {
            "strongly_typed": True,
            "fp16_flag": False,
            "onnx": "int8",
            "effective_precision": "int8",
        }
    with pytest.raises(ValueError, match=r"TensorRT 8.x is not supported"):
        trt.build_settings(8, "fp16")


def test_tensorrt_profile_shapes():
    assert trt.profile_shapes((32, 32, 3), 64) == {
        "min": (1, 32, 32, 3),
        "opt": (32, 32, 32, 3),
        "max": (64, 32, 32, 3),
    }
    assert trt.profile_shapes((8, 8, 1), 1)["opt"] == (1, 8, 8, 1)


def test_engine_and_metadata_are_written_together(tmp_path):
    trt.write_engine(b"plan-bytes", {"tensorrt": "10.13"}, tmp_path / "model.engine")
    assert (tmp_path / "model.engine").read_bytes() == b"plan-bytes"
    assert '"tensorrt": "10.13"' in (tmp_path / "model.engine.json").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.engine", "model.engine.json"]


def test_tensorrt_form_int8_is_symmetric_s8s8(trained, inputs, digits_arrays, tmp_path):
    model, _, meta = trained
    fp32, int8 = tmp_path / "fp32.onnx", tmp_path / "trt.onnx"
    export_onnx(model, torch.from_numpy(inputs[:2]), fp32, 20, {})
    quantize_int8(fp32, int8, to_model_input(digits_arrays["train_x"][:128], meta), "tensorrt")
    proto = onnx.load(str(int8))
    points = [onnx.numpy_helper.to_array(t) for t in proto.graph.initializer if t.name.endswith("zero_point")]
    activation_points = [z for z in points if z.dtype == np.int8]
    assert activation_points and all((z == 0).all() for z in points)
    acc = (run_session(cpu_session(int8, 1), inputs).argmax(1) == digits_arrays["test_y"]).mean()
    assert learned(acc, digits_arrays["test_y"])


def test_resnet9_quantizes_despite_symbolic_shape_inference_failing(tmp_path):
    """ORT's symbolic shape inference cannot handle ResNet-9's exported global max-pool."""
    from visionops.models.zoo import create_model

    spec = {"arch": "resnet9", "in_channels": 3, "num_classes": 10, "width": 4, "image_size": 32}
    model = create_model(spec).eval()
    x = np.random.default_rng(0).standard_normal((16, 3, 32, 32)).astype(np.float32)
    fp32, int8 = tmp_path / "r9.onnx", tmp_path / "r9_int8.onnx"
    export_onnx(model, torch.from_numpy(x[:2]), fp32, 20, {})
    quantize_int8(fp32, int8, x, "cpu")
    out = run_session(cpu_session(int8, 1), x)
    assert out.shape == (16, 10) and np.isfinite(out).all()


BUILT_ON = {"tensorrt": "10.13.0.35", "gpu": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0"}


@pytest.mark.parametrize(
    ("here", "named"),
    [
        (BUILT_ON | {"tensorrt": "11.0.1"}, "tensorrt 10.13.0.35 (this machine: 11.0.1)"),
        (BUILT_ON | {"gpu": "NVIDIA A100", "compute_capability": "8.0"}, "compute_capability 9.0"),
    ],
)
def test_a_mismatched_engine_is_refused_with_rebuild(here, named, tmp_path):
    with pytest.raises(VisionOpsError, match="rebuild it on this machine") as caught:
        trt.check_engine_matches(BUILT_ON, here, tmp_path / "model.engine")
    assert named in str(caught.value)


def test_same_architecture_other_card_only_warns(tmp_path):
    assert trt.check_engine_matches(BUILT_ON, BUILT_ON, tmp_path / "e") == []
    warnings = trt.check_engine_matches(BUILT_ON, BUILT_ON | {"gpu": "NVIDIA H100 PCIe"}, tmp_path / "e")
    assert warnings and "H100 80GB HBM3" in warnings[0] and "H100 PCIe" in warnings[0]


def test_an_engine_without_its_record_is_not_trusted(tmp_path):
    (tmp_path / "model.engine").write_bytes(b"plan")
    with pytest.raises(VisionOpsError, match=r"model\.engine\.json"):
        TensorRTClassifier(tmp_path / "model.engine")


def test_predict_falls_back_to_onnx_runtime_and_says_why(trained, digits_arrays, tmp_path, capsys):
    """A matching engine beside the .onnx cannot run without TensorRT + CUDA: ONNX Runtime
    classifies instead, and one line says why; an engine of another model is named as such."""
    model, _, meta = trained
    onnx_path = tmp_path / "model.onnx"
    export_onnx(
        Deployable(model, meta["mean"], meta["std"]),
        torch.from_numpy(digits_arrays["test_x"][:2]),
        onnx_path,
        20,
        onnx_metadata(meta, "bilinear"),
    )
    record = BUILT_ON | {"model": onnx_metadata(meta, "bilinear"), "profile": {"max": [8, 8, 8, 1]}}
    trt.write_engine(
        b"plan", record | {"stands_for_sha256": file_sha256(onnx_path)}, tmp_path / "model.engine"
    )
    chosen = open_model(onnx_path)
    assert isinstance(chosen, OnnxClassifier)
    if not trt.tensorrt_availability().ok:
        assert "not using the TensorRT engine: cannot run TensorRT engine" in capsys.readouterr().err
    trt.write_engine(b"plan", record | {"stands_for_sha256": "0" * 64}, tmp_path / "model.engine")
    assert isinstance(open_model(onnx_path), OnnxClassifier)
    assert "was built from another model" in capsys.readouterr().err


def test_build_and_measure_writes_every_variant_and_reports_them(prepared_digits, tmp_path):
    """The compress stage's work as a library call: the three model files are written, every
    variant is measured on the test split, and the summary's numbers are the variants' own."""
    from visionops.compression.build import Outputs, build_and_measure
    from visionops.config import CompressParams, TrainParams
    from visionops.data.loader import ImageBatches
    from visionops.data.prepared import open_prepared
    from visionops.device import resolve_device
    from visionops.models.serialize import save_model
    from visionops.models.zoo import create_model
    from visionops.training.loop import fit

    data = open_prepared(prepared_digits)
    meta = data.meta.model_meta()
    spec = {"arch": "simple_cnn", "in_channels": 1, "num_classes": 10, "width": 16, "dropout": 0.0}
    torch.manual_seed(0)
    model = create_model(spec)
    train_cfg = TrainParams(epochs=2, lr=0.01, crop_padding=0, val_fraction=0.0)
    setup = resolve_device("cpu")
    fit(model, ImageBatches(data.train.x, data.train.y, meta["mean"], meta["std"], setup.device), None,
        train_cfg, setup, progress=False)  # fmt: skip
    save_model(tmp_path / "model.pt", model, spec, meta)
    out = Outputs(tmp_path / "pruned.pt", tmp_path / "pruned_int8.onnx", tmp_path / "pruned_int8_trt.onnx")
    cfg = CompressParams(finetune_epochs=1, calibration_images=64, latency_batch_size=16, latency_repeats=2)
    report = build_and_measure(tmp_path / "model.pt", prepared_digits, out, cfg, train_cfg, tmp_path / "work")

    assert all(path.is_file() and path.stat().st_size > 0 for path in out)
    rows = {row["variant"]: row for row in report["variants"]}
    assert set(rows) == {
        "fp32_eager",
        "fp32_onnxruntime",
        "int8_onnxruntime",
        "pruned_eager",
        "pruned_int8_onnxruntime",
    }
    assert learned(rows["fp32_eager"]["accuracy"], data.test.y)  # a real model, really scored
    assert report["summary"]["int8_acc"] == rows["int8_onnxruntime"]["accuracy"]
    assert report["summary"]["pruned_int8_acc"] == rows["pruned_int8_onnxruntime"]["accuracy"]
    assert report["summary"]["pruned_macs_fewer"] > 1.5  # pruning ratio 0.5 per layer
    assert 0 < report["pruned_int8_tensorrt_form_accuracy"] <= 1
