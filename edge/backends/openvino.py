"""OpenVINO backend (CPU): FP32, and INT8 quantized with NNCF from a calibration set of real-looking frames.

    --backend openvino        the ONNX model compiled by OpenVINO for the CPU, FP32 (f32 inference precision
                              forced, so a CPU with bf16/AMX does not quietly lower it)
    --backend openvino-int8   the same model quantized to INT8 by NNCF post-training quantization; built once
                              per model file and cached (``<cache>/openvino/<stem>-<sha12>-int8.xml``)

Both need the optional extra: ``pip install 'dvt-edge[openvino]'`` (openvino; nncf for INT8). On this project's
2-core development CPU, ONNX Runtime INT8 was slower than FP32, while OpenVINO INT8 took ~0.7x the time of
ONNX Runtime FP32 with mask Dice >= 0.99 (README, "Latency"; ``dvt-edge bench --only compare``).

Calibration set: passed in by the caller as a callable ``calibration(model) -> model inputs`` (a backend knows
no imaging domain, so it never preprocesses frames itself). The ultrasound commands pass
:func:`edge.us.int8_frames.calibration_inputs`: frames of the two bundled phantom compression clips (normal and
DVT, every 4th frame: 58 frames), preprocessed exactly as the frame loop does. They are synthetic, real-looking
B-mode screens with scanner chrome, vessels at rest and compressed; pass ``frames`` for a site's own clips.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Iterable

import numpy as np

from edge.backends.base import Calibration
from edge.errors import BackendError, ModelError
from edge.spec import TensorSpec

log = logging.getLogger("dvt-edge")

INSTALL = "pip install 'dvt-edge[openvino]'"
PRECISIONS = ("fp32", "int8")
CACHE_ENV = "DVT_EDGE_OPENVINO_CACHE"

_OV_TYPES = {"f32": "float32", "f16": "float16", "u8": "uint8", "i64": "int64", "i32": "int32"}


def _import_openvino():
    try:
        import openvino as ov
    except ImportError as exc:
        raise BackendError(f"backend 'openvino' asked for, but OpenVINO is not installed: {INSTALL}") from exc
    return ov


def default_cache_dir() -> Path:
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "dvt-edge" / "openvino"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def int8_path(model: Path, cache_dir: Path | None = None) -> Path:
    """Where the INT8 IR of ``model`` is cached: keyed by the ONNX file's content."""
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return cache / f"{model.stem}-{_sha256(model)[:12]}-int8.xml"


def build_int8(model: Path, out_xml: Path, frames: Iterable[np.ndarray]) -> Path:
    """Quantize ``model`` (ONNX) to INT8 with NNCF post-training quantization on ``frames`` (model inputs) and save
    the IR to ``out_xml`` (written under a temporary name, then renamed: a crash never leaves half an IR under the
    final name)."""
    ov = _import_openvino()
    try:
        import nncf
    except ImportError as exc:
        raise BackendError(f"backend 'openvino-int8' needs NNCF to quantize {model.name}: {INSTALL}") from exc
    data = list(frames)
    core = ov.Core()
    try:
        fp32 = core.read_model(str(model))
    except Exception as exc:
        raise ModelError(f"{model}: OpenVINO cannot read this model: {exc}") from exc
    quantized = nncf.quantize(fp32, nncf.Dataset(data), subset_size=len(data),
                              preset=nncf.QuantizationPreset.MIXED)
    out_xml = Path(out_xml)
    out_xml.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_xml.with_name(f".{out_xml.stem}.{os.getpid()}.part.xml")
    try:
        ov.save_model(quantized, str(tmp))
        os.replace(tmp.with_suffix(".bin"), out_xml.with_suffix(".bin"))
        os.replace(tmp, out_xml)
    finally:
        tmp.unlink(missing_ok=True)
        tmp.with_suffix(".bin").unlink(missing_ok=True)
    return out_xml


class OpenVinoBackend:
    """An OpenVINO compiled model on the CPU behind the Backend contract.

    model: an ``.onnx`` file (FP32 compiled as is) or an ``.xml`` IR (e.g. the INT8 one).
    threads: inference threads; None leaves OpenVINO's default. One stream, latency hint: single-frame
    streaming, like the frame loop.
    """

    def __init__(self, model: str | Path, threads: int | None = None, precision: str = "fp32",
                 *, source: Path | None = None):
        ov = _import_openvino()
        path = Path(model)
        if not path.is_file():
            raise ModelError(f"{path}: model not found")
        core = ov.Core()
        config = {"PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": "1", "INFERENCE_PRECISION_HINT": "f32"}
        if threads is not None:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        try:
            self._compiled = core.compile_model(core.read_model(str(path)), "CPU", config)
        except Exception as exc:
            raise ModelError(f"{path}: OpenVINO cannot compile this model for the CPU: {exc}") from exc
        self._request = self._compiled.create_infer_request()
        self.precision = precision
        self.name = f"openvino:CPU:{precision.upper()}"
        self.inputs = tuple(self._spec(p) for p in self._compiled.inputs)
        self.outputs = tuple(self._spec(p) for p in self._compiled.outputs)
        self._output_names = [o.name for o in self.outputs]
        self.model_path = source or path
        self.threads = threads

    @staticmethod
    def _spec(port) -> TensorSpec:
        shape = tuple(int(d.get_length()) if d.is_static else "dyn" for d in port.get_partial_shape())
        dtype = _OV_TYPES.get(port.get_element_type().get_type_name(), port.get_element_type().get_type_name())
        return TensorSpec(port.get_any_name(), shape, dtype)

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        try:
            result = self._request.infer(feeds)
        except Exception as exc:
            raise BackendError(f"{self.model_path.name}: OpenVINO inference failed: {exc}") from exc
        return {name: result[port] for name, port in zip(self._output_names, self._compiled.outputs)}

    def close(self) -> None:
        self._request = None
        self._compiled = None


def open_openvino_backend(model: Path, threads: int | None = None, precision: str = "fp32",
                          cache_dir: Path | None = None, calibration: Calibration | None = None) -> OpenVinoBackend:
    """FP32: compile the ONNX model. INT8: compile the cached INT8 IR, building it first when missing from the
    inputs ``calibration(model)`` gives (BackendError when it is needed and None)."""
    model = Path(model)
    if precision not in PRECISIONS:
        raise BackendError(f"OpenVINO precision '{precision}': choose one of {', '.join(PRECISIONS)}")
    if not model.is_file():
        raise ModelError(f"{model}: ONNX model not found")
    if precision == "fp32":
        return OpenVinoBackend(model, threads, "fp32")
    from edge.spec import load_spec

    task = load_spec(model).task
    if task != "us-segmentation":
        raise BackendError(f"{model.name}: backend 'openvino-int8' calibrates on ultrasound frames and cannot "
                           f"quantize a '{task}' model; use --backend openvino (FP32) for it")
    xml = int8_path(model, cache_dir)
    if not xml.is_file() or not xml.with_suffix(".bin").is_file():
        if calibration is None:
            raise BackendError(f"{model.name}: backend 'openvino-int8' has no INT8 model cached ({xml}) and was given "
                               "no calibration frames to quantize it on")
        log.warning("openvino-int8: quantizing %s with NNCF on the calibration frames (once; cached as %s)",
                    model.name, xml)
        build_int8(model, xml, calibration(model))
    return OpenVinoBackend(xml, threads, "int8", source=model)
