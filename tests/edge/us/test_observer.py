"""The pipeline's VerdictObserver sees every verdict it decides, with the measurements behind it."""

from pathlib import Path

import numpy as np

from edge.sources.base import Frame
from edge.spec import load_spec
from edge.us.measure import Measurements
from edge.us.pipeline import UltrasoundPipeline
from tests.edge.us.test_window import DiscBackend

MODEL = Path(__file__).resolve().parents[3] / "edge" / "assets" / "resunet-lite.onnx"


def test_observer_sees_each_verdict_and_its_measurements():
    spec = load_spec(MODEL)
    seen = []
    pipe = UltrasoundPipeline(DiscBackend(spec), spec, observer=lambda m, v: seen.append((m, v)))
    image = np.full((240, 320), 40, np.uint8)
    results = [pipe.process(Frame(image=image, index=i, t_capture=float(i), t_media=i / 15.0)) for i in range(45)]
    assert len(seen) >= len(results)  # one per frame at least (plus any closed episode)
    assert all(isinstance(m, Measurements) for m, _ in seen)
    assert seen[-1][1] == results[-1].verdict  # the last one seen is the verdict the frame reported
    m, v = seen[-1]
    assert v.compressibility == m.compressibility and v.baseline_vein_area_px == m.baseline_area


def test_without_observer_verdicts_are_the_same():
    spec = load_spec(MODEL)
    image = np.full((240, 320), 40, np.uint8)
    a = UltrasoundPipeline(DiscBackend(spec), spec)
    b = UltrasoundPipeline(DiscBackend(spec), spec, observer=lambda m, v: None)
    for i in range(30):
        f = Frame(image=image, index=i, t_capture=float(i), t_media=i / 15.0)
        assert a.process(f).verdict == b.process(f).verdict
