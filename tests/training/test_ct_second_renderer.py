"""Second (independent, evaluation-only) CT venography renderer: determinism, regions, thrombus truth, writers."""

from __future__ import annotations

import json

import numpy as np
import pytest

import training.ct.second_renderer as sr
from training.ct.phantom_io import write_study
from training.ct.second_renderer import REGIONS, make_study, merge_lesions
from training.ct.study import Lesion, Study


@pytest.fixture
def no_noise(monkeypatch):
    """Render without image noise so HU checks test the physics, not the noise draw."""
    monkeypatch.setattr(sr, "correlated_noise", lambda rng, shape, sx, sy: np.zeros(shape, np.float32))


def test_same_seed_same_study_other_seed_differs():
    a = make_study(5, size=128, n_slices=5, n_thrombi=2)
    b = make_study(5, size=128, n_slices=5, n_thrombi=2)
    c = make_study(6, size=128, n_slices=5, n_thrombi=2)
    assert isinstance(a, Study) and a.hu.dtype == np.float32 and a.hu.shape == (5, 128, 128)
    assert np.array_equal(a.hu, b.hu)
    assert [t.boxes for t in a.thrombi] == [t.boxes for t in b.thrombi] and a.veins == b.veins
    assert not np.array_equal(a.hu, c.hu)
    assert np.all(np.diff(a.positions_mm) > 0) and a.distractors == []
    big = make_study(5, size=256, n_slices=2, n_thrombi=0)  # same field of view at another matrix size
    assert big.pixel_spacing_mm[0] == pytest.approx(a.pixel_spacing_mm[0] / 2)


@pytest.mark.parametrize("region", REGIONS)
def test_each_region_renders_tissues_and_veins(region):
    st = make_study(11, size=256, n_slices=4, thickness_mm=2.0, n_thrombi=0, region=region)
    hu = st.hu
    assert st.thrombi == [] and hu.shape == (4, 256, 256)
    fov = st.pixel_spacing_mm[0] * 256
    assert (150 <= fov <= 250) if region == "crop" else (300 <= fov <= 502)  # 0.6-0.98 mm pixels at 512
    body = hu[hu > -500]
    assert 20 < float(np.median(body)) < 110  # soft tissue dominates the body
    assert float(np.percentile(body, 99.9)) > 500  # cortical bone
    assert np.count_nonzero((hu > -140) & (hu < -60)) > 500  # subcutaneous / intermuscular fat
    if region != "crop":
        assert float(np.median(hu[:, :6, :6])) < -900  # air in the corner
    sides = {1} if region == "crop" else {-1, 1}
    for i in range(len(hu)):
        if region == "crop":
            assert len(st.veins[i]) == 1
        else:
            assert set(st.veins[i]) == sides
        for x, y, r in st.veins[i].values():
            assert 0 < x < 256 and 0 < y < 256 and 0.5 < r < 20
            patch = hu[i, int(y) - 1:int(y) + 2, int(x) - 1:int(x) + 2]
            assert float(patch.mean()) > 70, f"{region} slice {i}: no contrast in the vein ({patch.mean():.0f} HU)"


def test_thrombus_boxes_are_dark_defects_inside_the_contrast_filled_vein(no_noise):
    """Every box holds clot-density pixels and lies in its vein; partial clots keep contrast beside them (a thin
    residual lumen in a weakly opacified small vein may stay under 120 HU after partial volume, hence the 85 %)."""
    yy, xx = np.mgrid[:256, :256] + 0.5
    partial_ok, partial_n = 0, 0
    for seed, region in ((200, "thighs"), (201, "pelvis"), (202, "crop"), (203, "calf"), (204, "thighs"),
                         (205, "pelvis")):
        st = make_study(seed, size=256, n_slices=12, thickness_mm=(1.0, 2.0, 3.0, 5.0)[seed % 4], n_thrombi=2,
                        region=region)
        assert st.thrombi, "two thrombi were requested"
        for t in st.thrombi:
            assert t.kind in ("partial", "occlusive") and t.side in (-1, 1)
            assert {"hu", "region", "vein_diameter_mm"} <= set(t.params) and 15 <= t.params["hu"] <= 70
            assert t.level_mm[0] < t.level_mm[1]
            for i, (x0, y0, x1, y1) in t.boxes.items():
                assert 0 <= x0 < x1 <= 256 and 0 <= y0 < y1 <= 256 and 0 <= i < len(st.hu)
                vx, vy, vr = st.veins[i][t.side]
                assert vx - vr - 1 <= x0 and x1 <= vx + vr + 1 and vy - vr - 1 <= y0 and y1 <= vy + vr + 1, \
                    f"seed {seed} slice {i}: box {t.boxes[i]} outside the vein ({vx:.1f}, {vy:.1f}, r {vr:.1f})"
                box = st.hu[i, int(y0):int(y1), int(x0):int(x1)]
                assert float(box.min()) <= 75, f"seed {seed} {t.kind} slice {i}: no clot-density pixel in the box"
                if t.kind == "partial":
                    lumen = st.hu[i][(xx - vx) ** 2 + (yy - vy) ** 2 <= vr ** 2]
                    partial_n += 1
                    partial_ok += float(lumen.max()) > 120  # contrast around the defect
                    assert float(lumen.max()) > 95, f"seed {seed} slice {i}: no contrast left in the vein"
    assert partial_n > 10 and partial_ok >= 0.85 * partial_n


def test_no_thrombi_when_none_requested_and_same_vein_clots_do_not_overlap():
    for seed in range(3):
        assert make_study(seed, size=64, n_slices=3, n_thrombi=0).thrombi == []
    st = make_study(5, size=128, n_slices=30, thickness_mm=2.0, n_thrombi=3)
    for a in st.thrombi:
        for b in st.thrombi:
            if a is not b and a.side == b.side:
                for k in set(a.boxes) & set(b.boxes):
                    p, q = a.boxes[k], b.boxes[k]
                    assert min(p[2], q[2]) <= max(p[0], q[0]) or min(p[3], q[3]) <= max(p[1], q[1])


def test_merge_lesions_unions_overlapping_boxes_in_one_vein():
    a = Lesion("partial", 1, (0.0, 10.0), {"hu": 40}, {3: [10, 10, 14, 14], 4: [10, 10, 14, 14]})
    b = Lesion("occlusive", 1, (5.0, 20.0), {"hu": 50}, {4: [12, 12, 16, 16], 5: [12, 12, 16, 16]})
    c = Lesion("partial", 1, (0.0, 10.0), {"hu": 40}, {4: [30, 30, 34, 34]})  # same slice, no overlap
    out = merge_lesions([(a, "v"), (b, "v"), (c, "v")])
    assert len(out) == 2
    m = out[0]
    assert m.kind == "occlusive" and sorted(m.boxes) == [3, 4, 5] and m.boxes[4] == [10, 10, 16, 16]
    assert m.level_mm == (0.0, 20.0)
    assert len(merge_lesions([(a, "v"), (b, "other vein")])) == 2


def test_mixing_streak_mimic_boxes_the_vein():
    st = make_study(1, size=128, n_slices=4, thickness_mm=2.0, n_thrombi=0)
    assert [m.kind for m in st.mimics] == ["mixing_streak"]
    m = st.mimics[0]
    assert 60 <= m.params["hu"] <= 120 and m.level_mm[1] - m.level_mm[0] >= 60
    for i, (x0, y0, x1, y1) in m.boxes.items():
        vx, vy, _ = st.veins[i][m.side]
        assert x0 <= vx <= x1 and y0 <= vy <= y1


def test_default_coverage_and_write_study_round_trip(tmp_path):
    st = make_study(3, size=32)
    n, sp = len(st.hu), float(np.diff(st.positions_mm).mean())
    assert 8 <= n <= 120 and (n == 120 or 55 <= n * sp <= 205) and sp <= st.thickness_mm + 1e-6
    st = make_study(7, size=64, n_slices=6, thickness_mm=2.0, n_thrombi=2, region="thighs")
    assert st.thrombi
    out = write_study(st, tmp_path / "study")
    gt = json.loads((out / "ground_truth.json").read_text())
    assert gt["n_slices"] == 6 and len(gt["thrombi"]) == len(st.thrombi)
    for t, g in zip(st.thrombi, gt["thrombi"]):
        assert {int(k) for k in g["boxes"]} == set(t.boxes) and g["kind"] == t.kind
    assert len(list((out / "dicom").glob("*.dcm"))) == 6


def test_cli_writes_studies(tmp_path, capsys):
    assert sr.main(["--out", str(tmp_path), "--studies", "2", "--seed", "40", "--size", "64", "--slices", "3"]) == 0
    assert (tmp_path / "study-0000" / "ground_truth.json").exists() and (tmp_path / "study-0001" / "dicom").is_dir()
    assert "[2/2]" in capsys.readouterr().out
