"""The second (evaluation-only) compression ultrasound renderer: deterministic, shapes, and truth that matches
its masks (normal veins collapse, clotted ones do not, low pressure barely flattens the artery, the artery
pulses at the heart rate, clot lies inside the vein mask, the image region is where the runtime finds it)."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from edge.us.preprocess import find_image_region
from training.second_renderer.us_clips import RenderedClip, generate_clip, render_clip, write_clip
from training.second_renderer.us_params import draw_scene

MAX_FRAMES = 60  # short clips keep the module fast


def _short_seed(start: int, *, dvt: bool, pressure: str, clot: str | None = None, style: str | None = None) -> int:
    """The first seed from ``start`` whose drawn clip is short (cheap to render)."""
    for seed in range(start, start + 500):
        sc = draw_scene(seed, dvt=dvt, pressure=pressure, clot=clot)
        if len(sc.t) <= MAX_FRAMES and (style is None or sc.style == style) and sc.screen == (640, 480):
            return seed
    raise AssertionError("no short clip found")


@pytest.fixture(scope="module")
def normal() -> RenderedClip:
    return generate_clip(_short_seed(1000, dvt=False, pressure="adequate"), dvt=False, pressure="adequate")


@pytest.fixture(scope="module")
def occlusive() -> RenderedClip:
    return render_clip(_short_seed(2000, dvt=True, pressure="adequate", clot="occlusive"), dvt=True,
                       pressure="adequate", clot="occlusive")[0]


@pytest.fixture(scope="module")
def partial():
    seed = _short_seed(3000, dvt=True, pressure="adequate", clot="partial")
    return render_clip(seed, dvt=True, pressure="adequate", clot="partial", with_clot=True)


@pytest.fixture(scope="module")
def low() -> RenderedClip:
    return generate_clip(_short_seed(4000, dvt=False, pressure="low"), dvt=False, pressure="low")


def test_deterministic_per_seed(normal, occlusive):
    again = generate_clip(normal.label["seed"], dvt=False, pressure="adequate")
    assert np.array_equal(again.frames, normal.frames)
    assert np.array_equal(again.masks, normal.masks)
    assert again.label == normal.label
    # another seed is another clip
    assert occlusive.frames.shape != normal.frames.shape or not np.array_equal(occlusive.frames, normal.frames)


def test_shapes_and_label_keys(normal, occlusive):
    for clip in (normal, occlusive):
        t, h, w = clip.frames.shape
        assert clip.frames.dtype == np.uint8 and clip.masks.dtype == np.uint8
        assert clip.masks.shape == clip.frames.shape
        assert set(np.unique(clip.masks)) <= {0, 1, 2}
        lab = clip.label
        assert lab["n_frames"] == t and lab["screen_size"] == [w, h] and lab["fps"] == clip.fps
        assert 3.0 <= t / clip.fps <= 7.0 + 1e-6 and clip.fps in (15, 20, 25, 30)
        for key in ("renderer", "seed", "dvt", "clot", "clot_echo", "pressure", "compression_style", "expected_verdict",
                    "fps", "n_frames", "screen_size", "image_region", "site", "true_baseline_vein_area_px",
                    "true_min_vein_area_px", "true_compressibility", "true_artery_flattening", "preset"):
            assert key in lab, key
        assert lab["renderer"] == "second"
        json.dumps(lab)
        x, y, rw, rh = lab["image_region"]
        # masks live in screen coordinates, inside the image
        ys, xs = np.nonzero(clip.masks.max(axis=0))
        assert ys.min() >= y and ys.max() < y + rh and xs.min() >= x and xs.max() < x + rw
        assert (clip.masks[0] == 1).sum() > 50 and (clip.masks[0] == 2).sum() > 50
    assert normal.label["expected_verdict"] == "compressible" and normal.label["clot"] == "none"
    assert occlusive.label["expected_verdict"] == "non_compressible" and occlusive.label["clot_echo"] is not None


def _vein_areas(clip):
    return (clip.masks == 2).sum(axis=(1, 2)).astype(float)


def test_normal_vein_collapses_under_adequate_pressure(normal):
    lab = normal.label
    assert lab["true_compressibility"] >= 0.85
    areas = _vein_areas(normal)
    assert areas.min() == pytest.approx(lab["true_min_vein_area_px"])
    assert 0.08 <= lab["true_artery_flattening"] <= 0.3  # the artery keeps its shape, flattening only a little


def test_clotted_veins_barely_narrow(occlusive, partial):
    assert occlusive.label["true_compressibility"] <= 0.45
    clip, _ = partial
    lab = clip.label
    assert lab["clot"] == "partial" and lab["expected_verdict"] == "non_compressible"
    assert lab["true_min_vein_area_px"] >= 0.55 * lab["true_baseline_vein_area_px"]


def test_low_pressure_barely_flattens_the_artery(low):
    lab = low.label
    assert lab["pressure"] == "low" and lab["expected_verdict"] == "indeterminate"
    assert lab["true_artery_flattening"] < 0.05
    assert lab["true_compressibility"] < 0.25


def test_artery_pulsates_at_the_heart_rate(normal):
    lab = normal.label
    area = (normal.masks == 1).sum(axis=(1, 2)).astype(float)
    t = np.arange(area.size) / normal.fps
    q = np.asarray(lab["pressure_curve"])
    # remove slow trends and the pressure-driven change, keep the pulse
    design = np.stack([np.ones_like(t), t, t ** 2, q, q ** 1.5], axis=1)
    resid = area - design @ np.linalg.lstsq(design, area, rcond=None)[0]
    assert resid.std() > 0.02 * area.mean()  # visible pulsation
    freqs = np.arange(0.6, 2.2, 0.01)
    win = np.hanning(area.size)
    power = np.abs(np.exp(-2j * np.pi * freqs[:, None] * t[None, :]) @ (resid * win)) ** 2
    f_hr = lab["heart_rate_bpm"] / 60.0
    assert abs(freqs[np.argmax(power)] - f_hr) < 0.2


def test_clot_lies_inside_the_vein_mask(partial):
    clip, clots = partial
    assert clots is not None and clots.shape == clip.masks.shape
    assert clots.any(axis=(1, 2)).all()
    assert np.all(clip.masks[clots] == 2)
    # a partial clot leaves some residual lumen at rest
    rest = int(clip.label["n_rest_frames"]) - 1
    assert clots[rest].sum() < (clip.masks[rest] == 2).sum()


def test_runtime_finds_the_image_region(normal, occlusive, low):
    for clip in (normal, occlusive, low):
        box = np.asarray(find_image_region(clip.frames[0]))
        x, y, w, h = clip.label["image_region"]
        assert np.abs(box[:2] - [x, y]).max() <= 10
        assert np.abs(box[:2] + box[2:] - [x + w, y + h]).max() <= 10


def test_write_clip_round_trip(tmp_path, occlusive):
    paths = write_clip(occlusive, tmp_path, "clip")
    assert {p.name for p in paths.values()} == {"clip.mp4", "clip.masks.npz", "clip.json"}
    cap = cv2.VideoCapture(str(paths["video"]))
    n = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        assert frame.shape == (*occlusive.frames.shape[1:], 3)
        n += 1
    cap.release()
    assert n == occlusive.frames.shape[0]
    assert np.array_equal(np.load(paths["masks"])["masks"], occlusive.masks)
    assert json.loads(paths["label"].read_text()) == occlusive.label
