"""Choosing a backend: one table of the names a user may ask for, and the ``auto`` policy.

``auto`` prefers TensorRT when a GPU and TensorRT are present, then ONNX Runtime with CUDA, then ONNX
Runtime on the CPU, and always says which it took and why (never a silent downgrade). Asking for a
specific backend that cannot run here is an error, not a fallback.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from edge.backends.base import Backend, Calibration
from edge.backends.tensorrt.cuda_mem import available_bindings  # find_spec only, like the flavour probe
from edge.backends.tensorrt.flavour import tensorrt_flavour
from edge.errors import BackendError
from edge.gpu import probe_gpu

BACKEND_NAMES = ("auto", "onnxruntime", "onnxruntime-cpu", "onnxruntime-cuda", "tensorrt", "triton", "openvino",
                 "openvino-int8")


@dataclass(frozen=True)
class Choice:
    name: str  # one of BACKEND_NAMES except "auto"
    reason: str


def _ort_providers() -> list[str]:
    try:
        import onnxruntime as ort
    except ImportError:
        return []
    return list(ort.get_available_providers())


def choose_backend(requested: str = "auto") -> Choice:
    """Resolve a requested backend name to a concrete one, with the reason. Raises BackendError."""
    if requested not in BACKEND_NAMES:
        raise BackendError(f"unknown backend '{requested}': choose one of {', '.join(BACKEND_NAMES)}")
    gpu = probe_gpu()
    providers = _ort_providers()
    from edge.backends.ort_install import duplicate_warning

    dup = duplicate_warning()
    if dup:  # printed by the CLI's logging (WARNING), and shown by `dvt-edge doctor`
        import logging

        logging.getLogger("dvt-edge").warning(dup)
    if requested == "auto":
        flavour = tensorrt_flavour()
        bindings = available_bindings()
        if gpu.available and flavour and bindings:
            return Choice("tensorrt", f"GPU {gpu.name}, {flavour} and {bindings[0]} found")
        if gpu.available and "CUDAExecutionProvider" in providers:
            why = ("TensorRT not installed" if not flavour else
                   f"{flavour} present but no CUDA binding (pip install cuda-python)")
            return Choice("onnxruntime-cuda", f"GPU {gpu.name} found, {why}; ONNX Runtime CUDA provider available")
        if not providers:
            from edge.backends.ort_install import missing_message

            raise BackendError(missing_message("no inference runtime is installed (no ONNX Runtime, no usable "
                                               "TensorRT)"))
        return Choice("onnxruntime-cpu", f"ONNX Runtime on the CPU ({gpu.describe()})")
    if requested == "tensorrt":
        if not gpu.available:
            raise BackendError(f"backend 'tensorrt' asked for, but there is {gpu.describe()}; use --backend auto")
        if tensorrt_flavour() is None:
            raise BackendError("backend 'tensorrt' asked for, but neither tensorrt nor tensorrt_rtx is installed")
        if not available_bindings():
            raise BackendError("backend 'tensorrt' asked for, but no CUDA binding is installed: "
                               "pip install cuda-python (or pycuda)")
        return Choice("tensorrt", "asked for")
    if requested in ("openvino", "openvino-int8"):  # OpenVINO on the CPU (edge/backends/openvino.py); never auto
        if importlib.util.find_spec("openvino") is None:
            raise BackendError(f"backend '{requested}' asked for, but OpenVINO is not installed: "
                               "pip install 'dvt-edge[openvino]'")
        if requested == "openvino-int8":
            return Choice(requested, "asked for; INT8 quantized by NNCF, cached after the first run")
        return Choice(requested, "asked for; FP32 on the CPU")
    if requested == "triton":  # a remote Triton server (edge/backends/triton.py); never picked by auto
        from edge.backends.triton import triton_url

        if importlib.util.find_spec("tritonclient") is None:
            raise BackendError("backend 'triton' asked for, but the Triton client is not installed: "
                               "pip install 'dvt-edge[triton]'")
        return Choice("triton", f"asked for; server {triton_url()}")
    if requested == "onnxruntime-cuda":
        if "CUDAExecutionProvider" not in providers:
            raise BackendError(
                f"backend 'onnxruntime-cuda' asked for, but ONNX Runtime has no CUDA provider (has {providers}); "
                "take the GPU build instead of the CPU one: pip uninstall -y onnxruntime && pip install "
                "'dvt-edge[gpu]' (on a Jetson: NVIDIA's onnxruntime-gpu wheel for your JetPack)"
            )
        if not gpu.available:
            raise BackendError(f"backend 'onnxruntime-cuda' asked for, but there is {gpu.describe()}")
        return Choice("onnxruntime-cuda", "asked for")
    if not providers:
        from edge.backends.ort_install import missing_message

        raise BackendError(missing_message("backend 'onnxruntime' asked for, but no ONNX Runtime is installed"))
    return Choice("onnxruntime-cpu", "asked for")


def _open_ort_cpu(model: Path, threads: int | None) -> Backend:
    from edge.backends.onnxruntime import OnnxRuntimeBackend

    return OnnxRuntimeBackend(model, ["CPUExecutionProvider"], threads)


def _open_ort_cuda(model: Path, threads: int | None) -> Backend:
    from edge.backends.onnxruntime import OnnxRuntimeBackend

    return OnnxRuntimeBackend(model, ["CUDAExecutionProvider", "CPUExecutionProvider"], threads)


def _open_tensorrt(model: Path, threads: int | None) -> Backend:
    try:
        from edge.backends.tensorrt.runner import open_tensorrt_backend
    except ImportError as exc:
        raise BackendError(f"the TensorRT backend cannot be loaded: {exc}") from exc
    return open_tensorrt_backend(model)


def _open_triton(model: Path, threads: int | None) -> Backend:
    from edge.backends.triton import open_triton_backend

    return open_triton_backend(model)


def _open_openvino(model: Path, threads: int | None) -> Backend:
    from edge.backends.openvino import open_openvino_backend

    return open_openvino_backend(model, threads, "fp32")


def _open_openvino_int8(model: Path, threads: int | None, calibration: Calibration | None = None) -> Backend:
    from edge.backends.openvino import open_openvino_backend

    return open_openvino_backend(model, threads, "int8", calibration=calibration)


OPENERS: dict[str, Callable[[Path, int | None], Backend]] = {
    "openvino": _open_openvino,
    "openvino-int8": _open_openvino_int8,
    "triton": _open_triton,
    "onnxruntime-cpu": _open_ort_cpu,
    "onnxruntime-cuda": _open_ort_cuda,
    "tensorrt": _open_tensorrt,
}


def open_backend(model: str | Path, requested: str = "auto", threads: int | None = None,
                 calibration: Calibration | None = None) -> tuple[Backend, Choice]:
    """Create the backend for ``model`` (an ``.onnx`` path; TensorRT builds or reuses a cached engine).

    calibration: model inputs to quantize on, for ``openvino-int8`` when its INT8 model is not cached yet (the
    ultrasound commands pass :func:`edge.us.int8_frames.calibration_inputs`); ignored by the other backends.
    """
    choice = choose_backend(requested)
    if choice.name == "openvino-int8":
        return _open_openvino_int8(Path(model), threads, calibration), choice
    return OPENERS[choice.name](Path(model), threads), choice
