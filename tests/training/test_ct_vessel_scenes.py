"""Randomised vessel scenes (training.ct.vessel_scenes): deterministic, labels only what lies inside a lumen and reads
dark, leaves look-alikes unlabelled, and covers the ranges it claims."""

from __future__ import annotations

import math

import numpy as np
import pytest

from training.ct.vessel_scenes import Scene, make_scene

SEEDS = range(31000, 31016)


@pytest.fixture(scope="module")
def scenes():
    out = []
    for seed in SEEDS:
        sc = Scene(seed, size=320)
        out.append((sc, sc.study()))
    return out


def test_same_seed_same_study():
    a, b = make_scene(31003, size=256), make_scene(31003, size=256)
    assert np.array_equal(a.hu, b.hu)
    assert [t.boxes for t in a.thrombi] == [t.boxes for t in b.thrombi]
    c = make_scene(31004, size=256)
    assert c.hu.shape != a.hu.shape or not np.array_equal(a.hu, c.hu)


def test_every_labelled_defect_lies_in_its_tube_and_reads_dark(scenes):
    checked = 0
    for sc, st in scenes:
        labelled = [d for d in sc.defects if d.kind != "mixing_streak"]
        by_range = {(d.z_lo, d.z_hi): d for d in labelled}
        for les in st.thrombi:
            d = by_range[les.level_mm]
            tube = sc.tubes[d.tube]
            for i, (x0, y0, x1, y1) in les.boxes.items():
                z = float(sc.z[i])
                cx, cy = tube.centre(z, sc.tubes)
                rx, ry, _ = tube.axes(z)
                px, py = cx / sc.ps + sc.size / 2, cy / sc.ps + sc.size / 2
                reach = (max(rx, ry) * d.params.get("distend", 1.0) + 1.5) / sc.ps  # lumen (+ distension) + PSF
                bx, by = (x0 + x1) / 2, (y0 + y1) / 2
                assert math.hypot(bx - px, by - py) <= reach, (sc.seed, i)
                assert x1 - x0 <= 2 * reach + 2 and y1 - y0 <= 2 * reach + 2
                core = st.hu[i][int(y0):int(math.ceil(y1)), int(x0):int(math.ceil(x1))]
                # darker than the lumen it sits in (noise up to 35 HU; the box also holds some lumen edge)
                assert float(np.median(core)) < tube.hu - 0.2 * (tube.hu - d.hu), (sc.seed, i)
                checked += 1
    assert checked > 50


def test_ranges_and_negatives(scenes):
    kinds = {les.kind for _, st in scenes for les in st.thrombi}
    assert kinds == {"partial", "occlusive"}
    assert any(not st.thrombi for _, st in scenes), "some studies must have no thrombus"
    assert any(st.mimics for _, st in scenes), "mixing streaks are drawn (unlabelled look-alikes)"
    assert all(m.kind == "mixing_streak" for _, st in scenes for m in st.mimics)
    for sc, st in scenes:
        assert 0.55 <= st.pixel_spacing_mm[0] <= 1.0 and 0.8 <= st.thickness_mm <= 5.0
        assert 24 <= len(st.hu) <= 90 and st.hu.dtype == np.float32
        assert all(130 <= t.hu <= 480 for t in sc.tubes if t.opacified)
        assert all(15 <= d.hu <= 75 for d in sc.defects if d.kind != "mixing_streak")
        for per in st.veins:
            assert len(per) >= 2  # the crop sampler picks one of two vessel centres per slice
    assert len({sc.layout for sc, _ in scenes}) == 3


def test_wide_scenes_add_trunks_steep_tubes_and_bright_contrast_without_changing_the_default():
    narrow = [Scene(seed, size=320) for seed in SEEDS]
    wide = [Scene(seed, size=320, wide=True) for seed in SEEDS]
    assert all(n.wide is False for n in narrow)
    radii_n = [t.r for sc in narrow for t in sc.tubes if t.parent is None]
    radii_w = [t.r for sc in wide for t in sc.tubes if t.parent is None]
    assert max(radii_n) <= 9.0 < max(radii_w) <= 15.0
    assert max(math.hypot(*t.slope) for sc in narrow for t in sc.tubes if t.parent is None) <= 0.45 * math.sqrt(2) + 1e-9
    assert max(math.hypot(*t.slope) for sc in wide for t in sc.tubes if t.parent is None) > 0.6
    assert max(t.hu for sc in wide for t in sc.tubes) > 480
    # the flag changes only what it draws: the default study of a seed is the same with or without it named
    assert np.array_equal(make_scene(31001, size=256).hu, make_scene(31001, size=256, wide=False).hu)
    # a wide study is still a valid training study: defects labelled inside lumens with boxes on the image
    st = make_scene(31002, size=256, wide=True)
    for les in st.thrombi:
        for b in les.boxes.values():
            assert 0 <= b[0] < b[2] <= 256 and 0 <= b[1] < b[3] <= 256
