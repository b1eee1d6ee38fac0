"""Calibrate the plausibility rule (``edge.ct.plausibility``) on validation phantoms; lesion-level evaluation.

    python -m training.ct.plausibility_fit --models edge/ct/assets --studies 24 [--record]

For each ``ctdet-k*.onnx``: renders the validation studies ``10000*seed + 5000 + i`` (the split
``training.ct.calibrate`` uses; the model's training seed and distractor probability from its spec), runs the
model at its operating threshold, matches detections to ground truth (IoU >= 0.1) and measures the rule's
features on every detection. Thresholds not fixed by physics are then set so that the TRUE-POSITIVE detections
keep passing (lesion-level sensitivity preserved) - never from real patient data:

- ``defect_lo_hu`` = min(20, 0.5th percentile of TP ``core_hu`` - 10); ``defect_hi_hu`` = max(90, 99.5th
  percentile + 10): the clot range 20-90 HU, widened where phantom clots (noise, partial volume) need it;
- ``min_contrast_hu`` = max(0, 0.5th percentile of TP (``ring_p98 - core_hu``) - 10);
- ``max_bone_frac`` = max(0.1, 99.5th percentile of TP ``bone_frac`` + 0.05).

``ring_mm`` (3 mm) and ``bone_hu`` (500 HU) are fixed by anatomy/physics (see ``edge.ct.plausibility``).
``--record`` writes the parameters, the validation statistics and the command into the spec's
``extra["plausibility"]`` (which ``edge.ct.detector.ModelDetector`` reads) and rewrites the card. With
``--op-fppi F`` the operating point (``decode.score_threshold``) is then re-chosen as the most sensitive threshold
with FPPI <= F on the same validation detections AFTER the rule, since the runtime applies the rule.

:func:`lesion_eval` scores linked findings (``edge.ct.linking``) of one study: a finding is a true positive when
one of its detections matches a ground-truth box (IoU >= 0.1) on its slice; used by ``training.ct.evaluate``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from edge.backends.onnxruntime import OnnxRuntimeBackend
from edge.ct.linking import SliceGeom, link_detections
from edge.ct.plausibility import PlausibilityParams, features, judge_candidate
from edge.ct.types import Detection
from edge.spec import load_spec, save_spec
from training.ct import metrics
from training.ct.card import write_model_card
from training.ct.dataset import predict_study, prepare_study
from training.ct.model_paths import find_models
from training.ct.phantom import Study, make_study


def slice_features(study: Study, preds, p: PlausibilityParams) -> list[list[dict]]:
    """Features of every predicted box, per slice (aligned with ``preds[i][0]``)."""
    return [[features(study.hu[i], b, study.pixel_spacing_mm, p.ring_mm, p.bone_hu) for b in boxes]
            for i, (boxes, _) in enumerate(preds)]


def apply_rule(preds, feats, p: PlausibilityParams):
    """preds with the implausible boxes removed (same per-slice (boxes, scores) layout)."""
    out = []
    for (boxes, scores), fs in zip(preds, feats):
        keep = np.array([judge_candidate(f, p) is None for f in fs], bool).reshape(-1)
        out.append((boxes[keep], scores[keep]))
    return out


def lesion_eval(study: Study, preds, threshold: float) -> dict:
    """Link the per-slice detections (score >= threshold) of one study and score the findings (see module doc)."""
    per_slice, geoms = {}, {}
    for i, (boxes, scores) in enumerate(preds):
        geoms[i] = SliceGeom(float(study.positions_mm[i]), study.pixel_spacing_mm)
        dets = [Detection(i, tuple(float(v) for v in b), float(s)) for b, s in zip(boxes, scores) if s >= threshold]
        if dets:
            per_slice[i] = dets
    findings, suppressed = link_detections(per_slice, geoms)
    found, tp, fp = set(), 0, 0
    for f in findings:
        hit = False
        for d in f.detections:
            for j, t in enumerate(study.thrombi):
                g = t.boxes.get(d.slice_index)
                if g is not None and metrics.box_iou([d.box], [g])[0, 0] >= metrics.IOU_THRESHOLD:
                    hit = True
                    found.add(j)
        tp, fp = tp + hit, fp + (not hit)
    return {"findings": len(findings), "tp_findings": tp, "fp_findings": fp, "suppressed": len(suppressed),
            "thrombi": len(study.thrombi), "thrombi_found": len(found)}


def sum_lesion(rows: list[dict]) -> dict:
    tot = {k: int(sum(r[k] for r in rows)) for k in rows[0]} if rows else {}
    n = max(len(rows), 1)
    tot.update({"studies": len(rows), "findings_per_study": round(tot.get("findings", 0) / n, 3),
                "fp_findings_per_study": round(tot.get("fp_findings", 0) / n, 3),
                "thrombus_sensitivity": round(tot.get("thrombi_found", 0) / max(tot.get("thrombi", 0), 1), 4)})
    return tot


def choose_params(tp_feats: list[dict]) -> PlausibilityParams:
    """Thresholds from the true-positive features (module doc)."""
    core = np.array([f["core_hu"] for f in tp_feats if np.isfinite(f["core_hu"])])
    con = np.array([f["ring_p98"] - f["core_hu"] for f in tp_feats if np.isfinite(f["core_hu"])])
    bone = np.array([f["bone_frac"] for f in tp_feats])
    base = PlausibilityParams()
    if core.size == 0:
        return base
    return PlausibilityParams(
        ring_mm=base.ring_mm, bone_hu=base.bone_hu,
        max_bone_frac=round(max(0.1, float(np.percentile(bone, 99.5)) + 0.05), 3),
        defect_lo_hu=round(min(20.0, float(np.percentile(core, 0.5)) - 10), 1),
        defect_hi_hu=round(max(90.0, float(np.percentile(core, 99.5)) + 10), 1),
        min_contrast_hu=round(max(0.0, float(np.percentile(con, 0.5)) - 10), 1))


def _validation_studies(spec, studies: int, real_studies: int, scene_studies: int = 0):
    """(label, Study) of the model's validation split: phantom seeds ``10000*seed + 5000 + i``; for a model
    trained with real inserted lesions, the lesion study and clean copy of its real validation seeds (same source
    volume as training; the other volume stays held out); for a model trained on vessel scenes, their validation
    seeds (``training.ct.train.scene_seeds``)."""
    from training.ct.train import scene_seeds, study_seeds  # (imports torch: only where needed)

    tr = spec.extra["training"]
    p_dis, wide = float(tr.get("distractors", 0.0)), float(tr.get("wide", 0.0) or 0.0)
    for seed in study_seeds(int(tr["seed"]), studies, "val"):
        yield f"phantom-{seed}", make_study(seed, size=int(tr.get("phantom_size", 512)), distractors=p_dis, wide=wide)
    vol = tr.get("real_volume")
    if vol and real_studies:
        from training.ct.real_lesions import make_pair

        lo, hi = tr["real_val_seeds"][0], tr["real_val_seeds"][-1]
        for seed in range(lo, min(hi + 1, lo + real_studies)):
            pair = make_pair(vol, seed, size=int(tr.get("phantom_size", 512)))
            yield f"{vol}-{seed}", pair.lesion
            yield f"{vol}-{seed}-clean", pair.clean
    if scene_studies and tr.get("scenes"):
        from training.ct.vessel_scenes import make_scene

        for seed in scene_seeds(int(tr["seed"]), scene_studies, "val"):
            yield f"scene-{seed}", make_scene(seed, size=int(tr.get("phantom_size", 512)))


def calibrate(model: Path, studies: int, threads: int, record: bool, command: str, op_fppi: float | None = None,
              floor: float = 0.05, real_studies: int = 0, scene_studies: int = 0) -> dict:
    from training.ct.train import study_seeds

    spec = load_spec(model)
    tr = spec.extra["training"]
    seeds = study_seeds(int(tr["seed"]), studies, "val")
    p_dis = float(tr.get("distractors", 0.0))
    thr = float(spec.extra["decode"]["score_threshold"])
    backend = OnnxRuntimeBackend(model, threads=threads)
    infer = (lambda x: backend.infer({spec.input.name: x}))
    base = PlausibilityParams()
    rows = []  # (study index, slice, feature, is_tp)
    cache = []
    print(f"{spec.name}: {studies} validation studies (seeds {seeds[0]}..{seeds[-1]}, distractors {p_dis})"
          + (f" + {real_studies} real {tr.get('real_volume')} validation pairs" if tr.get("real_volume") and real_studies else "")
          + (f" + {scene_studies} vessel scenes" if tr.get("scenes") and scene_studies else "")
          + " ...", flush=True)
    for s, (label, st) in enumerate(_validation_studies(spec, studies, real_studies, scene_studies)):
        preds = predict_study(infer, prepare_study(st, spec.preprocess), spec, floor)
        feats = slice_features(st, preds, base)
        for i, ((boxes, scores), fs) in enumerate(zip(preds, feats)):
            gts = [t.boxes[i] for t in st.thrombi if i in t.boxes]
            match = metrics.match_slice(boxes, scores, gts)
            rows += [(s, i, f, bool(m >= 0)) for f, m, sc in zip(fs, match, scores) if sc >= thr]
        gts_all = [[t.boxes[i] for t in st.thrombi if i in t.boxes] for i in range(len(preds))]
        ids_all = [[s * 1000 + j for j, t in enumerate(st.thrombi) if i in t.boxes] for i in range(len(preds))]
        cache.append((preds, feats, gts_all, ids_all, st))
    backend.close()
    tp_feats = [f for _, _, f, m in rows if m]
    p = choose_params(tp_feats)
    old_thr = thr
    ruled = [apply_rule(preds, feats, p) for preds, feats, *_ in cache]
    ev = metrics.evaluate_detections([x for r in ruled for x in r], [g for c in cache for g in c[2]],
                                     [i for c in cache for i in c[3]])
    if op_fppi is not None:  # the runtime applies the rule, so the operating point is chosen after it
        op = metrics.sensitivity_at_fppi(ev, op_fppi)
        thr = round(max(float(op["threshold"]), 0.1), 4)
    val_rule = metrics.summary(ev, thr)
    val_rule.pop("froc")
    before, after = [], []
    for (preds, feats, _, _, st), r in zip(cache, ruled):
        before.append(lesion_eval(st, preds, thr))
        after.append(lesion_eval(st, r, thr))
    reasons = {}
    for _, _, f, m in rows:
        why = judge_candidate(f, p)
        if why:
            key = f"{why.split(':')[0]} ({'TP' if m else 'FP'})"
            reasons[key] = reasons.get(key, 0) + 1
    stats = {
        "studies": studies, "seeds": [seeds[0], seeds[-1]], "distractors": p_dis, "threshold": thr,
        "real_validation": ({"volume": tr.get("real_volume"), "pairs": real_studies}
                            if tr.get("real_volume") and real_studies else None),
        "scene_validation": scene_studies if tr.get("scenes") else None,
        "params_from_threshold": old_thr, "validation_with_rule": val_rule,
        "tp_detections": len(tp_feats), "fp_detections": sum(1 for r in rows if not r[3]),
        "rejected": reasons, "lesion_before": sum_lesion(before), "lesion_after": sum_lesion(after),
        "command": command,
    }
    print(json.dumps({"params": p.to_json(), **stats}, indent=1), flush=True)
    at = val_rule["at_threshold"]
    print(f"  with the rule @ {thr}: sensitivity {at['sensitivity']:.3f}, FPPI {at['fppi']:.3f}", flush=True)
    if record:
        if op_fppi is not None:
            spec.extra["decode"]["score_threshold"] = thr
            spec.extra["metrics"]["validation"] = val_rule
            spec.extra["metrics"]["operating_point"] = (
                f"most sensitive threshold with FPPI <= {op_fppi} on {studies} validation studies AFTER the plausibility "
                f"rule ({command}); the rule's thresholds were set on the true positives at {old_thr}")
        spec.extra["plausibility"] = p.to_json() | {
            "function": "edge.ct.plausibility.check", "calibration": stats,
            "basis": "filling defect inside a contrast-filled vein: no bone ring (>= 500 HU), clot density, darker "
                     "than its surround; thresholds keep the validation true positives (training.ct.plausibility_fit)"}
        save_spec(spec, model)
        write_model_card(spec, model.with_suffix(".md"))
    return {"params": p.to_json(), **stats}


def lesion_operating_point(model: Path, studies: int, threads: int, record: bool, command: str, max_fp: float,
                           real_studies: int = 0, floor: float = 0.05, scene_studies: int = 0) -> dict:
    """Re-choose the operating point at LESION level on the validation split, keeping the spec's rule: the lowest
    (most sensitive) threshold whose linked findings, after the rule, give <= ``max_fp`` false findings per
    validation study (clean copies included). The rule's parameters are not refitted."""
    spec = load_spec(model)
    p = PlausibilityParams.from_spec(spec)
    backend = OnnxRuntimeBackend(model, threads=threads)
    infer = (lambda x: backend.infer({spec.input.name: x}))
    cache = []
    for label, st in _validation_studies(spec, studies, real_studies, scene_studies):
        preds = predict_study(infer, prepare_study(st, spec.preprocess), spec, floor)
        kept = apply_rule(preds, slice_features(st, preds, p), p) if p.enabled else preds
        cache.append((label, st, kept))
        print(f"  {label}: {len(st.hu)} slices, {len(st.thrombi)} thrombi", flush=True)
    backend.close()
    old_thr = float(spec.extra["decode"]["score_threshold"])
    curve = []
    for t in np.round(np.arange(0.10, 0.951, 0.01), 2):
        tot = sum_lesion([lesion_eval(st, kept, float(t)) for _, st, kept in cache])
        curve.append({"threshold": float(t), "thrombus_sensitivity": tot["thrombus_sensitivity"],
                      "fp_findings_per_study": tot["fp_findings_per_study"]})
    ok = [c for c in curve if c["fp_findings_per_study"] <= max_fp]
    pick = ok[0] if ok else curve[-1]
    thr = pick["threshold"]
    print(json.dumps({"picked": pick, "previous_threshold": old_thr}), flush=True)
    if record:
        spec.extra["decode"]["score_threshold"] = thr
        spec.extra.setdefault("metrics", {})["operating_point"] = (
            f"most sensitive threshold with <= {max_fp:g} false finding(s) per validation study at lesion level "
            f"(linked findings after the plausibility rule; {len(cache)} validation studies incl. clean copies; "
            f"{command}); before: {old_thr} (per-slice FPPI <= 0.2 on validation)")
        spec.extra["lesion_operating_point"] = {"max_fp_findings_per_study": max_fp, "picked": pick,
                                                "previous_threshold": old_thr, "curve": curve,
                                                "validation_studies": [c[0] for c in cache], "command": command}
        save_spec(spec, model)
        write_model_card(spec, model.with_suffix(".md"))
    return pick


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Calibrate the CT plausibility rule on validation phantoms.")
    ap.add_argument("--models", required=True, type=Path)
    ap.add_argument("--studies", type=int, default=24)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--record", action="store_true")
    ap.add_argument("--op-fppi", type=float, default=None,
                    help="also re-choose the operating point: most sensitive threshold with FPPI <= this AFTER the rule")
    ap.add_argument("--real-studies", type=int, default=0,
                    help="also use this many real validation pairs (lesion + clean) of the model's training volume")
    ap.add_argument("--scene-studies", type=int, default=0,
                    help="also use this many vessel-scene validation studies (models trained with --scenes)")
    ap.add_argument("--op-findings", type=float, default=None,
                    help="instead: keep the rule, re-choose the operating point as the most sensitive threshold with "
                         "<= this many false findings per validation study (lesion level)")
    args = ap.parse_args(argv)
    command = "python -m training.ct.plausibility_fit " + " ".join(sys.argv[1:] if argv is None else argv)
    if args.op_findings is not None:
        for model in find_models(args.models):
            lesion_operating_point(model, args.studies, args.threads, args.record, command, args.op_findings,
                                   args.real_studies, scene_studies=args.scene_studies)
        return 0
    for model in find_models(args.models):
        calibrate(model, args.studies, args.threads, args.record, command, args.op_fppi, real_studies=args.real_studies,
                  scene_studies=args.scene_studies)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
