"""Detection metrics for the CT thrombus detector: pure numpy functions (research software, not for diagnostic use).

Hwang/Seo et al. (box level, IoU >= 0.1):
    sensitivity = TP / (TP + FN), FPPI = FP / number of images, precision = TP / (TP + FP),
    AP = area under the precision-recall curve, FROC = sensitivity vs FPPI over score thresholds.
Kozemzak et al. (slice level): a slice is positive if it holds a thrombus; its score is the maximum detection
score on it (0 when there is none); AUROC and AP over slices.

How matching works (exactly):
- Unit: one slice ("image"). A lesion instance is one ground-truth box on one slice (a thrombus spanning 12
  slices contributes 12 instances), as in Hwang's per-image evaluation. No linking across slices is done here.
- On each slice, predictions are visited in descending score order; each is matched to the not-yet-matched GT box
  with the highest IoU if that IoU >= ``iou_thr`` (0.1) -> TP; otherwise -> FP (a second box on an already found
  clot is an FP, as in PASCAL VOC). GT boxes left unmatched are FNs.
- Greedy matching in score order means the matching at any threshold t is the restriction of the matching at a
  lower threshold to predictions >= t, so one matching at the lowest threshold yields the whole FROC / PR curve.
- AP is the all-point interpolated area under precision(recall) (VOC 2010+), recall over all GT instances.
- Per-thrombus (3D) sensitivity: a thrombus counts as found if at least one of its slice boxes is a TP.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

IOU_THRESHOLD = 0.1


def box_iou(a, b) -> np.ndarray:
    """IoU matrix (N, M) of boxes [x0, y0, x1, y1] (x1/y1 exclusive)."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    ix = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    iy = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = ix * iy
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-12)


def match_slice(pred_boxes, pred_scores, gt_boxes, iou_thr: float = IOU_THRESHOLD) -> np.ndarray:
    """Greedy matching on one slice. Returns, per prediction (input order), the matched GT index or -1 (FP)."""
    pred_boxes = np.asarray(pred_boxes, np.float64).reshape(-1, 4)
    scores = np.asarray(pred_scores, np.float64).reshape(-1)
    match = np.full(len(pred_boxes), -1, np.int64)
    gt_boxes = np.asarray(gt_boxes, np.float64).reshape(-1, 4)
    if len(pred_boxes) == 0 or len(gt_boxes) == 0:
        return match
    iou = box_iou(pred_boxes, gt_boxes)
    taken = np.zeros(len(gt_boxes), bool)
    for i in np.argsort(-scores, kind="stable"):
        cand = np.where(taken, -1.0, iou[i])
        j = int(np.argmax(cand))
        if cand[j] >= iou_thr:
            match[i], taken[j] = j, True
    return match


@dataclass
class DetectionEval:
    """All predictions of an evaluation, matched once. Arrays are aligned per prediction."""

    scores: np.ndarray  # (P,) detection scores
    is_tp: np.ndarray  # (P,) bool
    lesion_ids: np.ndarray  # (P,) the thrombus id a TP hit, -1 for FPs
    n_gt: int  # GT box instances (slice x thrombus)
    n_images: int  # slices evaluated
    n_lesions: int  # distinct thrombi (3D)
    slice_labels: np.ndarray  # (S,) 1 if the slice holds a thrombus
    slice_scores: np.ndarray  # (S,) max detection score on the slice, 0 if none


def evaluate_detections(preds: list[tuple[np.ndarray, np.ndarray]], gts: list[list], lesion_ids: list[list] | None = None,
                        iou_thr: float = IOU_THRESHOLD) -> DetectionEval:
    """Match predictions to ground truth over a list of slices.

    preds: per slice (boxes (N, 4), scores (N,)); gts: per slice a list of GT boxes; lesion_ids: per slice the
    thrombus id of each GT box (ids unique across the evaluation), default: each GT box is its own lesion.
    """
    if len(preds) != len(gts):
        raise ValueError(f"{len(preds)} prediction slices but {len(gts)} ground-truth slices")
    all_scores, all_tp, all_ids, slice_scores = [], [], [], []
    n_gt, next_id, lesions = 0, 0, set()
    for s, ((boxes, scores), gt) in enumerate(zip(preds, gts)):
        scores = np.asarray(scores, np.float64).reshape(-1)
        if lesion_ids is None:
            ids = list(range(next_id, next_id + len(gt)))
            next_id += len(gt)
        else:
            ids = list(lesion_ids[s])
        lesions.update(ids)
        match = match_slice(boxes, scores, gt, iou_thr)
        all_scores.append(scores)
        all_tp.append(match >= 0)
        all_ids.append(np.array([ids[m] if m >= 0 else -1 for m in match], np.int64))
        slice_scores.append(float(scores.max()) if scores.size else 0.0)
        n_gt += len(gt)
    cat = (lambda xs, dt: np.concatenate(xs).astype(dt) if xs else np.zeros(0, dt))
    return DetectionEval(cat(all_scores, np.float64), cat(all_tp, bool), cat(all_ids, np.int64), n_gt, len(gts),
                         len(lesions), np.array([1 if len(g) else 0 for g in gts], np.int64),
                         np.array(slice_scores, np.float64))


def operating_point(ev: DetectionEval, threshold: float) -> dict:
    """Sensitivity, FPPI, precision and counts for detections with score >= threshold."""
    keep = ev.scores >= threshold
    tp, fp = int(ev.is_tp[keep].sum()), int((~ev.is_tp[keep]).sum())
    found = len(set(ev.lesion_ids[keep & ev.is_tp].tolist()))
    return {
        "threshold": float(threshold), "tp": tp, "fp": fp, "fn": ev.n_gt - tp,
        "sensitivity": tp / ev.n_gt if ev.n_gt else float("nan"),
        "fppi": fp / ev.n_images if ev.n_images else float("nan"),
        "precision": tp / (tp + fp) if tp + fp else float("nan"),
        "thrombus_sensitivity": found / ev.n_lesions if ev.n_lesions else float("nan"),
    }


def froc(ev: DetectionEval) -> dict:
    """FROC curve: for every distinct score (descending) used as threshold, sensitivity and FPPI."""
    order = np.argsort(-ev.scores, kind="stable")
    s, tp = ev.scores[order], ev.is_tp[order]
    ctp, cfp = np.cumsum(tp), np.cumsum(~tp)
    last = np.r_[s[1:] != s[:-1], True] if s.size else np.zeros(0, bool)  # one point per distinct score
    return {"thresholds": s[last], "sensitivity": ctp[last] / max(ev.n_gt, 1), "fppi": cfp[last] / max(ev.n_images, 1)}


def sensitivity_at_fppi(ev: DetectionEval, max_fppi: float) -> dict:
    """The operating point with the highest sensitivity whose FPPI is <= max_fppi (lowest such threshold)."""
    curve = froc(ev)
    ok = np.nonzero(curve["fppi"] <= max_fppi)[0]
    if ok.size == 0:
        return operating_point(ev, float("inf"))
    return operating_point(ev, float(curve["thresholds"][ok[-1]]))


def average_precision(ev: DetectionEval) -> float:
    """All-point interpolated AP of the box detections (recall over all GT instances)."""
    if ev.n_gt == 0:
        return float("nan")
    order = np.argsort(-ev.scores, kind="stable")
    tp = ev.is_tp[order]
    ctp, cfp = np.cumsum(tp), np.cumsum(~tp)
    return _interp_ap(ctp / ev.n_gt, ctp / np.maximum(ctp + cfp, 1))


def _interp_ap(recall: np.ndarray, precision: np.ndarray) -> float:
    r = np.concatenate([[0.0], recall, [recall[-1] if recall.size else 0.0]])
    p = np.concatenate([[1.0], precision, [0.0]])
    p = np.maximum.accumulate(p[::-1])[::-1]  # precision envelope
    idx = np.nonzero(r[1:] != r[:-1])[0]
    return float(np.sum((r[idx + 1] - r[idx]) * p[idx + 1]))


def auroc(labels, scores) -> float:
    """Area under the ROC curve (Mann-Whitney U with average ranks for ties); nan if one class is absent."""
    y = np.asarray(labels).astype(bool)
    s = np.asarray(scores, np.float64)
    npos, nneg = int(y.sum()), int((~y).sum())
    if npos == 0 or nneg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), np.float64)
    sorted_s = s[order]
    i = 0
    while i < len(s):  # average ranks over ties
        j = i
        while j + 1 < len(s) and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return float((ranks[y].sum() - npos * (npos + 1) / 2.0) / (npos * nneg))


def slice_average_precision(labels, scores) -> float:
    """AP of a slice classifier: mean precision at each positive's rank (ties broken pessimistically)."""
    y = np.asarray(labels).astype(bool)
    s = np.asarray(scores, np.float64)
    if y.sum() == 0:
        return float("nan")
    order = np.lexsort((y, -s))  # equal scores: negatives first (pessimistic)
    yy = y[order]
    ctp = np.cumsum(yy)
    prec = ctp / np.arange(1, len(yy) + 1)
    return float(prec[yy].sum() / y.sum())


def _json_safe(obj):
    """NaN -> None (strict JSON has no NaN), recursively."""
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


def summary(ev: DetectionEval, threshold: float, fppi_target: float = 0.25) -> dict:
    """All headline figures (JSON-safe: undefined values are None): operating point at ``threshold``, best
    sensitivity at FPPI <= target, AP, slice AUROC / AP, and the FROC curve (at most ~200 points)."""
    curve = froc(ev)
    return _json_safe({
        "at_threshold": operating_point(ev, threshold),
        f"at_fppi_{fppi_target:g}": sensitivity_at_fppi(ev, fppi_target),
        "ap_iou0.1": average_precision(ev),
        "slice_auroc": auroc(ev.slice_labels, ev.slice_scores),
        "slice_ap": slice_average_precision(ev.slice_labels, ev.slice_scores),
        "n_slices": ev.n_images, "n_gt_boxes": ev.n_gt, "n_thrombi": ev.n_lesions,
        "n_positive_slices": int(ev.slice_labels.sum()),
        "froc": {k: [round(float(v), 5) for v in curve[k][:: max(1, len(curve[k]) // 200)]] for k in curve},
    })
