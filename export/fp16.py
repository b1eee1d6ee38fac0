"""FP32 ONNX -> FP16 ONNX (FP16 weights and compute, float32 graph IO), its spec, and its parity contract.

Why an FP16 *graph*: TensorRT builds strongly typed networks (TRT 11 and TensorRT-RTX have no FP16 builder
flag), so precision comes from the ONNX. Callers are unchanged: graph inputs/outputs stay float32 and Casts
are inserted at the boundaries (``keep_io_types=True``).

Conversion is onnxconverter-common's ``convert_float_to_float16`` (1.16 works with onnx 1.23). Ops in its
default block list stay FP32, wrapped in Casts; for our models that is ``Resize`` (4 small bilinear
upsamplings in ResUNet): ONNX Runtime's CPU kernels do not all take FP16 Resize, the cost is negligible, and
keeping it FP32 keeps the ORT-CPU parity check meaningful. Softmax is not in our graphs (argmax of logits);
weights beyond the FP16 range are clamped by the converter (none in ours).

Parity (:func:`clip_parity`): the FP16 model must do the FP32 model's job on the demo clips, run through
the real :class:`~edge.us.pipeline.UltrasoundPipeline`: pooled mask Dice >= 0.99 per class and final
compressibility within 0.02. The same function compares a TensorRT backend with ONNX Runtime FP32.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from edge.backends.base import Backend
from edge.backends.tensorrt.engine import fp16_is_current, fp16_sibling, sha256_file
from edge.errors import ModelError
from edge.spec import ModelSpec, load_spec, save_spec
from export.parity import SegParity, segmentation_parity

PARITY_MIN_DICE = 0.99
PARITY_MAX_COMPRESSIBILITY_DIFF = 0.02


def _converter():
    try:
        from onnxconverter_common import __version__, float16
    except ImportError as exc:
        raise ModelError("FP16 conversion needs onnxconverter-common: "
                         "pip install 'onnxconverter-common>=1.14'") from exc
    return float16, __version__


def convert_fp16(fp32_path: str | Path, out_path: str | Path | None = None) -> ModelSpec:
    """Write ``<name>.fp16.onnx`` (or ``out_path``) and its spec beside it; returns the FP16 spec.

    The spec keeps the FP32 IO (float32) and adds ``precision: fp16``, ``derived_from`` (the FP32 file and
    sha256: a stale FP16 model is detected by :func:`edge.backends.tensorrt.engine.fp16_is_current`),
    ``artifact`` and ``fp16`` (converter version, ops kept in FP32)."""
    fp32_path = Path(fp32_path)
    out = Path(out_path) if out_path else fp16_sibling(fp32_path)
    spec = load_spec(fp32_path)
    if spec.precision != "fp32":
        raise ModelError(f"{fp32_path}: spec precision is '{spec.precision}'; convert the FP32 model")
    float16, conv_version = _converter()
    model = onnx.load(str(fp32_path))
    kept = sorted({n.op_type for n in model.graph.node} & set(float16.DEFAULT_OP_BLOCK_LIST))
    try:
        half = float16.convert_float_to_float16(model, keep_io_types=True)
        onnx.checker.check_model(half, full_check=True)
    except Exception as exc:  # the converter and checker raise assorted types
        raise ModelError(f"{fp32_path}: FP16 conversion failed: {exc}") from exc
    io_types = {v.name: v.type.tensor_type.elem_type for v in (*half.graph.input, *half.graph.output)}
    bad = {n: onnx.TensorProto.DataType.Name(t) for n, t in io_types.items() if t != onnx.TensorProto.FLOAT}
    if bad:
        raise ModelError(f"{out}: graph IO must stay float32 for callers, got {bad}")
    from edge.atomic import atomic_path

    with atomic_path(out) as tmp:  # a reader never sees half a model under the final name
        onnx.save(half, str(tmp))
    extra = {k: v for k, v in spec.extra.items() if k not in ("artifact", "parity")}
    half_spec = ModelSpec(
        name=spec.name, task=spec.task, input=spec.input, outputs=spec.outputs, preprocess=spec.preprocess,
        labels=spec.labels, precision="fp16", opset=spec.opset,
        extra={**extra,
               "artifact": {"file": out.name, "sha256": sha256_file(out), "bytes": out.stat().st_size},
               "derived_from": {"file": fp32_path.name, "sha256": sha256_file(fp32_path), "precision": "fp32"},
               "fp16": {"converter": f"onnxconverter-common {conv_version}", "keep_io_types": True,
                        "fp32_ops": kept}},
    )
    save_spec(half_spec, out)
    return half_spec


def ensure_fp16(fp32_path: str | Path) -> Path:
    """The current FP16 twin of ``fp32_path``, converting when it is missing or stale."""
    fp32_path = Path(fp32_path)
    twin = fp16_sibling(fp32_path)
    if not fp16_is_current(twin, fp32_path):
        convert_fp16(fp32_path, twin)
    return twin


# ------------------------------------------------------------------------------------------------ parity
class _Recorder:
    """Wraps a backend and keeps a copy of every output of ``name`` (backends may reuse their buffers)."""

    def __init__(self, backend: Backend, name: str):
        self.backend, self.output, self.seen = backend, name, []
        self.name, self.inputs, self.outputs = backend.name, backend.inputs, backend.outputs

    def infer(self, feeds):
        out = self.backend.infer(feeds)
        self.seen.append(np.array(out[self.output], dtype=np.float32, copy=True))
        return out

    def close(self) -> None:
        self.backend.close()


@dataclass(frozen=True)
class ClipParity:
    clip: str
    seg: SegParity
    compressibility_ref: float | None
    compressibility_test: float | None
    verdict_ref: str
    verdict_test: str

    @property
    def compressibility_diff(self) -> float | None:
        a, b = self.compressibility_ref, self.compressibility_test
        if a is None and b is None:
            return 0.0
        return None if a is None or b is None else abs(a - b)

    @property
    def ok(self) -> bool:
        d = self.compressibility_diff
        return self.seg.min_dice >= PARITY_MIN_DICE and d is not None and d <= PARITY_MAX_COMPRESSIBILITY_DIFF

    def to_json(self) -> dict:
        return {"clip": self.clip, "frames": self.seg.frames, "dice": self.seg.dice_per_class,
                "min_frame_dice": self.seg.min_frame_dice, "max_abs_logit_diff": self.seg.max_abs_logit_diff,
                "compressibility": [self.compressibility_ref, self.compressibility_test],
                "verdict": [self.verdict_ref, self.verdict_test], "ok": self.ok}


def clip_parity(ref: Backend, test: Backend, spec: ModelSpec, clip: str | Path) -> ClipParity:
    """Run the real ultrasound pipeline with each backend over every frame of ``clip`` (read with OpenCV,
    preprocessed like the runtime) and compare argmax masks (pooled Dice) and the final verdicts."""
    from edge.sources.video import VideoFileSource
    from edge.us.pipeline import UltrasoundPipeline

    out = spec.outputs[0].name
    recs = [_Recorder(ref, out), _Recorder(test, out)]
    pipes = [UltrasoundPipeline(r, spec) for r in recs]
    with VideoFileSource(clip) as source:
        for frame in source:
            for p in pipes:
                p.process(frame)
    if not recs[0].seen:
        raise ModelError(f"{clip}: no frames decoded")
    seg = segmentation_parity(np.concatenate(recs[0].seen), np.concatenate(recs[1].seen), list(spec.labels))
    v = [p.current_verdict(final=True) for p in pipes]
    return ClipParity(Path(clip).name, seg, v[0].compressibility, v[1].compressibility, v[0].verdict, v[1].verdict)


def report(results: list[ClipParity]) -> str:
    return json.dumps([r.to_json() for r in results], indent=2)
