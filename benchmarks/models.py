"""Which model the benchmark times, and a real-looking input for it.

The ultrasound model is ``edge/assets/resunet-lite.onnx`` (with its sidecar spec). Before that artifact
exists, :func:`resolve_us_model` exports an UNTRAINED resunet-lite to a temporary folder (same architecture,
so the same cost) and says so in the results: timings are valid, segmentation output is not. The PyTorch
eager baseline is the same architecture with the shipped weights (``training/weights/resunet-lite.pt``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.spec import ModelSpec, load_spec

REPO = Path(__file__).resolve().parents[1]
US_MODEL = REPO / "edge" / "assets" / "resunet-lite.onnx"
US_CHECKPOINT = REPO / "training" / "weights" / "resunet-lite.pt"  # the shipped model's own weights
DEMO_CLIP = REPO / "edge" / "assets" / "demo-normal.mp4"
US_VARIANT = "resunet-lite"


@dataclass(frozen=True)
class ModelInfo:
    path: Path
    spec: ModelSpec
    trained: bool
    note: str

    def to_json(self) -> dict:
        return {"path": _rel(self.path), "name": self.spec.name, "input": self.spec.input.to_json(),
                "outputs": [o.to_json() for o in self.spec.outputs], "precision": self.spec.precision,
                "sha256": hashlib.sha256(self.path.read_bytes()).hexdigest(), "trained": self.trained,
                "note": self.note}


def _rel(path: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def resolve_us_model(requested: Path | None, tmp: Path) -> ModelInfo:
    """The ONNX model to time: ``requested``, else the bundled one, else an untrained export into ``tmp``."""
    if requested is not None:
        return ModelInfo(Path(requested), load_spec(requested), True, "given with --model")
    if US_MODEL.is_file() and US_MODEL.with_suffix(".json").is_file():
        return ModelInfo(US_MODEL, load_spec(US_MODEL), True, "bundled artifact")
    path = export_untrained_us(tmp / f"{US_VARIANT}.onnx")
    return ModelInfo(path, load_spec(path), False,
                     f"{_rel(US_MODEL)} not found: timed an UNTRAINED {US_VARIANT} export (same architecture and "
                     "cost; outputs meaningless)")


def export_untrained_us(out: Path) -> Path:
    """Export a randomly initialised resunet-lite (needs torch) with the bundled model's spec layout."""
    import torch

    from export.onnx_export import export_onnx
    from export.us_model import PREPROCESS
    from training.models.resunet import LABELS, VARIANTS, build_model

    torch.manual_seed(0)
    size = VARIANTS[US_VARIANT].input_size
    export_onnx(build_model(US_VARIANT), torch.zeros(1, 1, size, size), out, name=US_VARIANT,
                task="us-segmentation", input_name="image", output_names=["logits"], preprocess=PREPROCESS,
                labels=list(LABELS), extra={"training": "none (benchmark stand-in, random weights)"})
    return out


def torch_baseline(checkpoint: Path | None, variant: str = US_VARIANT):
    """(eval-mode torch model, note): trained weights when the checkpoint exists, else random init."""
    import torch

    from training.models.resunet import build_model

    model = build_model(variant).eval()
    ckpt = Path(checkpoint) if checkpoint else US_CHECKPOINT
    if ckpt.is_file():
        model.load_state_dict(torch.load(ckpt, map_location="cpu"))
        return model, f"weights {_rel(ckpt)}"
    torch.manual_seed(0)
    return model, f"random init ({_rel(ckpt)} not found; cost is the same)"


def demo_input(spec: ModelSpec, clip: Path = DEMO_CLIP, frame_index: int = 40) -> np.ndarray:
    """A real-looking model input: one demo-clip frame through the runtime's own preprocessing.

    Returns a new float32 array of the spec's input shape (N = 1). Dense CNN cost does not depend on the
    pixel values, but a real frame keeps denormals and NaN-paths honest.
    """
    import cv2

    from edge.us.preprocess import Preprocessor

    cap = cv2.VideoCapture(str(clip))
    cap.set(cv2.CAP_PROP_POS_FRAMES, frame_index)
    ok, frame = cap.read()
    cap.release()
    if not ok:
        h, w = spec.input_hw
        return np.random.default_rng(0).random((1, 1, h, w), dtype=np.float32)
    x, _ = Preprocessor(spec)(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY))
    return np.array(x, dtype=np.float32, copy=True)


def open_alone(model: Path, requested: str, threads: int | None, calibration=None):
    """(Backend, Choice) for timing a model ALONE, as ``edge.backends.open_backend`` would open it, except that
    ONNX Runtime on the CPU keeps its intra-op spin-waiting on: with nothing else running that is its fastest
    setting (the jobs turn it off for their capture, video and decode threads; edge/backends/onnxruntime.py).
    The plain-loop and model-only references use this, so no ratio is flattered by a slowed reference."""
    from edge.backends import choose_backend, open_backend

    choice = choose_backend(requested)
    if choice.name == "onnxruntime-cpu":
        from edge.backends.onnxruntime import OnnxRuntimeBackend

        return OnnxRuntimeBackend(model, ["CPUExecutionProvider"], threads, spinning=True), choice
    return open_backend(model, requested, threads=threads, calibration=calibration)
