"""Re-choose a shipped detector's operating point on more validation phantoms (no retraining).

    python -m training.ct.calibrate --models edge/ct/assets --studies 24 --op-fppi 0.2

The score threshold in the spec (``decode.score_threshold``) is the most sensitive one with FPPI <= op_fppi on
the validation studies ``10000*seed + 5000 + i`` (i < studies; the model's training seed from its spec) - the same
split ``training.ct.train`` validates on, disjoint from training and evaluation seeds. Updates the spec's decode
threshold, validation seed range and validation metrics, and rewrites the model card. The ONNX file is untouched.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edge.backends.onnxruntime import OnnxRuntimeBackend
from edge.spec import load_spec, save_spec
from training.ct import metrics
from training.ct.card import write_model_card
from training.ct.dataset import build_studies
from training.ct.model_paths import find_models
from training.ct.train import evaluate_prepared, study_seeds


def calibrate(model: Path, studies: int, op_fppi: float, threads: int, workers: int, command: str) -> dict:
    spec = load_spec(model)
    tr = spec.extra["training"]
    seeds = study_seeds(int(tr["seed"]), studies, "val")
    print(f"{spec.name}: rendering {studies} validation studies (seeds {seeds[0]}..{seeds[-1]}) ...", flush=True)
    val = build_studies(seeds, spec.preprocess, int(tr.get("phantom_size", 512)), workers, "val",
                        float(tr.get("distractors", 0.0)))  # the training distribution (distractor probability)
    backend = OnnxRuntimeBackend(model, threads=threads)
    ev = evaluate_prepared(lambda x: backend.infer({spec.input.name: x}), val, spec)
    op = metrics.sensitivity_at_fppi(ev, op_fppi)
    threshold = round(max(float(op["threshold"]), 0.1), 4)
    summary = metrics.summary(ev, threshold)
    summary.pop("froc")
    spec.extra["decode"]["score_threshold"] = threshold
    tr["val_study_seeds"] = [seeds[0], seeds[-1]]
    spec.extra["metrics"]["validation"] = summary
    spec.extra["metrics"]["operating_point"] = (f"most sensitive threshold with FPPI <= {op_fppi} on "
                                                f"{studies} validation studies ({command})")
    save_spec(spec, model)
    write_model_card(spec, model.with_suffix(".md"))
    at = summary["at_threshold"]
    print(f"  threshold {threshold}: sensitivity {at['sensitivity']:.3f}, FPPI {at['fppi']:.3f}", flush=True)
    return summary


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Re-choose CT detector operating points on validation phantoms.")
    ap.add_argument("--models", required=True, type=Path)
    ap.add_argument("--studies", type=int, default=24)
    ap.add_argument("--op-fppi", type=float, default=0.2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)
    command = "python -m training.ct.calibrate " + " ".join(sys.argv[1:] if argv is None else argv)
    for model in find_models(args.models):
        calibrate(model, args.studies, args.op_fppi, args.threads, args.workers, command)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
