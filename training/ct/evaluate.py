"""Evaluate exported CT detectors on held-out phantom studies through ONNX Runtime (not for diagnostic use).

    python -m training.ct.evaluate --models edge/ct/assets --studies 24 --seed 900000 --out results.json

Runs every ``ctdet-k*.onnx`` in ``--models`` with ``edge.backends.onnxruntime`` and ``edge.ct.decode`` (the
bedside code path), on phantom studies with seeds ``seed .. seed+studies-1`` (refused if they overlap a model's
training/validation seeds). Detections are scored per slice (no linking; see ``training.ct.metrics`` for the
matching rules). Prints the 1-slice vs k-slice ablation table (cf. Hwang et al. Table 2) as Markdown, writes
JSON with the metrics, FROC curves and timings; ``--record`` also stores the test metrics in each spec and card.

Also reported per model: the same per-slice metrics after the plausibility rule (``edge.ct.plausibility`` with
the spec's parameters, as ``ct scan`` applies it) under ``with_rule``, and lesion-level figures under ``lesion``:
detections at the operating threshold linked into findings (``edge.ct.linking``, as ``ct scan`` does), findings
and false findings per study, and thrombus-level sensitivity, without and with the rule.
``--distractors P`` renders the test studies with non-venous look-alikes (``training.ct.phantom``) with
probability P per study (default 0: the original phantom test set).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

from edge.backends.onnxruntime import OnnxRuntimeBackend
from edge.ct.decode import decode_detections, neighbour_indices, prepare_slice, stack_input
from edge.ct.plausibility import PlausibilityParams
from edge.errors import ModelError
from edge.spec import load_spec, save_spec
from training.ct import metrics
from training.ct.card import write_model_card
from training.ct.dataset import build_studies, predict_study
from training.ct.model_paths import find_models
from training.ct.phantom import make_study
from training.ct.plausibility_fit import apply_rule, lesion_eval, slice_features, sum_lesion


def _check_disjoint(spec, seeds: list[int]) -> None:
    tr = spec.extra.get("training", {})
    for key in ("train_study_seeds", "val_study_seeds"):
        lo, hi = tr.get(key, [None, None])
        if lo is not None and any(lo <= s <= hi for s in seeds):
            raise ModelError(f"{spec.name}: evaluation seeds {seeds[0]}..{seeds[-1]} overlap its {key} {lo}..{hi}")


def _pct(xs: list[float]) -> dict:
    a = np.asarray(xs)
    return {"p50": round(float(np.percentile(a, 50)), 2), "p90": round(float(np.percentile(a, 90)), 2),
            "p99": round(float(np.percentile(a, 99)), 2), "n": int(a.size)}


def time_end_to_end(backend, spec, seed: int, n_slices: int = 40) -> dict:
    """Per-slice wall time (ms) of HU slice -> prepare -> stack -> ORT -> decode on a 512 x 512 study.

    The runtime prepares each slice once on arrival; the stack reuses prepared neighbours (as here).
    """
    study = make_study(seed, size=512, n_slices=n_slices)
    pre, k = spec.preprocess, int(spec.preprocess["k"])
    prepared, e2e, model_ms = {}, [], []
    buf = np.empty(tuple(spec.input.shape), np.float32)
    for i in range(len(study.hu)):
        t0 = time.perf_counter()
        prepared[i] = prepare_slice(study.hu[i], study.pixel_spacing_mm, pre)
        c = i - k // 2  # the slice whose neighbourhood just completed
        if c < 0:
            continue
        stack_input([prepared[j] for j in neighbour_indices(c, len(study.hu), k)], out=buf)
        t1 = time.perf_counter()
        out = backend.infer({spec.input.name: buf})
        t2 = time.perf_counter()
        decode_detections(out, spec, slice_index=c, pixel_spacing_mm=study.pixel_spacing_mm,
                          original_shape=study.hu.shape[1:])
        t3 = time.perf_counter()
        if c >= 3:  # warm-up excluded
            e2e.append((t3 - t0) * 1e3)
            model_ms.append((t2 - t1) * 1e3)
    return {"model_ms": _pct(model_ms), "end_to_end_ms": _pct(e2e),
            "slices_per_s_p50": round(1000.0 / float(np.percentile(e2e, 50)), 1)}


def evaluate(args) -> dict:
    paths = find_models(args.models)
    seeds = [args.seed + i for i in range(args.studies)]
    cache, results, work = {}, {}, []
    for path in paths:
        spec = load_spec(path)
        _check_disjoint(spec, seeds)
        pre = spec.preprocess
        key = (pre["target_spacing_mm"], pre["size"])
        if key not in cache:
            print(f"rendering {len(seeds)} held-out phantom studies (seeds {seeds[0]}..{seeds[-1]}) ...", flush=True)
            cache[key] = build_studies(seeds, pre, args.phantom_size, args.workers, "test", args.distractors)
        backend = OnnxRuntimeBackend(path, threads=args.threads)
        infer = (lambda x, b=backend, n=spec.input.name: b.infer({n: x}))
        t0 = time.perf_counter()
        preds, gts, ids, per_study = [], [], [], []
        for s, st in enumerate(cache[key]):
            per_study.append(predict_study(infer, st, spec, args.floor))
            preds += per_study[-1]
            gts += st.gt_orig
            ids += [[s * 1000 + j for j in g] for g in st.gt_ids]
        ev = metrics.evaluate_detections(preds, gts, ids)
        thr = float(spec.extra["decode"]["score_threshold"])
        res = metrics.summary(ev, thr, args.fppi_target)
        print(f"  {spec.name}: {ev.n_images} slices in {time.perf_counter() - t0:.0f} s; timing ...", flush=True)
        res["timing"] = time_end_to_end(backend, spec, seeds[0])
        res["model"] = {"file": path.name, "sha256": spec.extra.get("artifact", {}).get("sha256"), "k": int(pre["k"])}
        results[spec.name] = res
        work.append((path, spec, thr, per_study, gts, ids))
        backend.close()
    # plausibility rule + lesion level: needs the HU volumes, so the studies are rendered once more (one at a time)
    print("lesion-level evaluation (linked findings) with and without the plausibility rule ...", flush=True)
    lesion = {spec.name: {"no_rule": [], "with_rule": []} for _, spec, *_ in work}
    ruled = {spec.name: [] for _, spec, *_ in work}
    for s, seed in enumerate(seeds):
        st = make_study(seed, size=args.phantom_size, distractors=args.distractors)
        for _, spec, thr, per_study, _, _ in work:
            p = PlausibilityParams.from_spec(spec)
            pr = per_study[s]
            kept = apply_rule(pr, slice_features(st, pr, p), p) if p.enabled else pr
            ruled[spec.name] += kept
            lesion[spec.name]["no_rule"].append(lesion_eval(st, pr, thr))
            lesion[spec.name]["with_rule"].append(lesion_eval(st, kept, thr))
    for path, spec, thr, per_study, gts, ids in work:
        res = results[spec.name]
        p = PlausibilityParams.from_spec(spec)
        wr = metrics.summary(metrics.evaluate_detections(ruled[spec.name], gts, ids), thr, args.fppi_target)
        wr.pop("froc")
        res["with_rule"] = wr | {"plausibility": p.to_json()}
        res["lesion"] = {k: sum_lesion(v) for k, v in lesion[spec.name].items()}
        res["distractors"] = args.distractors
        if args.record:
            spec.extra.setdefault("metrics", {})["test"] = {k: v for k, v in res.items() if k != "froc"}
            spec.extra["metrics"]["test_command"] = args.command
            save_spec(spec, path)
            write_model_card(spec, path.with_suffix(".md"))
    return results


def markdown_table(results: dict, fppi_target: float = 0.25) -> str:
    rows = ["| model | k | threshold | sensitivity | FPPI | precision | thrombus sens. | "
            f"sens. @ FPPI<={fppi_target:g} | AP (IoU>=0.1) | slice AUROC | slice AP | ORT ms p50 | e2e slices/s |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        a, b = r["at_threshold"], r[f"at_fppi_{fppi_target:g}"]
        rows.append(f"| {name} | {r['model']['k']} | {a['threshold']:.3f} | {a['sensitivity']:.3f} | {a['fppi']:.3f} | "
                    f"{a['precision']:.3f} | {a['thrombus_sensitivity']:.3f} | {b['sensitivity']:.3f} (FPPI {b['fppi']:.3f}) | "
                    f"{r['ap_iou0.1']:.3f} | {r['slice_auroc']:.3f} | {r['slice_ap']:.3f} | "
                    f"{r['timing']['model_ms']['p50']:.1f} | {r['timing']['slices_per_s_p50']:.1f} |")
    rows += ["", "With the plausibility rule (edge/ct/plausibility.py) and lesion level (linked findings, per study):", "",
             "| model | rule sens. | rule FPPI | rule precision | rule AP | findings/study (no rule -> rule) | "
             "false findings/study | thrombus sens. (findings) |", "|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        if "lesion" not in r:
            continue
        w, a, b = r["with_rule"], r["lesion"]["no_rule"], r["lesion"]["with_rule"]
        rows.append(f"| {name} | {w['at_threshold']['sensitivity']:.3f} | {w['at_threshold']['fppi']:.3f} | "
                    f"{w['at_threshold']['precision']:.3f} | {w['ap_iou0.1']:.3f} | {a['findings_per_study']:.2f} -> "
                    f"{b['findings_per_study']:.2f} | {a['fp_findings_per_study']:.2f} -> {b['fp_findings_per_study']:.2f} | "
                    f"{a['thrombus_sensitivity']:.3f} -> {b['thrombus_sensitivity']:.3f} |")
    return "\n".join(rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Evaluate CT detectors on held-out phantoms (not for diagnostic use).")
    ap.add_argument("--models", required=True, type=Path)
    ap.add_argument("--studies", type=int, default=24)
    ap.add_argument("--seed", type=int, default=900000, help="first held-out study seed")
    ap.add_argument("--out", type=Path, default=Path("results.json"))
    ap.add_argument("--floor", type=float, default=0.05, help="lowest score kept (FROC / AP range)")
    ap.add_argument("--fppi-target", type=float, default=0.25)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--phantom-size", type=int, default=512)
    ap.add_argument("--record", action="store_true", help="store the test metrics in each model's spec and card")
    ap.add_argument("--distractors", type=float, default=0.0,
                    help="probability per test study of non-venous look-alikes (0 = the original phantom test set)")
    args = ap.parse_args(argv)
    args.command = "python -m training.ct.evaluate " + " ".join(sys.argv[1:] if argv is None else argv)
    results = evaluate(args)
    table = markdown_table(results, args.fppi_target)
    print("\nPer-slice detection on held-out phantoms (IoU >= 0.1; FPPI = false-positive boxes per slice):\n")
    print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"schema": "dvt-edge/ct-eval@1", "note": "synthetic phantoms, not for diagnostic use",
                                    "command": args.command, "seeds": [args.seed, args.seed + args.studies - 1],
                                    "distractors": args.distractors,
                                    "python": platform.python_version(), "table": table, "models": results}, indent=1))
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
