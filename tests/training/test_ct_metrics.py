"""Detection metrics on hand-made cases with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from training.ct import metrics as M

EMPTY = (np.zeros((0, 4)), np.zeros(0))


def _p(boxes, scores):
    return np.asarray(boxes, float).reshape(-1, 4), np.asarray(scores, float)


def test_two_lesions_one_found_three_fps_over_ten_slices():
    gts = [[] for _ in range(10)]
    gts[2] = [[10, 10, 20, 20]]
    gts[5] = [[50, 50, 60, 60]]
    preds = [EMPTY] * 10
    preds[2] = _p([[11, 11, 21, 21]], [0.9])  # found
    preds[7] = _p([[0, 0, 5, 5], [30, 30, 40, 40]], [0.8, 0.7])  # two FPs on a negative slice
    preds[5] = _p([[90, 90, 99, 99]], [0.6])  # FP beside a missed lesion
    ev = M.evaluate_detections(preds, gts)
    op = M.operating_point(ev, 0.5)
    assert (op["tp"], op["fp"], op["fn"]) == (1, 3, 1)
    assert op["sensitivity"] == pytest.approx(0.5)
    assert op["fppi"] == pytest.approx(0.3)
    assert op["precision"] == pytest.approx(0.25)
    # slice level: positives are slices 2 and 5 (scores 0.9, 0.6); negative slice 7 scores 0.8
    assert M.auroc(ev.slice_labels, ev.slice_scores) == pytest.approx((8 + 7) / 16)


def test_iou_threshold_is_inclusive_at_point_one_and_duplicates_are_fps():
    gt = [[0, 0, 10, 10]]
    # IoU of [0,0,10,10] with [9,0,19,10] is 10/190 < 0.1; with [5,0,15,10] is 50/150 = 0.33
    assert M.match_slice([[9, 0, 19, 10]], [0.9], gt).tolist() == [-1]
    assert M.match_slice([[5, 0, 15, 10]], [0.9], gt).tolist() == [0]
    # exactly 0.1: [0,0,10,10] vs [0,0,10,1] -> 10/100
    assert M.match_slice([[0, 0, 10, 1]], [0.5], gt).tolist() == [0]
    # two boxes on one clot: the higher score is the TP, the other an FP
    assert M.match_slice([[1, 1, 11, 11], [0, 0, 10, 10]], [0.4, 0.8], gt).tolist() == [-1, 0]


def test_average_precision_known_value():
    # three GT instances on three slices; ranked detections TP (0.9), FP (0.8), TP (0.7); one GT never found
    gts = [[[0, 0, 10, 10]], [[0, 0, 10, 10]], [[0, 0, 10, 10]]]
    preds = [_p([[0, 0, 10, 10]], [0.9]), _p([[50, 50, 60, 60]], [0.8]), _p([[0, 0, 10, 10]], [0.7])]
    ev = M.evaluate_detections(preds, gts)
    assert M.average_precision(ev) == pytest.approx(1 / 3 * 1.0 + 1 / 3 * 2 / 3)


def test_froc_is_monotonic_and_sensitivity_at_fppi():
    gts = [[[0, 0, 10, 10]], [], [[0, 0, 10, 10]], []]
    preds = [_p([[0, 0, 10, 10]], [0.9]), _p([[5, 5, 9, 9]], [0.8]), _p([[0, 0, 10, 10]], [0.3]), _p([[1, 1, 2, 2]], [0.2])]
    ev = M.evaluate_detections(preds, gts)
    curve = M.froc(ev)
    assert np.all(np.diff(curve["fppi"]) >= 0) and np.all(np.diff(curve["sensitivity"]) >= 0)
    assert curve["sensitivity"][-1] == pytest.approx(1.0) and curve["fppi"][-1] == pytest.approx(0.5)
    op = M.sensitivity_at_fppi(ev, 0.25)  # one FP allowed over four slices -> threshold 0.3
    assert op["sensitivity"] == pytest.approx(1.0) and op["fppi"] == pytest.approx(0.25)
    assert M.sensitivity_at_fppi(ev, 0.0)["sensitivity"] == pytest.approx(0.5)


def test_thrombus_level_sensitivity_counts_a_clot_once():
    gts = [[[0, 0, 10, 10]], [[0, 0, 10, 10]], [[40, 40, 50, 50]]]
    ids = [[7], [7], [8]]  # clot 7 spans two slices, clot 8 one
    preds = [_p([[0, 0, 10, 10]], [0.9]), EMPTY, EMPTY]
    op = M.operating_point(M.evaluate_detections(preds, gts, ids), 0.5)
    assert op["sensitivity"] == pytest.approx(1 / 3) and op["thrombus_sensitivity"] == pytest.approx(0.5)


def test_auroc_and_slice_ap():
    y = [0, 0, 1, 1, 0, 1]
    assert M.auroc(y, [0.1, 0.2, 0.8, 0.9, 0.3, 0.7]) == pytest.approx(1.0)
    assert M.auroc(y, [0.9, 0.8, 0.1, 0.2, 0.7, 0.3]) == pytest.approx(0.0)
    assert M.auroc(y, [0.5] * 6) == pytest.approx(0.5)
    assert np.isnan(M.auroc([1, 1], [0.2, 0.3]))
    assert M.slice_average_precision(y, [0.1, 0.2, 0.8, 0.9, 0.3, 0.7]) == pytest.approx(1.0)
    # ranking 1, 0, 1: precision at the positives = 1 and 2/3
    assert M.slice_average_precision([1, 0, 1], [0.9, 0.8, 0.7]) == pytest.approx((1 + 2 / 3) / 2)


def test_summary_has_the_headline_figures():
    gts = [[[0, 0, 10, 10]], []]
    ev = M.evaluate_detections([_p([[0, 0, 10, 10]], [0.9]), _p([[3, 3, 8, 8]], [0.4])], gts)
    s = M.summary(ev, 0.5)
    assert s["at_threshold"]["sensitivity"] == 1.0 and s["at_threshold"]["fppi"] == 0.0
    assert s["at_fppi_0.25"]["sensitivity"] == 1.0 and s["slice_auroc"] == 1.0 and s["ap_iou0.1"] == pytest.approx(1.0)
