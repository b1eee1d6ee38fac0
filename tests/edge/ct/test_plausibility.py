"""Plausibility rule for CT thrombus candidates: known-answer HU arrays (edge/ct/plausibility.py)."""

from __future__ import annotations

import numpy as np
import pytest

from edge.ct.loop import run_slice_loop
from edge.ct.plausibility import PlausibilityParams, check, features, judge_candidate
from edge.ct.types import CTSlice, Detection

PS = (0.8, 0.8)
P = PlausibilityParams()  # defaults: ring 3 mm, bone 500 HU, max bone 0.25, core -10..130 HU, contrast >= 20 HU


def _disc(img, cy, cx, r, value):
    yy, xx = np.mgrid[0:img.shape[0], 0:img.shape[1]]
    img[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = value


def _scene(outer_hu, inner_hu, background=50.0, outer_r=9, inner_r=4):
    img = np.full((64, 64), background, np.float32)
    _disc(img, 32, 32, outer_r, outer_hu)
    _disc(img, 32, 32, inner_r, inner_hu)
    return img, (32 - inner_r, 32 - inner_r, 32 + inner_r + 1, 32 + inner_r + 1)


def test_clot_in_an_opacified_vein_is_plausible():
    img, box = _scene(180.0, 55.0)  # 180 HU venous contrast around a 55 HU filling defect
    f = features(img, box, PS)
    assert f["core_hu"] == pytest.approx(55.0)
    assert f["bone_frac"] == 0.0 and f["ring_p98"] == pytest.approx(180.0)
    assert check(img, box, PS, P) is None


def test_occlusive_clot_with_a_thin_enhancing_rim_is_plausible():
    img, box = _scene(120.0, 55.0, outer_r=10, inner_r=8)  # vein filled by clot, 1.6 mm rim of 120 HU
    assert check(img, box, PS, P) is None


def test_rib_cortex_around_marrow_is_rejected_as_a_bone_ring():
    img, box = _scene(900.0, 80.0)  # cortical ring (900 HU) around marrow that is clot-dense
    assert check(img, box, PS, P).startswith("bone_ring")


@pytest.mark.parametrize("inner", [-1000.0, -100.0, 300.0])  # gas, fat, oral contrast: not clot
def test_non_clot_density_is_rejected(inner):
    img, box = _scene(150.0, inner)
    assert check(img, box, PS, P).startswith("density")


def test_a_blob_no_darker_than_its_surround_is_not_a_filling_defect():
    img, box = _scene(60.0, 55.0)  # soft tissue in soft tissue (liver, muscle, bowel wall)
    assert check(img, box, PS, P).startswith("no_defect")


def test_disabled_params_and_spec_block():
    img, box = _scene(900.0, 80.0)
    assert check(img, box, PS, PlausibilityParams(enabled=False)) is None

    class Spec:
        extra = {}

    assert not PlausibilityParams.from_spec(Spec()).enabled
    Spec.extra = {"plausibility": {"max_bone_frac": 0.4, "min_contrast_hu": 5, "calibration": {"x": 1}}}
    p = PlausibilityParams.from_spec(Spec())
    assert p.enabled and p.max_bone_frac == 0.4 and p.min_contrast_hu == 5.0 and p.bone_hu == 500.0


def test_box_at_the_image_edge_and_nan_features_are_kept():
    img, _ = _scene(180.0, 55.0)
    assert features(img, (0, 0, 3, 3), PS)["ring_n"] > 0
    assert judge_candidate({"core_hu": float("nan"), "ring_p98": float("nan"), "bone_frac": 0.0}, P) is None


class _RejectingDetector:
    """Stands in for ModelDetector: reports one rejected detection on slice 1."""

    k = 1

    def __init__(self):
        self.rejected = []
        self.timing = {}

    def reset(self):
        self.rejected = []

    def detect(self, window, centre):
        if centre.index == 1:
            self.rejected.append((Detection(1, (1, 1, 4, 4), 0.9), "bone_ring: 80% of the surround >= 500 HU"))
        return []


def test_pipeline_reports_rejections_as_a_warning():
    sl = [CTSlice(np.zeros((8, 8), np.float32), i, 3.0 * i, PS) for i in range(3)]
    res = run_slice_loop(sl, _RejectingDetector())
    assert res.findings == []
    assert any("plausibility" in w and "bone_ring: 1" in w for w in res.warnings)
