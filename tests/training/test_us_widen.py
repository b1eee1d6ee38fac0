"""Domain randomisation of the ultrasound phantom (training.phantoms.anatomy.widen): wide but valid scenes."""

from __future__ import annotations

import math

import numpy as np

from training.phantoms.anatomy import ClipParams, vessels_at
from training.phantoms.us_clip import build_scene, generate_clip, sample_training_frames

SMALL = (560, 420)


def _inside(v, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    c, s = math.cos(v.angle), math.sin(v.angle)
    u, w = (x - v.cx) * c + (y - v.cy) * s, (y - v.cy) * c - (x - v.cx) * s
    return u * u / (v.a * v.a) + w * w / max(v.b * v.b, 1e-9) < 1.0


def test_narrow_scenes_keep_the_default_look():
    P = build_scene(5, screen_size=SMALL).params
    defaults = {f: ClipParams.__dataclass_fields__[f].default for f in
                ("vein_lobe_amp", "vein_lumen_level", "vein_lumen_contrast", "streak_gain", "muscle_streak_gain")}
    assert {f: getattr(P, f) for f in defaults} == defaults


def test_wide_vessels_never_overlap_and_stay_in_the_image():
    for seed in range(60):
        P = build_scene(seed, screen_size=SMALL, wide=True, pressure="adequate").params
        m = 40
        for t in np.linspace(0.0, P.duration_s, 15):
            art, vein = vessels_at(P, float(t), m)
            if vein.collapsed:
                continue
            th = np.linspace(0, 2 * np.pi, 90, endpoint=False)
            c, s = math.cos(vein.angle), math.sin(vein.angle)
            x = vein.cx + vein.a * np.cos(th) * c - vein.b * np.sin(th) * s
            y = vein.cy + vein.a * np.cos(th) * s + vein.b * np.sin(th) * c
            assert not _inside(art, x, y).any(), (seed, t)
        assert 0 < P.vein_y < P.img_h and 0 < P.artery_y < P.img_h


def test_wide_ranges_cover_vein_size_position_and_echo():
    Ps = [build_scene(seed, screen_size=SMALL, wide=True).params for seed in range(120)]
    ratio = np.array([P.vein_a0 / P.artery_r for P in Ps])
    assert ratio.min() < 1.0 and ratio.max() > 2.2  # vein smaller than the artery to over twice its radius
    above = [P.vein_y + P.vein_b0 < P.artery_y - P.artery_r for P in Ps]
    below = [P.vein_y - P.vein_b0 > P.artery_y + P.artery_r for P in Ps]
    assert any(above) and any(below)
    assert {P.vein_side for P in Ps} == {"left", "right"}
    levels = np.array([P.vein_lumen_level for P in Ps])
    assert levels.min() < 0.05 and levels.max() > 0.35  # anechoic to mid-grey blood
    assert min(P.vein_wall_gain for P in Ps) < 0.5 and max(P.vein_wall_gain for P in Ps) > 5.0
    assert any(P.vein_lobe_amp > 0 for P in Ps) and any(P.vein_lobe_amp == 0 for P in Ps)
    assert min(P.vein_b0 / P.vein_a0 for P in Ps) < 0.4


def test_wide_dvt_vein_stays_open_normal_vein_collapses():
    for seed in (3, 4, 5):
        dvt = generate_clip(seed, dvt=True, pressure="adequate", fps=15, screen_size=SMALL, wide=True)
        normal = generate_clip(seed, dvt=False, pressure="adequate", fps=15, screen_size=SMALL, wide=True)
        assert (dvt.masks == 2).sum(axis=(1, 2)).min() > 0 and dvt.label["true_compressibility"] <= 0.6
        assert normal.label["true_min_vein_area_px"] == 0
        assert dvt.label["params"]["vein_a0"] == normal.label["params"]["vein_a0"]  # same anatomy


def test_wide_training_frames_label_both_vessels():
    imgs, masks = sample_training_frames(21, 40, size=(192, 192), wide=True)
    assert imgs.shape == (40, 192, 192) and set(np.unique(masks)) == {0, 1, 2}
    assert (masks == 1).any(axis=(1, 2)).all()
    assert (masks == 2).any(axis=(1, 2)).mean() > 0.6
