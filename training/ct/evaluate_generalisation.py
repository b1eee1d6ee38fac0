"""Does the CT detector find the sign in scenes it was not trained on? (research software, not for diagnostic use)

    python -m training.ct.evaluate_generalisation --models DIR --set phantom --studies 48 --seed 940000 --out r.json
    python -m training.ct.evaluate_generalisation --models DIR --set second --studies 48 --seed 800000 --out r.json
    python -m training.ct.evaluate_generalisation --models DIR --set real --volume pulmonary --studies 24 --seed 900000 --out r.json

Sets:
- ``phantom``: the project's own renderer (``training.ct.phantom``), fresh seeds: the in-style check.
- ``second``: the independently written renderer (``training.ct.second_renderer.make_study``), never trained on.
- ``real``: real contrast CT with inserted filling defects (``training.ct.real_lesions``) from ``--volume``; every
  seed gives a lesion study and its clean copy. Refused when a model was trained on that source volume
  (``training.real_volume`` in its spec): evaluate on the held-out volume.

Every model (``ctdet-k*.onnx`` in ``--models``, or one file) runs through ONNX Runtime and ``edge.ct.decode`` (the
bedside code path), one study at a time. Reported per model, without and with the runtime plausibility rule
(``edge.ct.plausibility`` with the spec's parameters, as ``ct scan`` applies it):

- per slice (``training.ct.metrics``, IoU >= 0.1): sensitivity / FPPI at the shipped threshold, best sensitivity with
  FPPI <= 0.25 (for ``real``, FPPI counts the clean copies' slices too), AP;
- lesion level (``training.ct.plausibility_fit.lesion_eval``: detections >= the shipped threshold linked into findings
  by ``edge.ct.linking``, as ``ct scan`` reports them): thrombus sensitivity and false findings per study, and for
  ``real`` false findings per clean study.

With ``--lumen on`` (or ``spec`` and a spec whose ``extra["lumen"]`` is enabled) every model is also scored with the
vessel-lumen stage (``edge.ct.lumen``) fused in, as ``ct scan`` runs it: one pass of the runtime
``edge.ct.detector.ModelDetector`` per study gives the learned detections and the raw lumen candidates; the row
``<model>+lumen`` is the union made by ``edge.ct.lumen.fuse`` with the spec's lumen parameters (the same function the
runtime calls), the row ``<model>`` the learned detector alone from the same pass.

Writes JSON (``--out``) and a Markdown table (``--md``, default: ``--out`` with ``.md``).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from edge.backends.onnxruntime import OnnxRuntimeBackend
from edge.ct.lumen import LumenParams, fuse
from edge.ct.plausibility import PlausibilityParams
from edge.errors import ModelError
from edge.spec import load_spec
from training.ct import metrics
from training.ct.dataset import predict_study, prepare_study
from training.ct.model_paths import find_models
from training.ct.plausibility_fit import apply_rule, lesion_eval, slice_features, sum_lesion

SETS = ("phantom", "second", "real")


def _check(spec, args, seeds: list[int]) -> None:
    tr = spec.extra.get("training", {})
    if args.set == "phantom":
        for key in ("train_study_seeds", "val_study_seeds"):
            lo, hi = tr.get(key, [None, None])
            if lo is not None and any(lo <= s <= hi for s in seeds):
                raise ModelError(f"{spec.name}: evaluation seeds {seeds[0]}..{seeds[-1]} overlap its {key} {lo}..{hi}")
    if args.set == "real" and tr.get("real_volume") == args.volume:
        raise ModelError(f"{spec.name} was trained on the {args.volume} volume: evaluate it on the other one")


def studies(args):
    """Yield (label, Study, is_clean) one at a time (a 512 x 512 study is ~100 MB)."""
    seeds = [args.seed + i for i in range(args.studies)]
    kw = {} if args.n_slices is None else {"n_slices": args.n_slices}
    if args.set == "phantom":
        from training.ct.phantom import make_study

        for s in seeds:
            yield f"phantom-{s}", make_study(s, size=args.size, distractors=args.distractors, **kw), False
    elif args.set == "second":
        try:
            from training.ct.second_renderer import make_study as make_second
        except ImportError as e:  # pragma: no cover - depends on the checkout
            raise ModelError(f"the second renderer is not available ({e})") from e
        for s in seeds:
            yield f"second-{s}", make_second(s, size=args.size, **kw), False
    else:
        from training.ct.real_lesions import make_pair

        for s in seeds:
            pair = make_pair(args.volume, s, size=args.size, **kw)
            yield f"{args.volume}-{s}", pair.lesion, False
            yield f"{args.volume}-{s}-clean", pair.clean, True


def evaluate(args) -> dict:
    paths = find_models(args.models)
    seeds = [args.seed + i for i in range(args.studies)]
    models = []
    for path in paths:
        spec = load_spec(path)
        _check(spec, args, seeds)
        backend = OnnxRuntimeBackend(path, threads=args.threads)
        lp = LumenParams.from_spec(spec)
        if args.lumen != "spec":
            block = spec.extra.get("lumen")
            lp = replace(LumenParams.from_dict(block) if isinstance(block, dict) else LumenParams(), enabled=args.lumen == "on")
        variants = [spec.name] + ([spec.name + "+lumen"] if lp.enabled else [])
        for name in variants:
            models.append({"path": path, "spec": spec, "backend": backend, "thr": float(spec.extra["decode"]["score_threshold"]),
                           "rule": PlausibilityParams.from_spec(spec), "preds": [], "ruled": [], "gts": [], "ids": [],
                           "lesion": [], "lesion_rule": [], "clean": [], "clean_rule": [], "per_study": [],
                           "name": name, "lumen": lp if name.endswith("+lumen") else None,
                           "runtime": lp.enabled})
    t0 = time.perf_counter()
    n = 0
    for label, st, is_clean in studies(args):
        n += 1
        cache, passes = {}, {}
        for m in models:
            spec = m["spec"]
            pre = spec.preprocess
            key = (pre["target_spacing_mm"], pre["size"])
            if key not in cache:
                cache[key] = prepare_study(st, pre)
            ps = cache[key]
            if m["runtime"]:  # the runtime path, once per model file: learned detections + raw lumen candidates
                if m["path"] not in passes:
                    passes[m["path"]] = runtime_pass(m, st, args.floor)
                pr = runtime_preds(passes[m["path"]], m["lumen"], m["thr"])
            else:
                infer = (lambda x, b=m["backend"], name=spec.input.name: b.infer({name: x}))
                pr = predict_study(infer, ps, spec, args.floor)
            p = m["rule"]
            kept = apply_rule(pr, slice_features(st, pr, p), p) if p.enabled else pr
            m["preds"] += pr
            m["ruled"] += kept
            m["gts"] += ps.gt_orig
            m["ids"] += [[n * 1000 + j for j in g] for g in ps.gt_ids]
            a, b = lesion_eval(st, pr, m["thr"]), lesion_eval(st, kept, m["thr"])
            (m["clean"] if is_clean else m["lesion"]).append(a)
            (m["clean_rule"] if is_clean else m["lesion_rule"]).append(b)
            m["per_study"].append({"study": label, "clean": is_clean, "slices": len(st.hu), "thrombi": len(st.thrombi),
                                   "found": b["thrombi_found"], "fp_findings": b["fp_findings"],
                                   "fp_findings_no_rule": a["fp_findings"]})
        print(f"  [{n}] {label}: {len(st.hu)} slices, {len(st.thrombi)} thrombi; "
              + "; ".join(f"{m['name']} found {m['per_study'][-1]['found']}, {m['per_study'][-1]['fp_findings']} false"
                          for m in models) + f" ({time.perf_counter() - t0:.0f} s)", flush=True)
    results = {}
    for m in models:
        spec = m["spec"]
        ev = metrics.evaluate_detections(m["preds"], m["gts"], m["ids"])
        evr = metrics.evaluate_detections(m["ruled"], m["gts"], m["ids"])
        r = {"model": {"file": m["path"].name, "k": int(spec.preprocess["k"]),
                       "sha256": spec.extra.get("artifact", {}).get("sha256"), "threshold": m["thr"],
                       "trained_on_real_volume": spec.extra.get("training", {}).get("real_volume")},
             "per_slice": metrics.summary(ev, m["thr"], args.fppi_target),
             "per_slice_rule": metrics.summary(evr, m["thr"], args.fppi_target),
             "lesion": sum_lesion(m["lesion"]), "lesion_rule": sum_lesion(m["lesion_rule"]),
             "per_study": m["per_study"]}
        for k in ("per_slice", "per_slice_rule"):
            r[k].pop("froc")
        if m["clean"]:
            r["clean"] = sum_lesion(m["clean"])
            r["clean_rule"] = sum_lesion(m["clean_rule"])
        if m["lumen"] is not None:
            r["lumen_params"] = m["lumen"].to_json()
        names = [x["name"] for x in models]
        results[m["name"] if names.count(m["name"]) == 1 else m["path"].stem + m["name"][len(spec.name):]] = r
    for m in models:
        if m["name"] == m["spec"].name:
            m["backend"].close()
    return results


def runtime_pass(m: dict, st, floor: float) -> list:
    """Per slice (learned detections >= floor, raw lumen candidates (box, score, heat)) from the runtime detector."""
    from edge.ct.detector import ModelDetector
    from training.ct.lumen_calibrate import run_study

    lp = m.get("lumen") or LumenParams()
    det = ModelDetector(m["backend"], m["spec"], score_threshold=floor, plausibility=PlausibilityParams(enabled=False),
                        lumen=replace(lp, enabled=True, score_threshold=2.0))  # collect: nothing fused here
    return run_study(det, st)


def runtime_preds(per: list, lp: LumenParams | None, threshold: float) -> list:
    """(boxes, scores) per slice: the learned detections, or (``lp`` given) their union with the lumen stage."""
    out = []
    for i, (dets, cands) in enumerate(per):
        if lp is not None:
            dets = fuse(dets, [(b, s) for b, s, _ in cands], [h for *_, h in cands], lp, threshold, i)
        out.append((np.array([d.box for d in dets], np.float64).reshape(-1, 4), np.array([d.score for d in dets], np.float64)))
    return out


def record(results: dict, args, command: str) -> None:
    from edge.spec import save_spec
    from training.ct.card import write_model_card

    key = f"{args.set}{'-' + args.volume if args.set == 'real' else ''} seeds {args.seed}+ ({args.studies})"
    for path in find_models(args.models):
        spec = load_spec(path)
        r = results.get(spec.name, results.get(path.stem))
        if r is None:
            continue
        lr = r["lesion_rule"]
        spec.extra.setdefault("metrics", {}).setdefault("generalisation", {})[key] = {
            "thrombus_sensitivity": lr["thrombus_sensitivity"], "fp_findings_per_study": lr["fp_findings_per_study"],
            "fp_findings_per_clean_study": r.get("clean_rule", {}).get("fp_findings_per_study"),
            "slice_sens_at_fppi_0.25": r["per_slice_rule"].get(f"at_fppi_{args.fppi_target:g}", {}).get("sensitivity"),
            "command": command}
        save_spec(spec, path)
        write_model_card(spec, path.with_suffix(".md"))


def _f(v, nd: int = 3) -> str:
    return "n/a" if v is None else f"{v:.{nd}f}"


def markdown_table(results: dict, args) -> str:
    f = f"{args.fppi_target:g}"
    what = {"phantom": "first renderer (in-style)", "second": "second renderer (independent)",
            "real": f"real {args.volume} anatomy with inserted defects (held-out volume)"}[args.set]
    head = ("| model | k | thrombus sens. (findings) | false findings / study"
            + (" | false findings / clean study" if args.set == "real" else "")
            + f" | slice sens. @ FPPI<={f} | slice sens. / FPPI at threshold | AP (IoU>=0.1) |")
    cols = head.count("|") - 1
    rows = [f"{what}: {args.studies} seeds from {args.seed}; with the runtime plausibility rule (without it in brackets)", "",
            head, "|" + "---|" * cols]
    for name, r in results.items():
        a, b = r["lesion_rule"], r["lesion"]
        s, s0 = r["per_slice_rule"], r["per_slice"]
        row = (f"| {name} | {r['model']['k']} | {_f(a['thrombus_sensitivity'])} ({_f(b['thrombus_sensitivity'])}) | "
               f"{_f(a['fp_findings_per_study'], 2)} ({_f(b['fp_findings_per_study'], 2)})")
        if "clean_rule" in r:
            row += f" | {_f(r['clean_rule']['fp_findings_per_study'], 2)} ({_f(r['clean']['fp_findings_per_study'], 2)})"
        at, at0 = s[f"at_fppi_{f}"], s0[f"at_fppi_{f}"]
        row += (f" | {_f(at['sensitivity'])} ({_f(at0['sensitivity'])}) | {_f(s['at_threshold']['sensitivity'])} / "
                f"{_f(s['at_threshold']['fppi'])} | {_f(s['ap_iou0.1'])} |")
        rows.append(row)
    return "\n".join(rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Evaluate CT detectors on independent / real-anatomy sets (not for diagnostic use).")
    ap.add_argument("--models", required=True, type=Path)
    ap.add_argument("--set", required=True, choices=SETS)
    ap.add_argument("--volume", choices=["aorta", "pulmonary"], help="--set real: the held-out source volume")
    ap.add_argument("--studies", type=int, default=24)
    ap.add_argument("--seed", type=int, default=900000, help="first study seed")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--n-slices", type=int, default=None, help="fixed slice count (small test runs)")
    ap.add_argument("--distractors", type=float, default=0.0, help="--set phantom: look-alike probability")
    ap.add_argument("--out", type=Path, default=Path("generalisation.json"))
    ap.add_argument("--md", type=Path, default=None)
    ap.add_argument("--floor", type=float, default=0.05)
    ap.add_argument("--fppi-target", type=float, default=0.25)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--lumen", choices=["spec", "on", "off"], default="spec",
                    help="vessel-lumen stage (edge.ct.lumen): as the spec says, on (also scored alone), or off")
    ap.add_argument("--record", action="store_true",
                    help="store the headline figures in each model's spec (metrics.generalisation) and card")
    args = ap.parse_args(argv)
    if args.set == "real" and not args.volume:
        ap.error("--set real needs --volume aorta|pulmonary")
    command = "python -m training.ct.evaluate_generalisation " + " ".join(sys.argv[1:] if argv is None else argv)
    t0 = time.perf_counter()
    results = evaluate(args)
    table = markdown_table(results, args)
    print("\n" + table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"schema": "dvt-edge/ct-generalisation@1", "note": "not for diagnostic use",
                                    "command": command, "set": args.set, "volume": args.volume,
                                    "seeds": [args.seed, args.seed + args.studies - 1], "size": args.size,
                                    "wall_s": round(time.perf_counter() - t0, 1), "python": platform.python_version(),
                                    "table": table, "models": results}, indent=1))
    if args.record:
        record(results, args, command)
    md = args.md or args.out.with_suffix(".md")
    md.write_text(f"<!-- {command} -->\n\n{table}\n")
    print(f"\nwrote {args.out} and {md}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
