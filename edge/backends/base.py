"""The Backend seam: one contract for every inference runtime (ONNX Runtime, TensorRT, test doubles).

A backend is created once, before the frame loop starts, and reused for every frame: no per-frame
allocation of sessions, engines or buffers. ``infer`` takes and returns numpy arrays keyed by tensor name.
Arrays returned by ``infer`` may be views of buffers the backend reuses: copy them if you keep them past
the next ``infer`` call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from edge.spec import TensorSpec

# Model inputs to quantize a model on, given its path: a backend that quantizes (openvino-int8) gets them from the
# caller, which knows the imaging domain (ultrasound: edge.us.int8_frames.calibration_inputs).
Calibration = Callable[[Path], Iterable[np.ndarray]]


@runtime_checkable
class Backend(Protocol):
    name: str  # e.g. "onnxruntime:CPUExecutionProvider", "tensorrt"
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def close(self) -> None: ...


def check_feeds(backend: Backend, feeds: dict[str, np.ndarray]) -> None:
    """Raise ValueError naming the tensor when a feed is missing or has the wrong fixed shape or dtype."""
    for spec in backend.inputs:
        if spec.name not in feeds:
            raise ValueError(f"input '{spec.name}' missing from feeds (got {sorted(feeds)})")
        arr = feeds[spec.name]
        if arr.dtype != np.dtype(spec.dtype):
            raise ValueError(f"input '{spec.name}' must be {spec.dtype}, got {arr.dtype}")
        if len(arr.shape) != len(spec.shape) or any(
            isinstance(d, int) and d != a for d, a in zip(spec.shape, arr.shape)
        ):
            raise ValueError(f"input '{spec.name}' must have shape {spec.shape}, got {arr.shape}")
