"""ONNX Runtime backend: the CPU path everywhere, and CUDA where onnxruntime-gpu is installed."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from edge.errors import BackendError, ModelError
from edge.spec import TensorSpec

_ORT_TYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(uint8)": "uint8",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
}


def _tensor_specs(args) -> tuple[TensorSpec, ...]:
    return tuple(
        TensorSpec(a.name, tuple(d if d is not None else "dyn" for d in a.shape), _ORT_TYPES.get(a.type, a.type))
        for a in args
    )


SPINNING_ENV = "DVT_EDGE_ORT_SPINNING"


class OnnxRuntimeBackend:
    """An ``onnxruntime.InferenceSession`` behind the Backend contract.

    providers: ORT execution providers in order of preference, e.g. ["CUDAExecutionProvider",
        "CPUExecutionProvider"]. ORT itself falls back silently when a provider fails to load; this class
        checks which provider the session actually took and reports it in ``name``.
    threads: intra-op threads; None leaves ORT's default (one per physical core).
    spinning: let ORT's intra-op threads spin-wait between parallel sections. Off by default: every job here
        runs other threads beside the model (capture, the video recorder, CT decoding), and spinning threads
        take their CPU. On the 2-core development machine, quiet, a paced 1080p 30 fps ``us run`` with the video
        recorded processed 596 and 599 of 600 frames with spinning off against 517 and 560 with it on, and
        ``ct scan`` on the JPEG 2000 sample ran 8% faster; the model alone is ~10% slower without spinning
        (benchmarks/results/cpu-2core-quiet/README.md). None: off unless the environment variable
        ``DVT_EDGE_ORT_SPINNING=1`` turns it on (to reproduce that comparison, or on a machine with cores to spare).
    """

    def __init__(self, model_path: str | Path, providers: list[str] | None = None, threads: int | None = None,
                 spinning: bool | None = None):
        try:
            import onnxruntime as ort
        except ImportError as exc:
            from edge.backends.ort_install import missing_message

            raise BackendError(missing_message(f"{model_path}: no ONNX Runtime is installed")) from exc
        path = Path(model_path)
        if not path.is_file():
            raise ModelError(f"{path}: ONNX model not found")
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads is not None:
            opts.intra_op_num_threads = int(threads)
            opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        if spinning is None:
            spinning = os.environ.get(SPINNING_ENV, "0").strip() == "1"
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
        self.spinning = bool(spinning)
        wanted = providers or ["CPUExecutionProvider"]
        available = ort.get_available_providers()
        missing = [p for p in wanted if p not in available]
        if missing:
            raise BackendError(
                f"ONNX Runtime providers {missing} are not available here (available: {available}); "
                "install onnxruntime-gpu for CUDA"
            )
        try:
            self._session = ort.InferenceSession(str(path), sess_options=opts, providers=wanted)
        except Exception as exc:  # ORT raises its own exception types (Fail, InvalidGraph, ...)
            raise ModelError(f"{path}: ONNX Runtime cannot load this model: {exc}") from exc
        self.providers = tuple(self._session.get_providers())
        self.name = f"onnxruntime:{self.providers[0]}"
        self.inputs = _tensor_specs(self._session.get_inputs())
        self.outputs = _tensor_specs(self._session.get_outputs())
        self._output_names = [o.name for o in self.outputs]
        self.model_path = path
        self.threads = threads or os.cpu_count()

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        try:
            values = self._session.run(self._output_names, feeds)
        except Exception as exc:
            raise BackendError(f"{self.model_path.name}: ONNX Runtime inference failed: {exc}") from exc
        return dict(zip(self._output_names, values))

    def close(self) -> None:
        self._session = None
