"""How the ultrasound model does on what it was NOT trained on: real images from two scanners, and clips
from a second, independently written renderer. Writes one JSON and one Markdown table.

    python -m training.evaluate_generalisation --model edge/assets/resunet-lite.onnx --out training/results/us-generalisation

Sets (each named with its split; validation figures are shown apart: epochs were chosen on them):
    usgra-seg test      every fifth image by name (i % 5 == 4): vessel (artery ∪ vein) Dice, pooled and
                        mean per image
    carotid-momot test  held-out ACQUISITIONS (p % 4 == 1 of the sorted acquisition names): artery Dice and
                        the share of images whose artery is called vein
    second renderer     ``training.second_renderer.us_clips`` (never trained on): verdicts on 20 normal +
                        20 DVT clips, DVT clips called compressible, compressibility error
    first renderer      fresh clips of the training renderer (seeds never used in training): in-style figure

Everything runs through the bedside runtime (ONNX Runtime, ``edge.us.pipeline``), as a user would.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

from edge.backends.select import open_backend
from edge.spec import load_spec
from edge.us.preprocess import Preprocessor
from training.seg_eval import artery_called_vein, dice_scores

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
TARGETS = {"carotid_artery_dice": 0.80, "carotid_called_vein": 0.05, "usgra_vessel_dice": 0.80,
           "second_renderer_accuracy": 0.90, "first_renderer_accuracy": 0.95}


def segment(backend, spec, images: list[np.ndarray]) -> np.ndarray:
    """Whole-image model-grid labels for already-resized (H, W) uint8 images, through the runtime's
    preprocessing (the images hold no screen text, so the region is the whole image)."""
    h, w = spec.input_hw
    pre = Preprocessor(spec, region=(0, 0, w, h))
    out = []
    for img in images:
        x, _ = pre(img)
        logits = backend.infer({spec.input.name: x})[spec.outputs[0].name]
        out.append(np.asarray(logits)[0].argmax(0).astype(np.uint8))
    return np.stack(out) if out else np.zeros((0, h, w), np.uint8)


def score_usgra(backend, spec, root: Path, split: str) -> dict:
    from training.data import usgra

    samples = usgra.load(root, tuple(spec.input_hw), split)
    pred = segment(backend, spec, [s.image for s in samples])
    truth = np.stack([s.vessel for s in samples])
    return {"set": f"usgra-seg {split}", "images": len(samples),
            **dice_scores(np.isin(pred, (1, 2)).astype(np.uint8), truth, {"vessel": (1,)})}


def score_carotid(backend, spec, root: Path, split: str) -> dict:
    from training.data import carotid

    samples = carotid.load(root, tuple(spec.input_hw), split)
    pred = segment(backend, spec, [s.image for s in samples])
    truth = np.stack([s.artery for s in samples])
    per_acq = {}
    for acq in sorted({s.acquisition for s in samples}):
        idx = [i for i, s in enumerate(samples) if s.acquisition == acq]
        per_acq[acq] = {"images": len(idx),
                        "artery_dice": dice_scores((pred[idx] == 1).astype(np.uint8), truth[idx], {"a": (1,)})["a"]["pooled"],
                        "called_vein": round(artery_called_vein(pred[idx], truth[idx]), 4)}
    return {"set": f"carotid-momot {split}", "images": len(samples), "acquisitions": per_acq,
            **dice_scores((pred == 1).astype(np.uint8), truth, {"artery": (1,)}),
            "artery_called_vein": round(artery_called_vein(pred, truth), 4)}


def score_clips(backend, spec, clips, name: str, progress: bool = True) -> dict:
    from training.evaluate_verdicts import run_clip, summarise

    rows = []
    for clip in clips:
        r = run_clip(clip, backend, spec)
        for k in ("clot", "clot_echo", "compression_style", "site", "renderer"):
            if k in clip.label:
                r[k] = clip.label[k]
        rows.append(r)
        if progress:
            mark = "ok " if r["correct"] else "BAD"
            print(f"  [{name}] {mark} seed {r['seed']} dvt={r['dvt']!s:5} expected {r['expected']:16} got "
                  f"{r['verdict']:16} ({r['reason']})", flush=True)
    return {"set": name, **summarise(rows), "rows": rows}


def evaluate(args: argparse.Namespace) -> dict:
    spec = load_spec(args.model)
    backend, choice = open_backend(args.model, "onnxruntime", threads=args.threads)
    t0 = time.time()
    import hashlib

    res: dict = {"schema": "dvt-edge/us-generalisation@1", "model": str(args.model),
                 "model_sha256": hashlib.sha256(args.model.read_bytes()).hexdigest(),
                 "note": "research software, not for diagnostic use", "command": " ".join(sys.argv),
                 "python": platform.python_version(), "targets": TARGETS, "sets": {}}
    try:
        usgra_root, carotid_root = args.data / "usgra-seg", args.data / "carotid-momot"
        if (usgra_root / "images").is_dir():
            for split in ("test", "val"):
                res["sets"][f"usgra_{split}"] = score_usgra(backend, spec, usgra_root, split)
                print(f"[real] {_line(res['sets'][f'usgra_{split}'])}", flush=True)
        else:
            print(f"[real] usgra-seg not found under {args.data}: skipped", flush=True)
        if (carotid_root / "images").is_dir():
            for split in ("test", "val"):
                res["sets"][f"carotid_{split}"] = score_carotid(backend, spec, carotid_root, split)
                print(f"[real] {_line(res['sets'][f'carotid_{split}'])}", flush=True)
        else:
            print(f"[real] carotid-momot not found under {args.data}: skipped", flush=True)
        if args.clips > 0:
            from training.phantoms.us_clip import evaluation_set as first_set
            from training.second_renderer.us_clips import evaluation_set as second_set

            n = args.clips // 2
            res["sets"]["second_renderer"] = score_clips(
                backend, spec, second_set(n, n, base_seed=args.second_seed), "second renderer")
            print(f"[clips] {_line(res['sets']['second_renderer'])}", flush=True)
            res["sets"]["first_renderer"] = score_clips(
                backend, spec, first_set(n, n, base_seed=args.first_seed), "first renderer (in-style)")
            print(f"[clips] {_line(res['sets']['first_renderer'])}", flush=True)
    finally:
        backend.close()
    res["backend"] = choice.name if hasattr(choice, "name") else str(choice)
    res["minutes"] = round((time.time() - t0) / 60, 1)
    return res


def _line(s: dict) -> str:
    if "accuracy" in s:
        return (f"{s['set']}: {s['correct']}/{s['clips']} verdicts correct, {s['dvt_called_compressible']} DVT "
                f"called compressible")
    if "artery" in s:
        return (f"{s['set']}: artery Dice {s['artery']['pooled']:.3f} pooled / {s['artery']['mean_per_image']:.3f} "
                f"per image, called vein in {s['artery_called_vein']:.1%} of {s['images']} images")
    return (f"{s['set']}: vessel Dice {s['vessel']['pooled']:.3f} pooled / {s['vessel']['mean_per_image']:.3f} "
            f"per image ({s['vessel']['images']} images with vessels)")


def markdown(res: dict) -> str:
    S = res["sets"]
    lines = [f"# Ultrasound generalisation: `{Path(res['model']).name}`", "",
             "Research software, not for diagnostic use. Produced by `" + res["command"] + "`.", "",
             "| set (never trained on) | figure | target |", "|---|---|---|"]
    if "carotid_test" in S:
        c = S["carotid_test"]
        lines.append(f"| carotid-momot, held-out acquisitions ({len(c['acquisitions'])} acq., {c['images']} images) | "
                     f"artery Dice {c['artery']['pooled']:.3f} pooled, {c['artery']['mean_per_image']:.3f} per image; "
                     f"artery called vein in {c['artery_called_vein']:.1%} | >= 0.80; <= 5% |")
    if "usgra_test" in S:
        u = S["usgra_test"]
        lines.append(f"| usgra-seg, held-out fifth ({u['vessel']['images']} images with vessels) | vessel Dice "
                     f"{u['vessel']['pooled']:.3f} pooled, {u['vessel']['mean_per_image']:.3f} per image | >= 0.80 |")
    for key, target in (("second_renderer", ">= 90%, 0 DVT called compressible"),
                        ("first_renderer", ">= 95%, 0 (in-style)")):
        if key in S:
            s = S[key]
            lines.append(f"| {s['set']}, {s['clips']} clips | {s['correct']}/{s['clips']} verdicts correct "
                         f"({s['accuracy']:.0%}), {s['dvt_called_compressible']} DVT called compressible; "
                         f"compressibility error {s['mean_abs_compressibility_error']:.3f} | {target} |")
    lines += ["", "Validation splits (epochs were chosen on these; not a test):", ""]
    for key in ("carotid_val", "usgra_val"):
        if key in S:
            lines.append(f"- {_line(S[key])}")
    for key in ("second_renderer", "first_renderer"):
        if key in S:
            lines += ["", f"Confusion, {S[key]['set']}: " + ", ".join(f"{k}: {v}" for k, v in S[key]["confusion"].items())]
    return "\n".join(lines) + "\n"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", type=Path, default=Path("edge/assets/resunet-lite.onnx"))
    p.add_argument("--data", type=Path, default=SHARED_DATA, help="folder holding usgra-seg/ and carotid-momot/")
    p.add_argument("--clips", type=int, default=40, help="clips per renderer (half normal, half DVT); 0 skips clips")
    p.add_argument("--second-seed", type=int, default=700_000)
    p.add_argument("--first-seed", type=int, default=930_000, help="fresh first-renderer seeds (training uses < 900000)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, required=True, help="output stem: writes OUT.json and OUT.md")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.evaluate_generalisation", description=__doc__.split("\n")[0])
    add_arguments(p)
    args = p.parse_args(argv)
    if not args.model.is_file():
        print(f"error: {args.model}: model not found", file=sys.stderr)
        return 2
    res = evaluate(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(res, indent=2, default=_json) + "\n")
    args.out.with_suffix(".md").write_text(markdown(res))
    print(f"[done] {args.out.with_suffix('.json')} and {args.out.with_suffix('.md')} in {res['minutes']} min")
    return 0


def _json(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.bool_):
        return bool(o)
    raise TypeError(f"not JSON serialisable: {type(o)}")


if __name__ == "__main__":
    sys.exit(main())
