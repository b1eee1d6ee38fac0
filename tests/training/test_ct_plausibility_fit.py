"""Lesion-level scoring and rule calibration helpers (training/ct/plausibility_fit.py), known answers."""

from __future__ import annotations

import numpy as np

from training.ct.phantom import make_study
from training.ct.plausibility_fit import apply_rule, choose_params, lesion_eval, sum_lesion


def test_lesion_eval_links_slices_and_counts_true_and_false_findings():
    st = make_study(3, size=128, n_slices=20, thickness_mm=3.0, n_thrombi=1, n_streaks=0)
    (t,) = st.thrombi
    preds = [(np.zeros((0, 4)), np.zeros(0)) for _ in range(20)]
    for i, b in t.boxes.items():  # the thrombus found on every slice -> one true finding
        preds[i] = (np.array([b]), np.array([0.9]))
    far = 19 if t.slice_range[1] < 17 else 0
    preds[far] = (np.array([[2.0, 2.0, 6.0, 6.0]]), np.array([0.8]))  # one false finding far away
    r = lesion_eval(st, preds, threshold=0.5)
    assert r == {"findings": 2, "tp_findings": 1, "fp_findings": 1, "suppressed": 0, "thrombi": 1, "thrombi_found": 1}
    low = lesion_eval(st, preds, threshold=0.95)  # nothing above the threshold
    assert low["findings"] == 0 and low["thrombi_found"] == 0
    s = sum_lesion([r, low])
    assert s["findings_per_study"] == 1.0 and s["fp_findings_per_study"] == 0.5 and s["thrombus_sensitivity"] == 0.5


def test_apply_rule_and_choose_params():
    feats_ok = {"core_hu": 55.0, "ring_p98": 180.0, "bone_frac": 0.0}
    feats_bone = {"core_hu": 80.0, "ring_p98": 900.0, "bone_frac": 0.8}
    p = choose_params([feats_ok] * 50)
    assert p.defect_lo_hu == 20.0 and p.defect_hi_hu == 90.0 and p.max_bone_frac == 0.1
    assert p.min_contrast_hu == 115.0  # 180 - 55 - 10
    preds = [(np.array([[0, 0, 4, 4], [5, 5, 9, 9]], float), np.array([0.9, 0.8]))]
    kept = apply_rule(preds, [[feats_ok, feats_bone]], p)
    assert kept[0][0].tolist() == [[0, 0, 4, 4]] and kept[0][1].tolist() == [0.9]
