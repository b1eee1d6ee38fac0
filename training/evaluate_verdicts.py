"""Verdicts on fresh phantom clips that no model saw, through the bedside pipeline (ONNX model, edge runtime).

    python -m training.evaluate_verdicts --model edge/assets/resunet-lite.onnx --normal 20 --dvt 20 --out results.json

Each clip's expected verdict comes from how it was made: a normal vein under adequate pressure ->
compressible; a DVT vein under adequate pressure -> non_compressible; too little pressure ->
indeterminate (an honest tool must not judge it). Seeds >= 900_000: training uses seeds < 900_000.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

import numpy as np

from edge.backends.select import open_backend
from edge.metrics import dice
from edge.sources.base import Frame
from edge.spec import load_spec
from edge.us.pipeline import UltrasoundPipeline, UsConfig
from edge.us.preprocess import crop_resize_mask
from edge.us.types import VerdictKind
from training.phantoms.us_clip import PhantomClip, evaluation_set


def run_clip(clip: PhantomClip, backend, spec, config: UsConfig | None = None, observer=None) -> dict:
    """Process one clip frame by frame; returns its verdict, measurements and per-frame Dice. ``observer``:
    an :class:`edge.us.pipeline.VerdictObserver` that sees every verdict decided on the way."""
    pipe = UltrasoundPipeline(backend, spec, config, observer=observer)
    d_art, d_vein, areas = [], [], []
    for i, (img, mask) in enumerate(zip(clip.frames, clip.masks)):
        res = pipe.process(Frame(img, i, t_capture=time.monotonic(), t_media=i / clip.fps))
        truth = crop_resize_mask(mask, res.region, res.labels.shape)
        d_art.append(dice(res.labels == 1, truth == 1))
        d_vein.append(dice(res.labels == 2, truth == 2))
        areas.append(res.track.vein_area_px)
    v = pipe.current_verdict(final=True)
    lab = clip.label
    return {
        "seed": lab["seed"], "dvt": lab["dvt"], "pressure": lab["pressure"], "fps": lab["fps"],
        "expected": lab["expected_verdict"], "verdict": v.verdict, "reason": v.reason,
        "correct": v.verdict == lab["expected_verdict"],
        "compressibility": v.compressibility, "true_compressibility": lab["true_compressibility"],
        "artery_flattening": v.artery_flattening, "true_artery_flattening": lab["true_artery_flattening"],
        "frame_dice_artery": float(np.mean(d_art)), "frame_dice_vein": float(np.mean(d_vein)),
        "frames": len(areas),
    }


def summarise(rows: list[dict]) -> dict:
    n = len(rows)
    correct = sum(r["correct"] for r in rows)
    confusion = Counter(f"{r['expected']} -> {r['verdict']}" for r in rows)
    return {
        "clips": n, "correct": correct, "accuracy": correct / n if n else None,
        "dvt_called_compressible": sum(r["dvt"] and r["verdict"] == VerdictKind.COMPRESSIBLE for r in rows),
        "confusion": dict(sorted(confusion.items())),
        "mean_abs_compressibility_error": float(np.mean([
            abs(r["compressibility"] - r["true_compressibility"]) for r in rows if r["compressibility"] is not None])),
        "mean_frame_dice_artery": float(np.mean([r["frame_dice_artery"] for r in rows])),
        "mean_frame_dice_vein": float(np.mean([r["frame_dice_vein"] for r in rows])),
    }


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", type=Path, default=Path("edge/assets/resunet-lite.onnx"))
    p.add_argument("--normal", type=int, default=20)
    p.add_argument("--dvt", type=int, default=20)
    p.add_argument("--base-seed", type=int, default=900_000)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=None, help="write the per-clip rows and summary as JSON")


def run(args: argparse.Namespace) -> int:
    spec = load_spec(args.model)
    backend, choice = open_backend(args.model, "onnxruntime", threads=args.threads)
    rows = []
    print(f"{'seed':>7} {'dvt':>5} {'pressure':>9} {'fps':>4} {'expected':>17} {'verdict':>17} {'comp':>5} {'true':>5} {'flat':>5}")
    for clip in evaluation_set(args.normal, args.dvt, base_seed=args.base_seed):
        r = run_clip(clip, backend, spec)
        rows.append(r)
        comp = "-" if r["compressibility"] is None else f"{r['compressibility']:.2f}"
        flat = "-" if r["artery_flattening"] is None else f"{r['artery_flattening']:.2f}"
        mark = "" if r["correct"] else "  <-- wrong"
        print(f"{r['seed']:>7} {str(r['dvt']):>5} {r['pressure']:>9} {r['fps']:>4.0f} {r['expected']:>17} "
              f"{r['verdict']:>17} {comp:>5} {r['true_compressibility']:>5.2f} {flat:>5}{mark}", flush=True)
    s = summarise(rows)
    print(f"\n{s['correct']}/{s['clips']} correct ({s['accuracy']:.1%}); DVT clips called compressible: "
          f"{s['dvt_called_compressible']}; confusion: {s['confusion']}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"summary": s, "model": str(args.model), "backend": choice.name,
                                        "rows": rows}, indent=2) + "\n")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.evaluate_verdicts", description=__doc__.split("\n")[0])
    add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
