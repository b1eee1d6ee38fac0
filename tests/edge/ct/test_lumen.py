"""Vessel-lumen candidate stage (edge/ct/lumen.py): known-answer synthetic HU slices."""

from __future__ import annotations

import numpy as np
import pytest

from edge.ct.lumen import LumenParams, LumenStage, analyse_slice, fuse
from edge.ct.types import CTSlice, Detection

PS = (0.8, 0.8)
P = LumenParams()


def _disc(img, cy, cx, r, value):
    yy, xx = np.mgrid[0:img.shape[0], 0:img.shape[1]]
    img[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = value


def _tissue(shape=(96, 96), hu=50.0, noise=8.0, seed=0):
    rng = np.random.default_rng(seed)
    return (hu + noise * rng.standard_normal(shape)).astype(np.float32)


def _run(slices_hu, p=P):
    """Candidates per slice from the stage fed 3-slice windows in ascending order (as the pipeline does)."""
    stage = LumenStage(p)
    sl = [CTSlice(h, i, 3.0 * i, PS) for i, h in enumerate(slices_hu)]
    n = len(sl)
    return [stage.detect([sl[max(i - 1, 0)], sl[i], sl[min(i + 1, n - 1)]], sl[i]) for i in range(n)]


def _hit(cands, box, iou=0.1):
    def ov(a, b):
        iw, ih = min(a[2], b[2]) - max(a[0], b[0]), min(a[3], b[3]) - max(a[1], b[1])
        if iw <= 0 or ih <= 0:
            return 0.0
        return iw * ih / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - iw * ih)
    return [s for b, s in cands if ov(b, box) >= iou]


def _vessel(cy=48, cx=48, r=9, lumen=220.0, seed=0, fat=0):
    img = _tissue(seed=seed)
    if fat:
        _disc(img, cy, cx, r + fat, -90.0)  # the fat plane a deep vein runs in
    _disc(img, cy, cx, r, lumen)
    return img


def test_eccentric_dark_hole_in_a_bright_disc_is_a_candidate():
    img = _vessel()
    _disc(img, 50, 51, 4, 50.0)  # clot, eccentric, enclosed by contrast
    sl = analyse_slice(img, PS, P)
    hole = (47, 46, 56, 55)
    assert _hit(sl.partial, hole), sl.partial
    # and over slices: a candidate on each slice that carries it
    cands = _run([_vessel(seed=s) if s in (0, 4) else img for s in range(5)])
    assert all(_hit(cands[i], hole) for i in (1, 2, 3))
    assert not any(_hit(cands[i], hole) for i in (0, 4))


def test_partial_defect_touching_the_wall_crescent_of_contrast():
    img = _vessel()
    _disc(img, 48, 54, 6, 45.0)  # a bite taken from the right side of the lumen, contrast wraps around it
    sl = analyse_slice(img, PS, P)
    assert _hit(sl.partial, (49, 42, 58, 55)), sl.partial


def test_occluded_stretch_of_a_bright_tube_is_a_candidate():
    slices = []
    for z in range(10):
        img = _vessel(seed=z, fat=3)
        if 4 <= z <= 6:
            _disc(img, 48, 48, 9, 55.0)  # the whole lumen dark over three slices, bright above and below
            img += np.random.default_rng(100 + z).normal(0, 8, img.shape).astype(np.float32)
        slices.append(img)
    cands = _run(slices)
    box = (39, 39, 58, 58)
    assert all(_hit(cands[z], box) for z in (4, 5, 6)), [cands[z] for z in (4, 5, 6)]
    assert not any(_hit(cands[z], box) for z in (0, 1, 2, 8, 9))


def test_uniformly_bright_vessel_gives_nothing():
    assert all(c == [] for c in _run([_vessel(seed=z) for z in range(6)]))


def test_dark_round_structure_without_a_bright_tube_gives_nothing():
    slices = []
    for z in range(6):
        img = _tissue(hu=-90.0, seed=z)  # fat
        _disc(img, 48, 48, 9, 55.0)  # a round soft-tissue structure (a node, a muscle belly)
        slices.append(img)
    assert all(c == [] for c in _run(slices))


def test_bright_vessel_next_to_dark_fat_is_not_a_defect():
    slices = []
    for z in range(6):
        img = _tissue(seed=z)
        img[:, :40] = -100.0  # fat beside the vessel
        _disc(img, 48, 46, 9, 220.0)
        slices.append(img)
    assert all(c == [] for c in _run(slices))


def test_bone_ring_around_marrow_is_not_a_lumen():
    img = _tissue()
    _disc(img, 48, 48, 9, 1200.0)  # cortex
    _disc(img, 48, 48, 6, 40.0)  # marrow
    assert analyse_slice(img, PS, P).partial == []


def test_bad_input_names_the_slice():
    with pytest.raises(ValueError, match="slice 7"):
        analyse_slice(np.zeros((4, 4, 2)), PS, P, index=7)
    with pytest.raises(ValueError, match="slice 3"):
        analyse_slice(np.zeros((8, 8)), (0.0, 0.8), P, index=3)


def test_fuse_keeps_learned_detections_and_adds_candidates_on_the_detector_scale():
    p = LumenParams(score_threshold=0.6, heat_weight=0.5)
    model = [Detection(2, (10, 10, 20, 20), 0.7)]
    lumen = [((50, 50, 60, 60), 0.9), ((80, 80, 90, 90), 0.3)]
    out = fuse(model, lumen, [0.5, 0.8], p, threshold=0.5, slice_index=2)
    assert [d.box for d in out] == [(10, 10, 20, 20), (50, 50, 60, 60)]  # (0.9+0.5)/2 = 0.7 >= 0.6; (0.3+0.8)/2 < 0.6
    assert out[1].score == pytest.approx(0.5 + 0.5 * (0.7 - 0.6) / 0.4)
    assert all(d.slice_index == 2 for d in out)


def test_params_from_a_spec_block():
    class S:
        name, extra = "m", {"lumen": {"enabled": True, "score_threshold": "0.7", "other": 1}}
    assert LumenParams.from_spec(S()).score_threshold == 0.7
    S.extra = {}
    assert LumenParams.from_spec(S()).enabled is False


def test_model_detector_fuses_the_stage_and_can_switch_it_off():
    """The runtime path: ModelDetector (the shipped ctdet-k3) with the stage on adds the hole; off, the stage adds nothing."""
    from pathlib import Path

    from edge.backends.onnxruntime import OnnxRuntimeBackend
    from edge.ct.detector import ModelDetector
    from edge.ct.plausibility import PlausibilityParams
    from edge.spec import load_spec

    model = Path(__file__).resolve().parents[3] / "edge" / "ct" / "assets" / "ctdet-k3.onnx"
    if not model.is_file():
        pytest.skip(f"{model} not present")
    spec = load_spec(model)
    hole = (47, 46, 56, 55)
    slices = []
    for z in range(3):
        img = _vessel(seed=z)
        _disc(img, 50, 51, 4, 50.0)
        slices.append(CTSlice(img, z, 3.0 * z, PS))
    be = OnnxRuntimeBackend(model, threads=1)
    try:
        off = ModelDetector(be, spec, plausibility=PlausibilityParams(enabled=False), lumen=LumenParams(enabled=False))
        on = ModelDetector(be, spec, plausibility=PlausibilityParams(enabled=False),
                           lumen=LumenParams(score_threshold=0.3, heat_weight=0.0))
        got = {}
        for name, det in (("off", off), ("on", on)):
            det.reset()
            det.detect([slices[0], slices[0], slices[1]], slices[0])  # the track starts on slice 0
            got[name] = det.detect(slices, slices[1])
        stage_boxes = {tuple(b) for b, _, _ in on.lumen_last}
        assert _hit([(b, 1.0) for b in stage_boxes], hole)  # the stage saw the hole ...
        assert any(d.box in stage_boxes for d in got["on"])  # ... and its candidate is among the detections
        assert off.lumen_last == [] and not any(d.box in stage_boxes for d in got["off"])
        assert all(d.score >= float(spec.extra["decode"]["score_threshold"]) for d in got["on"])
        assert "lumen" in on.timing and "lumen" not in off.timing
    finally:
        be.close()


def test_ct_scan_has_the_switch():
    import argparse

    from edge.commands import ct as cli

    ap = argparse.ArgumentParser()
    cli.register(ap.add_subparsers(dest="cmd"))
    assert ap.parse_args(["ct", "scan", "x", "--lumen", "off"]).lumen == "off"
    assert ap.parse_args(["ct", "scan", "x"]).lumen == "spec"
    with pytest.raises(SystemExit):
        ap.parse_args(["ct", "scan", "x", "--lumen", "maybe"])
