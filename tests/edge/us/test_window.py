"""The verdict window is in seconds, whatever the frame rate (a 30 fps stream must not keep 120 s)."""

from pathlib import Path

import numpy as np
import pytest

from edge.sources.base import Frame
from edge.spec import load_spec
from edge.us.pipeline import UltrasoundPipeline, UsConfig

MODEL = Path(__file__).resolve().parents[3] / "edge" / "assets" / "resunet-lite.onnx"


class DiscBackend:
    """A stand-in model: an artery disc and a vein disc at fixed places on the model grid."""

    name = "fake"

    def __init__(self, spec):
        self.spec = spec
        h, w = spec.input_hw
        yy, xx = np.mgrid[:h, :w]
        self.logits = np.zeros((1, 3, h, w), np.float32)
        self.logits[0, 0] = 5.0
        artery = (yy - h // 2) ** 2 + (xx - w // 3) ** 2 < (h // 12) ** 2
        vein = (yy - h // 2) ** 2 + (xx - 2 * w // 3) ** 2 < (h // 9) ** 2
        self.logits[0, 1][artery], self.logits[0, 0][artery] = 5.0, 0.0
        self.logits[0, 2][vein], self.logits[0, 0][vein] = 5.0, 0.0

    def infer(self, feeds):
        return {self.spec.outputs[0].name: self.logits}

    def close(self):
        pass


@pytest.mark.parametrize("fps", [15.0, 30.0, 60.0])
def test_curves_hold_window_seconds_at_any_frame_rate(fps):
    spec = load_spec(MODEL)
    pipe = UltrasoundPipeline(DiscBackend(spec), spec, UsConfig(window_s=10.0))
    image = np.full((240, 320), 40, np.uint8)
    n = int(25 * fps)
    for i in range(n):
        pipe.process(Frame(image=image, index=i, t_capture=float(i), t_media=i / fps))
    t = np.fromiter(pipe.t, float)
    assert t[-1] - t[0] <= 10.0 + 1e-9
    assert t[-1] - t[0] >= 10.0 - 2.0 / fps
    assert len(t) == len(pipe.vein) == len(pipe.artery_ratio) == len(pipe.vein_confidence)
