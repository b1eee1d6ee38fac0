"""Linking detections into findings: known answers, gap tolerance, streak suppression, streaming == batch."""

from __future__ import annotations

import random

import pytest

from edge.ct.linking import Linker, LinkParams, SliceGeom, Suppressed, iou, link_detections, reverse_finding
from edge.ct.types import Detection, Finding

SP = (0.8, 0.7)  # row, col spacing in mm: unequal so a swapped x/y would show in box_mm


def geoms(n: int, dz: float = 3.0) -> dict[int, SliceGeom]:
    return {i: SliceGeom(100.0 + i * dz, SP) for i in range(n)}


def det(i: int, x: float, y: float, score: float, size: float = 10.0) -> Detection:
    return Detection(i, (x, y, x + size, y + size), score)


def test_iou():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert iou((0, 0, 10, 10), (10, 0, 20, 10)) == 0.0


def test_four_slice_chain_is_one_finding_with_peak_box():
    per = {5: [det(5, 100, 200, 0.6)], 6: [det(6, 102, 201, 0.9)], 7: [det(7, 103, 203, 0.7)],
           8: [det(8, 104, 204, 0.5)]}
    findings, suppressed = link_detections(per, geoms(20))
    assert suppressed == [] and len(findings) == 1
    f = findings[0]
    assert (f.slice_start, f.slice_end, f.peak_slice) == (5, 8, 6)
    assert f.box == (102.0, 201.0, 112.0, 211.0)
    assert f.box_mm == pytest.approx((102 * 0.7, 201 * 0.8, 112 * 0.7, 211 * 0.8))
    assert f.score == pytest.approx(0.9) and f.mean_score == pytest.approx((0.6 + 0.9 + 0.7 + 0.5) / 4)
    assert len(f.detections) == 4
    j = f.to_json()
    assert j["n_slices"] == 4 and j["box"] == [102.0, 201.0, 112.0, 211.0]


def test_one_slice_gap_is_bridged_two_is_not():
    one_gap = {3: [det(3, 50, 50, 0.8)], 5: [det(5, 51, 50, 0.7)]}
    assert [(f.slice_start, f.slice_end) for f in link_detections(one_gap, geoms(10))[0]] == [(3, 5)]
    two_gap = {3: [det(3, 50, 50, 0.8)], 6: [det(6, 51, 50, 0.7)]}
    assert [(f.slice_start, f.slice_end) for f in link_detections(two_gap, geoms(10))[0]] == [(3, 3), (6, 6)]
    strict = LinkParams(gap=0)
    assert len(link_detections(one_gap, geoms(10), strict)[0]) == 2


def test_centre_distance_links_small_boxes_that_do_not_overlap():
    # 4-px boxes 5 px apart: IoU 0 but the centres are 3.5 mm apart (< 5 mm)
    per = {0: [det(0, 10, 10, 0.8, size=4)], 1: [det(1, 15, 10, 0.8, size=4)]}
    assert len(link_detections(per, geoms(3))[0]) == 1
    far = {0: [det(0, 10, 10, 0.8, size=4)], 1: [det(1, 30, 10, 0.8, size=4)]}
    assert len(link_detections(far, geoms(3))[0]) == 2


def test_forty_slice_streak_is_suppressed_not_dropped():
    per = {i: [det(i, 80 + i * 0.2, 90, 0.7)] for i in range(10, 50)}
    per[60] = [det(60, 300, 300, 0.9)]  # an unrelated short finding survives
    findings, suppressed = link_detections(per, geoms(70))
    assert [(f.slice_start, f.slice_end) for f in findings] == [(60, 60)]
    assert len(suppressed) == 1
    s = suppressed[0]
    assert (s.finding.slice_start, s.finding.slice_end) == (10, 49)
    assert s.extent_mm == pytest.approx(120.0) and "streak" in s.reason
    assert s.to_json()["reason"].startswith("streak")


def test_streak_limit_is_90_mm_a_75_mm_clot_is_a_finding():
    clot = {i: [det(i, 80, 90, 0.7)] for i in range(0, 25)}  # 25 slices x 3 mm = 75 mm
    findings, suppressed = link_detections(clot, geoms(40))
    assert [(f.slice_start, f.slice_end) for f in findings] == [(0, 24)] and suppressed == []
    longer = {i: [det(i, 80, 90, 0.7)] for i in range(0, 31)}  # 93 mm
    assert len(link_detections(longer, geoms(40))[1]) == 1


def test_two_separated_chains_and_two_side_by_side():
    per = {}
    for i in range(2, 5):
        per[i] = [det(i, 100, 100, 0.8)]
    for i in range(12, 15):
        per[i] = [det(i, 100, 100, 0.6), det(i, 300, 100, 0.7)]  # same slices, other leg
    findings, _ = link_detections(per, geoms(20))
    assert [(f.slice_start, f.slice_end, f.box[0]) for f in findings] == [(2, 4, 100), (12, 14, 100), (12, 14, 300)]


def test_streaming_emits_when_chain_closes_and_matches_batch():
    per = {2: [det(2, 10, 10, 0.5)], 3: [det(3, 11, 10, 0.6)], 9: [det(9, 40, 40, 0.7)]}
    linker = Linker()
    emitted_at = {}
    for i in range(15):
        for r in linker.add(i, geoms(15)[i], per.get(i, [])):
            emitted_at[r.slice_start] = i
    assert emitted_at == {2: 5, 9: 11}  # closed once gap+1 = 2 empty slices followed
    assert linker.close() == []
    with pytest.raises(ValueError):
        linker.add(20, geoms(15)[0], [])


def test_order_independent_random():
    rng = random.Random(4)
    n = 40
    per: dict[int, list[Detection]] = {}
    for i in range(n):
        for _ in range(rng.randint(0, 2)):
            per.setdefault(i, []).append(det(i, rng.choice([50, 54, 200]), rng.choice([50, 52, 120]), rng.random()))
    fwd, sup_fwd = link_detections(per, geoms(n))
    # the same series fed in reverse (a head-to-feet stream), then mapped back
    rev = {n - 1 - i: [Detection(n - 1 - i, d.box, d.score) for d in ds] for i, ds in per.items()}
    rgeoms = {n - 1 - i: g for i, g in geoms(n).items()}
    back, sup_back = link_detections(rev, rgeoms)
    back = sorted((reverse_finding(f, n) for f in back), key=lambda f: (f.slice_start, f.peak_slice))
    assert [f.to_json() for f in back] == [f.to_json() for f in fwd]
    assert len(sup_back) == len(sup_fwd)
    assert isinstance(fwd[0], Finding) and all(isinstance(s, Suppressed) for s in sup_fwd)
