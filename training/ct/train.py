"""Train the 2.5D CT thrombus detector on phantom studies (research software, not for diagnostic use).

    python -m export.ct_model train --out DIR --k 3 --seed 1 --studies 48 --epochs 8   # train, then export
    python -m training.ct.train --out DIR --k 3 --seed 1 --studies 48 --epochs 8        # train only

Reproducible from the seed (torch + numpy generators, fixed thread count). Study seeds: training
``10000*seed + i`` (i < studies), validation ``10000*seed + 5000 + i``; evaluation must use other seeds
(``training.ct.evaluate`` checks). :func:`train` returns the model and its summary (the spec's decode block,
provenance and validation metrics). Training does not export (``training`` may not import ``export``): the ONNX
export, its sidecar spec and the model card are written by :mod:`export.ct_model` (``ctdet-k{k}.onnx/.json/.md``),
either in the same process (``python -m export.ct_model train ...``, the same options as here) or later from what
this module's CLI saves: ``DIR/ctdet-k{k}.pt`` (weights) and ``DIR/ctdet-k{k}.train_summary.json``
(``dvt-edge export ct-onnx --checkpoint DIR/ctdet-k{k}.pt``).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from edge.spec import ModelSpec, TensorSpec
from training.ct import metrics
from training.ct.dataset import CropSampler, MixSampler, build_real_studies, build_scenes, build_studies, predict_study
from training.ct.detector import STRIDE, CTDet, detector_loss, make_targets

OUTPUTS = ["heatmap", "box"]


def study_seeds(seed: int, n: int, split: str) -> list[int]:
    base = 10000 * seed + (5000 if split == "val" else 0)
    return [base + i for i in range(n)]


def scene_seeds(seed: int, n: int, split: str) -> list[int]:
    """Vessel-scene seeds: their own range (``10000*seed + 3000 + i``, validation ``+ 8000``), apart from the phantoms'."""
    base = 10000 * seed + (8000 if split == "val" else 3000)
    return [base + i for i in range(n)]


def preprocess_block(args) -> dict:
    return {
        "window_level_hu": 140.0, "window_width_hu": 400.0, "target_spacing_mm": args.target_mm,
        "size": args.input_size, "k": args.k, "slice_padding": "replicate",
        "slice_order": "ascending position; channel k//2 is the slice being scored",
        "resample": "edge.ct.preprocess.resample (bilinear; area when shrinking)",
        "fit": "edge.ct.preprocess.fit_to (centre crop / zero pad)",
        "function": "edge.ct.decode.prepare_input",
    }


def decode_block(threshold: float) -> dict:
    return {"type": "centernet", "stride": STRIDE, "heatmap_output": "heatmap", "box_output": "box",
            "box_encoding": "log(ltrb / stride) from the cell centre", "score_threshold": round(threshold, 4),
            "nms_iou": 0.3, "top_k": 20, "peak_kernel": 3, "function": "edge.ct.decode.decode_detections"}


def draft_spec(args, threshold: float) -> ModelSpec:
    """The spec used for validation before export (``export.ct_model`` writes the final one)."""
    s, hs = args.input_size, args.input_size // STRIDE
    return ModelSpec(f"ctdet-k{args.k}", "ct-thrombus-detection", TensorSpec("image", (1, args.k, s, s), "float32"),
                     (TensorSpec("heatmap", (1, 1, hs, hs), "float32"), TensorSpec("box", (1, 4, hs, hs), "float32")),
                     preprocess_block(args), ("thrombus",), extra={"decode": decode_block(threshold)})


def torch_infer(model: CTDet):
    def infer(x: np.ndarray) -> dict:
        with torch.no_grad():
            h, b = model(torch.from_numpy(x))
        return {"heatmap": h.numpy(), "box": b.numpy()}
    return infer


def evaluate_prepared(infer, studies, spec: ModelSpec, floor: float = 0.05) -> metrics.DetectionEval:
    """Detections (score >= floor) on every slice of the studies, matched to ground truth."""
    preds, gts, ids, offset = [], [], [], 0
    for st in studies:
        preds += predict_study(infer, st, spec, floor)
        gts += st.gt_orig
        ids += [[offset + j for j in g] for g in st.gt_ids]
        offset += 1000
    return metrics.evaluate_detections(preds, gts, ids)


def phantom_share(args) -> float:
    """The share of training crops left to the first-renderer phantoms after the real studies and the scenes."""
    return 1 - (args.real_weight if args.real else 0) - (args.scene_weight if args.scenes else 0)


def train(args) -> tuple[CTDet, dict]:
    """Train and validate; returns the model (eval mode) and its summary (see :func:`summary_of`)."""
    t_start = time.perf_counter()
    if phantom_share(args) <= 0:
        raise SystemExit(f"--real-weight {args.real_weight} + --scene-weight {args.scene_weight} leave no share for the "
                         "phantoms: keep their sum below 1")
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    spec0 = draft_spec(args, 0.5)
    pre = spec0.preprocess
    print(f"ctdet-k{args.k}: building {args.studies} training + {args.val_studies} validation phantom studies", flush=True)
    train_set = build_studies(study_seeds(args.seed, args.studies, "train"), pre, args.phantom_size, args.workers, "train",
                              args.distractors, args.wide)
    val_set = build_studies(study_seeds(args.seed, args.val_studies, "val"), pre, args.phantom_size, args.workers, "val",
                            args.distractors, args.wide)
    real_train: list = []
    if args.real:  # real anatomy with inserted defects, ONE source volume (the other one is held out)
        real_train = build_real_studies(args.real, study_seeds(args.seed, args.real_studies, "train"), pre,
                                        args.phantom_size, args.workers, "train")
        val_set += build_real_studies(args.real, study_seeds(args.seed, args.real_val_studies, "val"), pre,
                                      args.phantom_size, args.workers, "val", clean_every=1)
    scene_train: list = []
    if args.scenes:  # randomised vessel scenes: the sign without a fixed anatomy (training.ct.vessel_scenes)
        scene_train = build_scenes(scene_seeds(args.seed, args.scenes, "train"), pre, args.phantom_size, args.workers,
                                   "train scenes", wide=args.scene_wide)
        val_set += build_scenes(scene_seeds(args.seed, args.scene_val_studies, "val"), pre, args.phantom_size, args.workers,
                                "val scenes")
    t_data = time.perf_counter() - t_start
    parts = [(CropSampler(train_set, args.k, args.crop, rng, args.geo_aug, args.intensity_aug), phantom_share(args))]
    if real_train:
        parts.append((CropSampler(real_train, args.k, args.crop, rng, args.geo_aug, args.intensity_aug), args.real_weight))
    if scene_train:
        parts.append((CropSampler(scene_train, args.k, args.crop, rng, args.geo_aug, args.intensity_aug), args.scene_weight))
    sampler = parts[0][0] if len(parts) == 1 else MixSampler([p for p, _ in parts], [w for _, w in parts], rng)
    print(f"  {sum(len(s.slices) for s in train_set + real_train + scene_train)} training slices, "
          f"{len(sampler.pos)} with thrombus "
          f"({t_data:.0f} s)", flush=True)

    Path(args.out).mkdir(parents=True, exist_ok=True)
    model = CTDet(args.k, args.width, args.head)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    total = args.epochs * args.steps_per_epoch
    warm = min(50, total // 10 + 1)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: (i + 1) / warm if i < warm else 0.5 * (1 + math.cos(math.pi * (i - warm) / max(total - warm, 1))))
    hs = args.crop // STRIDE
    history = []
    for epoch in range(args.epochs):
        if args.max_minutes and time.perf_counter() - t_start > 60 * args.max_minutes:
            print(f"  stopping after {epoch} epochs: --max-minutes {args.max_minutes} reached", flush=True)
            break
        model.train()
        t0, acc = time.perf_counter(), {"loss": 0.0, "heat": 0.0, "box": 0.0}
        for _ in range(args.steps_per_epoch):
            x, boxes = sampler.batch(args.batch)
            heat_t, box_t, wgt_t = (torch.from_numpy(a) for a in make_targets(boxes, (hs, hs)))
            loss, parts = detector_loss(model(torch.from_numpy(x)), heat_t, box_t, wgt_t)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
            opt.step()
            sched.step()
            acc["loss"] += float(loss.detach())
            acc["heat"] += parts["heat"]
            acc["box"] += parts["box"]
        avg = {k: round(v / args.steps_per_epoch, 4) for k, v in acc.items()}
        history.append(avg)
        if args.checkpoint:
            torch.save(model.state_dict(), Path(args.out) / f"ctdet-k{args.k}.pt")
        print(f"  epoch {epoch + 1}/{args.epochs}: loss {avg['loss']:.4f} (heat {avg['heat']:.4f}, box {avg['box']:.4f}) "
              f"lr {sched.get_last_lr()[0]:.2e} {time.perf_counter() - t0:.0f} s", flush=True)
    t_train = time.perf_counter() - t_start - t_data

    model.eval()
    print("  validating on held-out phantom studies ...", flush=True)
    ev = evaluate_prepared(torch_infer(model), val_set, spec0)
    op = metrics.sensitivity_at_fppi(ev, args.op_fppi)  # operating point: most sensitive with FPPI <= op_fppi
    threshold = max(float(op["threshold"]) if math.isfinite(op["threshold"]) else 0.5, 0.1)
    val = metrics.summary(ev, threshold)
    val.pop("froc")
    at = val["at_threshold"]
    print(f"  validation @ {threshold:.3f}: sensitivity {at['sensitivity']:.3f}, FPPI {at['fppi']:.3f}, "
          f"AP {val['ap_iou0.1']:.3f}, slice AUROC {val['slice_auroc']:.3f}", flush=True)

    name = f"ctdet-k{args.k}"
    extra = {
        "decode": decode_block(threshold),
        "training": {
            "command": args.command,
            "seed": args.seed, "data": "synthetic CT venography phantoms (training.ct.phantom), no patient data"
                    + (f"; {args.distractors:.0%} of studies with non-venous distractors (ribs, bowel, organs, nodes, "
                       "vessels, calcifications, streaks)" if args.distractors else "")
                    + (f"; {args.wide:.0%} with widened randomisation (contrast 120-450 HU, calibre, region crops)"
                       if args.wide else "")
                    + (f"; real contrast CT ({args.real} crop, TotalSegmentator test data, Apache-2.0) with inserted "
                       f"filling defects (training.ct.real_lesions), {args.real_weight:.0%} of training crops; the "
                       f"other source volume is held out" if args.real else "")
                    + ("; randomised vessel scenes (training.ct.vessel_scenes: tubes of 5-18 mm, 130-480 HU, random "
                       "bodies/limbs/crops, bones, branches, streaks, partial volume"
                       + ("; widened: trunks of 16-30 mm, tubes near the slice plane, contrast to 600 HU"
                          if args.scene_wide else "")
                       + f"), {args.scene_weight:.0%} of training crops" if args.scenes else ""),
            "scene_wide": bool(args.scene_wide),
            "scenes": args.scenes, "scene_weight": args.scene_weight if args.scenes else None,
            "real_volume": args.real,
            "real_train_seeds": (study_seeds(args.seed, args.real_studies, "train")[::max(args.real_studies - 1, 1)]
                                 if args.real else None),
            "real_val_seeds": (study_seeds(args.seed, args.real_val_studies, "val")[::max(args.real_val_studies - 1, 1)]
                               if args.real else None),
            "wide": args.wide, "geo_aug": args.geo_aug, "intensity_aug": args.intensity_aug,
            "train_study_seeds": [study_seeds(args.seed, args.studies, "train")[0], study_seeds(args.seed, args.studies, "train")[-1]],
            "val_study_seeds": [study_seeds(args.seed, args.val_studies, "val")[0], study_seeds(args.seed, args.val_studies, "val")[-1]],
            "phantom_size": args.phantom_size, "distractors": args.distractors, "epochs": args.epochs,
            "steps_per_epoch": args.steps_per_epoch,
            "batch": args.batch, "crop": args.crop, "lr": args.lr, "optimizer": "AdamW, warmup + cosine",
            "loss": "penalty-reduced focal loss (heatmap) + smooth-L1 on log box distances",
            "architecture": {"family": "anchor-free CenterNet-style, one stride-4 level, FPN-style merge",
                             "width": args.width, "head": args.head,
                             "params": int(sum(p.numel() for p in model.parameters()))},
            "history": history, "threads": args.threads, "data_s": round(t_data, 1), "train_s": round(t_train, 1),
            "torch": torch.__version__, "python": platform.python_version(),
        },
        "metrics": {"validation": val, "operating_point": f"most sensitive threshold with FPPI <= {args.op_fppi} on validation"},
        "intended_use": "research software, not for diagnostic use",
    }
    summary = {"name": name, "k": args.k, "input_size": args.input_size, "outputs": OUTPUTS,
               "preprocess": preprocess_block(args), "extra": extra}
    return model, summary


def save_trained(model: CTDet, summary: dict, out: str | Path) -> tuple[Path, Path]:
    """``DIR/<name>.pt`` (state dict) and ``DIR/<name>.train_summary.json``: what ``export.ct_model`` exports."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    pt, js = out / f"{summary['name']}.pt", out / f"{summary['name']}.train_summary.json"
    torch.save(model.state_dict(), pt)
    js.write_text(json.dumps(summary, indent=2) + "\n")
    return pt, js


def parse_args(argv=None, prog: str = "python -m training.ct.train", call: str = "training.ct.train.train"):
    """The training options. ``args.command`` (recorded in the spec): ``prog`` + the command line when ``argv`` is
    None, else ``call(argv)``."""
    ap = argparse.ArgumentParser(prog=prog, description="Train the CT thrombus detector on phantoms (not for "
                                                        "diagnostic use).")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--k", type=int, default=3, choices=[1, 3, 5, 7, 9, 11])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--studies", type=int, default=48)
    ap.add_argument("--val-studies", type=int, default=6)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--steps-per-epoch", type=int, default=100)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--crop", type=int, default=128, help="training crop on the model grid (pixels)")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--width", type=int, default=24)
    ap.add_argument("--head", type=int, default=48)
    ap.add_argument("--target-mm", type=float, default=1.0, help="model grid pixel size (Hwang: 0.695 mm)")
    ap.add_argument("--input-size", type=int, default=384, help="model input S (S x S pixels)")
    ap.add_argument("--phantom-size", type=int, default=512)
    ap.add_argument("--op-fppi", type=float, default=0.2, help="operating point: FPPI budget on validation")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2, help="processes rendering phantoms")
    ap.add_argument("--distractors", type=float, default=0.0,
                    help="probability per phantom study of non-venous look-alikes (ribs, bowel, organs, nodes, ...)")
    ap.add_argument("--wide", type=float, default=0.0,
                    help="probability per phantom study of widened randomisation (contrast, vein calibre, region crops)")
    ap.add_argument("--real", choices=["aorta", "pulmonary"], default=None,
                    help="also train on real anatomy with inserted defects from this ONE source volume")
    ap.add_argument("--real-studies", type=int, default=48, help="real lesion studies (clean copies of every 2nd)")
    ap.add_argument("--real-val-studies", type=int, default=8, help="real validation studies (+ their clean copies)")
    ap.add_argument("--real-weight", type=float, default=0.5, help="share of training crops from the real studies")
    ap.add_argument("--scenes", type=int, default=0,
                    help="randomised vessel-scene studies to train on (training.ct.vessel_scenes; 0 = none)")
    ap.add_argument("--scene-val-studies", type=int, default=8, help="vessel-scene validation studies")
    ap.add_argument("--scene-weight", type=float, default=0.35, help="share of training crops from the vessel scenes")
    ap.add_argument("--scene-wide", action="store_true",
                    help="train on the widened scenes (large trunks, tubes near the slice plane, contrast to 600 HU); "
                         "the validation scenes stay the default ones")
    ap.add_argument("--geo-aug", action="store_true", help="random 90-degree rotations and up-down flips of crops")
    ap.add_argument("--intensity-aug", action="store_true", help="gain / offset / noise jitter of crops")
    ap.add_argument("--max-minutes", type=float, default=0.0, help="stop starting epochs after this many minutes")
    ap.add_argument("--checkpoint", action="store_true", help="save DIR/ctdet-k{k}.pt after every epoch")
    args = ap.parse_args(argv)
    if argv is None:
        args.command = f"{prog} " + " ".join(sys.argv[1:])
    else:
        args.command = f"{call}(" + " ".join(argv) + ")"
    return args


def main(argv=None) -> int:
    """Train only: saves the weights and the summary; export them with ``export.ct_model``."""
    args = parse_args(argv)
    model, summary = train(args)
    pt, js = save_trained(model, summary, args.out)
    print(f"wrote {pt} and {js}; export with: dvt-edge export ct-onnx --checkpoint {pt} --out {args.out}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
