"""Choose the vessel-lumen stage's fusion (``edge.ct.lumen``) on VALIDATION data only (research software).

    python -m training.ct.lumen_calibrate --model edge/ct/assets/ctdet-k3.onnx --studies 12 --seed 26000 \\
        --real-studies 8 --real-seed 25000 [--record]

Validation = first-renderer phantoms (``phantom.make_study(seed, wide=0.5, distractors=0.8)``, seeds ``--seed``+)
and aorta lesion studies with their clean copies (``real_lesions.make_pair("aorta", seed)``, seeds ``--real-seed``+).
The second renderer and the pulmonary volume are test sets and are never read here.

Every study runs through the runtime ``edge.ct.detector.ModelDetector`` (2.5D window, the model at its operating
point) with the lumen stage collecting its raw candidates (box, lumen score, heatmap max). For each grid point
(``heat_weight`` x ``score_threshold``) the candidates are fused with :func:`edge.ct.lumen.fuse`, the runtime
plausibility rule is applied, and findings are linked and scored per lesion (``training.ct.plausibility_fit.lesion_eval``).
Picked: the most sensitive point with <= ``--max-fp`` false findings per study (lesion and clean studies together;
ties: the one spending most of that budget on lumen candidates, i.e. the usual lowest threshold within the limit),
compared with the learned detector alone. ``--record`` writes the block into the
model spec's ``extra["lumen"]`` with ``enabled`` = whether it beat the detector alone on validation.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from edge.backends.onnxruntime import OnnxRuntimeBackend
from edge.ct.detector import ModelDetector
from edge.ct.lumen import LumenParams, fuse
from edge.ct.plausibility import PlausibilityParams, check
from edge.ct.ring import SliceRing
from edge.ct.types import CTSlice
from edge.spec import load_spec, save_spec
from training.ct.plausibility_fit import lesion_eval, sum_lesion

WEIGHTS = (0.0, 0.25, 0.5, 0.75)
FUSIONS = (0.0, 1.0)  # linear mean, geometric gate (edge.ct.lumen.fuse)
THRESHOLDS = tuple(round(float(x), 2) for x in np.arange(0.1, 1.0001, 0.05))


def validation_studies(args):
    from training.ct.phantom import make_study
    from training.ct.real_lesions import make_pair

    for s in range(args.seed, args.seed + args.studies):
        yield f"phantom-{s}", make_study(s, wide=0.5, distractors=0.8), False
    for s in range(args.real_seed, args.real_seed + args.real_studies):
        pair = make_pair("aorta", s)
        yield f"aorta-{s}", pair.lesion, False
        yield f"aorta-{s}-clean", pair.clean, True


def run_study(det: ModelDetector, st) -> list[tuple[list, list]]:
    """Per slice: (learned detections at the operating point, raw lumen candidates (box, score, heat))."""
    det.reset()
    ring = SliceRing(det.k)
    out: list = [None] * len(st.hu)
    slices = (CTSlice(st.hu[i], i, float(st.positions_mm[i]), st.pixel_spacing_mm) for i in range(len(st.hu)))

    def handle(windows):
        for w in windows:
            dets = det.detect(list(w.slices), w.centre)
            out[w.centre.index] = (dets, list(det.lumen_last))

    for s in slices:
        handle(ring.push(s))
    handle(ring.flush())
    return out


def score_point(cache, lp: LumenParams | None, rule: PlausibilityParams, op: float) -> dict:
    rows, clean = [], []
    for _, st, is_clean, per in cache:
        preds = []
        for i, (dets, cands) in enumerate(per):
            if lp is not None:
                dets = fuse(dets, [(b, s) for b, s, _ in cands], [h for *_, h in cands], lp, op, i)
            dets = [d for d in dets if check(st.hu[i], d.box, st.pixel_spacing_mm, rule) is None]
            preds.append((np.array([d.box for d in dets], float).reshape(-1, 4), np.array([d.score for d in dets], float)))
        (clean if is_clean else rows).append(lesion_eval(st, preds, op))
    les, cl = sum_lesion(rows), sum_lesion(clean)
    fp_all = (les.get("fp_findings", 0) + cl.get("fp_findings", 0)) / max(len(rows) + len(clean), 1)
    return {"thrombus_sensitivity": les["thrombus_sensitivity"], "thrombi_found": les["thrombi_found"],
            "thrombi": les["thrombi"], "fp_findings_per_study": round(fp_all, 3),
            "fp_findings_per_lesion_study": les["fp_findings_per_study"],
            "fp_findings_per_clean_study": cl.get("fp_findings_per_study")}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Choose the lumen stage's fusion on validation data (not for diagnostic use).")
    ap.add_argument("--model", type=Path, default=Path("edge/ct/assets/ctdet-k3.onnx"))
    ap.add_argument("--studies", type=int, default=12)
    ap.add_argument("--seed", type=int, default=26000)
    ap.add_argument("--real-studies", type=int, default=8)
    ap.add_argument("--real-seed", type=int, default=25000)
    ap.add_argument("--max-fp", type=float, default=1.0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None, help="JSON with the whole grid")
    ap.add_argument("--record", action="store_true", help="write the picked block into the model spec")
    args = ap.parse_args(argv)
    command = "python -m training.ct.lumen_calibrate " + " ".join(sys.argv[1:] if argv is None else argv)
    spec = load_spec(args.model)
    op = float(spec.extra["decode"]["score_threshold"])
    rule = PlausibilityParams.from_spec(spec)
    base = LumenParams()
    collect = replace(base, score_threshold=2.0)  # nothing fused: the raw candidates are collected
    backend = OnnxRuntimeBackend(args.model, threads=args.threads)
    det = ModelDetector(backend, spec, plausibility=PlausibilityParams(enabled=False), lumen=collect)
    cache = []
    for label, st, is_clean in validation_studies(args):
        cache.append((label, st, is_clean, run_study(det, st)))
        print(f"  {label}: {len(st.hu)} slices, {len(st.thrombi)} thrombi", flush=True)
    lumen_ms = float(np.mean(det.timing["lumen"])) if det.timing.get("lumen") else None
    backend.close()
    alone = score_point(cache, None, rule, op)
    grid = []
    for fu in FUSIONS:
        for w in WEIGHTS:
            if fu and not w:
                continue  # the gate without the heatmap is the mean without it
            for t in THRESHOLDS:
                r = score_point(cache, replace(base, fusion=fu, heat_weight=w, score_threshold=t), rule, op)
                grid.append({"fusion": fu, "heat_weight": w, "score_threshold": t, **r})
                print(f"  fusion={fu} w={w} t={t}: sens {r['thrombus_sensitivity']} fp/study {r['fp_findings_per_study']}", flush=True)
    ok = [g for g in grid if g["fp_findings_per_study"] <= args.max_fp]
    # most sensitive; among equals the one that admits the most lumen candidates within the budget (the usual
    # "lowest threshold with <= N false findings"): validation is in-style for the learned detector, so it cannot
    # show what the stage adds on anatomy the detector has not seen; it can only bound what the stage costs
    pick = max(ok, key=lambda g: (g["thrombus_sensitivity"], g["fp_findings_per_study"])) if ok else None
    better = bool(pick) and pick["thrombus_sensitivity"] > alone["thrombus_sensitivity"]
    print(f"detector alone: {alone}\npicked: {pick}\nenabled by default: {better}", flush=True)
    block = None
    if pick:
        block = replace(base, fusion=pick["fusion"], heat_weight=pick["heat_weight"], score_threshold=pick["score_threshold"],
                        enabled=better).to_json() | {
            "function": "edge.ct.lumen.LumenStage + edge.ct.lumen.fuse",
            "calibration": {"validation": {"phantom_seeds": [args.seed, args.seed + args.studies - 1],
                                           "aorta_pairs": [args.real_seed, args.real_seed + args.real_studies - 1]},
                            "criterion": f"most sensitive with <= {args.max_fp} false findings per study (lesion + clean); "
                                         "ties: most false findings within that limit (lowest threshold); enabled only "
                                         "if more sensitive than the detector alone",
                            "picked": pick, "detector_alone": alone, "lumen_ms_per_slice": lumen_ms,
                            "command": command}}
    if args.out:
        args.out.write_text(json.dumps({"command": command, "detector_alone": alone, "grid": grid, "block": block}, indent=1))
    if args.record and block:
        spec.extra["lumen"] = block
        save_spec(spec, args.model)
        print(f"recorded in {args.model.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
