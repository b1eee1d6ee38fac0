"""FP16 ONNX: structure (FP16 weights, float32 IO, Casts at the boundaries), spec and staleness, and parity
with FP32 on the demo clips through the real ultrasound pipeline (ONNX Runtime CPU runs both).

Parity models: the bundled ``edge/assets/resunet-lite.onnx`` when it is there, and always the hand-set
stand-in (export/tensorrt/standin.py), whose vein-area curve gives a real compressibility (about 0.99 on
the normal clip, 0.03 on the DVT clip), so the compressibility check compares numbers, not two Nones.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest

pytest.importorskip("onnxconverter_common", reason="FP16 conversion needs onnxconverter-common")

from edge.assets import DEMO_CLIPS, asset, asset_dir
from edge.backends.onnxruntime import OnnxRuntimeBackend
from edge.backends.tensorrt.engine import fp16_is_current, sha256_file
from edge.errors import ModelError
from edge.spec import load_spec
from export.fp16 import PARITY_MAX_COMPRESSIBILITY_DIFF, PARITY_MIN_DICE, clip_parity, convert_fp16, ensure_fp16


@pytest.fixture(scope="module")
def resunet(tmp_path_factory) -> Path:
    """An untrained resunet-lite exported like the real one (structure tests only)."""
    import torch

    from export.onnx_export import export_onnx
    from export.us_model import PREPROCESS
    from training.models.resunet import LABELS, VARIANTS, build_model

    torch.manual_seed(0)
    size = VARIANTS["resunet-lite"].input_size
    path = tmp_path_factory.mktemp("resunet") / "resunet-lite.onnx"
    export_onnx(build_model("resunet-lite"), torch.zeros(1, 1, size, size), path, name="resunet-lite",
                task="us-segmentation", input_name="image", output_names=["logits"], preprocess=PREPROCESS,
                labels=list(LABELS))
    return path


def test_fp16_graph_has_fp16_weights_and_float32_io(resunet):
    spec = convert_fp16(resunet)
    half_path = resunet.with_name("resunet-lite.fp16.onnx")
    half = onnx.load(str(half_path))
    onnx.checker.check_model(half, full_check=True)
    f32, f16 = onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16
    assert [v.type.tensor_type.elem_type for v in (*half.graph.input, *half.graph.output)] == [f32, f32]
    conv_w = {n.input[1] for n in half.graph.node if n.op_type == "Conv"}
    kinds = {i.data_type for i in half.graph.initializer if i.name in conv_w}
    assert kinds == {f16}, "Conv weights must be FP16"
    casts = [n for n in half.graph.node if n.op_type == "Cast"]
    assert any(n.input[0] == "image" for n in casts) and any(n.output[0] == "logits" for n in casts)
    assert half_path.stat().st_size < 0.6 * resunet.stat().st_size
    # the spec: same IO as FP32, precision fp16, provenance of the FP32 bytes
    assert spec.precision == "fp16" and spec.input == load_spec(resunet).input
    assert spec.outputs == load_spec(resunet).outputs
    assert spec.extra["derived_from"] == {"file": "resunet-lite.onnx", "sha256": sha256_file(resunet),
                                          "precision": "fp32"}
    assert spec.extra["artifact"]["sha256"] == sha256_file(half_path)
    assert spec.extra["fp16"]["fp32_ops"] == ["Resize"]
    assert load_spec(half_path).precision == "fp16"


def test_fp16_outputs_track_fp32(resunet):
    half = ensure_fp16(resunet)
    x = np.random.default_rng(1).random((1, 1, 192, 192), dtype=np.float32)
    a = OnnxRuntimeBackend(resunet).infer({"image": x})["logits"]
    b = OnnxRuntimeBackend(half).infer({"image": x})["logits"]
    assert b.dtype == np.float32 and b.shape == a.shape
    assert np.abs(a - b).max() <= 2e-3 * max(1.0, float(np.abs(a).max()))


def test_stale_fp16_is_detected_and_regenerated(tmp_path, resunet):
    fp32 = tmp_path / "m.onnx"
    shutil.copy(resunet, fp32)
    shutil.copy(resunet.with_suffix(".json"), fp32.with_suffix(".json"))
    half = ensure_fp16(fp32)
    assert fp16_is_current(half, fp32)
    mtime = half.stat().st_mtime_ns
    assert ensure_fp16(fp32) == half and half.stat().st_mtime_ns == mtime  # current: not rewritten
    model = onnx.load(str(fp32))
    model.producer_name = "retrained"
    onnx.save(model, str(fp32))
    assert not fp16_is_current(half, fp32)
    ensure_fp16(fp32)
    assert fp16_is_current(half, fp32)


def test_only_fp32_models_are_converted(tmp_path, resunet):
    half = ensure_fp16(resunet)
    with pytest.raises(ModelError, match="spec precision is 'fp16'"):
        convert_fp16(half, tmp_path / "again.onnx")


def _parity_models(tmp_path: Path) -> list[Path]:
    from export.tensorrt.standin import export_standin

    models = [tmp_path / "darkblob-standin.onnx"]
    export_standin(models[0])
    bundled = asset_dir() / "resunet-lite.onnx"
    if bundled.is_file():  # copied: the FP16 twin must not be written into the source tree
        for p in (bundled, bundled.with_suffix(".json")):
            shutil.copy(p, tmp_path / p.name)
        models.append(tmp_path / bundled.name)
    return models


@pytest.mark.slow
def test_fp16_matches_fp32_on_the_demo_clips(tmp_path):
    """Pooled mask Dice >= 0.99 per class and final compressibility within 0.02, per clip, per model."""
    for model in _parity_models(tmp_path):
        ref, test = OnnxRuntimeBackend(model), OnnxRuntimeBackend(ensure_fp16(model))
        results = [clip_parity(ref, test, load_spec(model), asset(c)) for c in DEMO_CLIPS.values()]
        report = json.dumps([r.to_json() for r in results])
        for r in results:
            assert r.seg.frames > 100, report
            assert r.seg.min_dice >= PARITY_MIN_DICE, report
            assert r.compressibility_diff is not None, report
            assert r.compressibility_diff <= PARITY_MAX_COMPRESSIBILITY_DIFF, report
            assert r.verdict_ref == r.verdict_test, report
        assert any(r.compressibility_ref is not None for r in results), f"{model.name}: no measurement: {report}"
        if model.name.startswith("darkblob"):  # known behaviour of the stand-in: a real, discriminating curve
            by_clip = {r.clip: r for r in results}
            assert by_clip["demo-normal.mp4"].compressibility_ref > 0.8, report
            assert by_clip["demo-dvt.mp4"].compressibility_ref < 0.3, report


def test_cli_export_fp16(tmp_path, resunet, capsys):
    from edge.cli import main

    fp32 = tmp_path / "m.onnx"
    shutil.copy(resunet, fp32)
    shutil.copy(resunet.with_suffix(".json"), fp32.with_suffix(".json"))
    assert main(["export", "fp16", str(fp32)]) == 0
    out = capsys.readouterr().out
    assert "m.fp16.onnx" in out and "kept in FP32: Resize" in out
    assert load_spec(tmp_path / "m.fp16.onnx").precision == "fp16"
    assert main(["export", "fp16", str(tmp_path / "missing.onnx")]) == 4  # ModelError exit code


def _bundled_models() -> list[Path]:
    from export.tensorrt.aot import bundled_models

    return bundled_models()


@pytest.mark.parametrize("model", _bundled_models(), ids=lambda p: p.name)
def test_fp16_of_every_bundled_model_keeps_its_interface_and_outputs(model, tmp_path):
    """Spec-driven, any task: the FP16 twin has the FP32 model's IO and its outputs stay within 1% of
    the FP32 output range on a smooth real-valued input (task-level parity is tested per task)."""
    import cv2

    for p in (model, model.with_suffix(".json")):
        shutil.copy(p, tmp_path / p.name)
    fp32 = tmp_path / model.name
    spec = load_spec(fp32)
    half = ensure_fp16(fp32)
    ref, test = OnnxRuntimeBackend(fp32), OnnxRuntimeBackend(half)
    io = [[(t.name, t.dtype) for t in b.inputs + b.outputs] for b in (ref, test)]
    assert io[0] == io[1]
    _, c, h, w = spec.input.shape
    x = np.random.default_rng(0).random((h, w, c), dtype=np.float32)
    x = cv2.GaussianBlur(x, (0, 0), 4).reshape(h, w, c).transpose(2, 0, 1)[None]
    x = ((x - x.min()) / (x.max() - x.min())).astype(np.float32)
    a, b = ref.infer({spec.input.name: x}), test.infer({spec.input.name: x})
    for o in spec.outputs:
        assert b[o.name].shape == a[o.name].shape
        assert np.abs(a[o.name] - b[o.name]).max() <= 0.01 * np.abs(a[o.name]).max(), o.name
