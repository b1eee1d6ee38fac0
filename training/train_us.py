"""Train the ultrasound ResUNet on phantom clips + real images (usgra-seg vessels, carotid-momot arteries).

    python -m training.train_us --variant resunet-lite --out runs/us-lite --seed 0

Epochs are chosen on VALIDATION splits only (phantom frames from far seeds, the usgra-seg and carotid-momot
validation splits); the test splits are never loaded here (``training.evaluate_generalisation`` scores them).

Reproducible from --seed (data, initialisation, batch order, augmentation; torch on the CPU with a fixed
thread count is deterministic for these ops). Prints progress; writes ``<variant>.pt``, ``<variant>.onnx``
(+ ``.json`` spec) and ``<variant>.md`` (model card) to --out.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch

from training.augment import augment
from training.data.us_frames import carotid_set, concat, phantom_set, real_set, scene_set
from training.losses import seg_loss
from training.models.resunet import LABELS, VARIANTS, build_model, config_dict
from training.seg_eval import evaluate

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
DEFAULT_REAL = SHARED_DATA / "usgra-seg"
DEFAULT_CAROTID = SHARED_DATA / "carotid-momot"
EVAL_SEED_OFFSET = 500_000  # held-out phantom frames come from seeds far from the training seeds (< 900_000)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m training.train_us", description=__doc__.split("\n")[0])
    add_arguments(p)
    return p.parse_args(argv)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--variant", default="resunet-lite", choices=sorted(VARIANTS))
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--phantom-frames", type=int, default=3000, help="phantom training frames")
    p.add_argument("--eval-frames", type=int, default=400, help="held-out phantom frames")
    p.add_argument("--real", type=Path, default=DEFAULT_REAL, help="usgra-seg folder ('none' to skip)")
    p.add_argument("--real-repeat", type=int, default=6, help="times each real training image appears per epoch")
    p.add_argument("--carotid", type=Path, default=DEFAULT_CAROTID, help="carotid-momot folder ('none' to skip)")
    p.add_argument("--carotid-repeat", type=int, default=3, help="times each carotid training image appears per epoch")
    p.add_argument("--wide", action="store_true", help="domain-randomised phantom frames (training.phantoms.anatomy.widen)")
    p.add_argument("--scenes", type=int, default=0,
                   help="randomised vessel-scene frames to add (training.phantoms.vessel_scenes; 0 = none)")
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--crop", type=int, default=128, help="train on random crops of this size (0: whole input)")
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--max-minutes", type=float, default=None, help="stop after this long (keeps the best so far)")
    p.add_argument("--init", type=Path, default=None, help="start from these weights (a .pt from an earlier run)")
    p.add_argument("--select-on", choices=("mean", "real"), default="mean",
                   help="keep the epoch with the best mean validation Dice, or the best real-image validation Dice")


def _batches(n: int, batch: int, gen: torch.Generator):
    order = torch.randperm(n, generator=gen)
    for i in range(0, n - batch + 1, batch):
        yield order[i:i + batch]


def score_of(metrics: dict) -> float:
    """One number to pick the best epoch (validation only): mean of the phantom artery and vein Dice, the
    usgra-seg vessel Dice and the carotid artery Dice that exist (real sets count mean per image)."""
    vals = [metrics["phantom"][c]["pooled"] for c in ("artery", "vein")] if "phantom" in metrics else []
    if "real" in metrics:
        vals.append(metrics["real"]["vessel"]["mean_per_image"])
    if "carotid" in metrics:
        vals.append(metrics["carotid"]["artery"]["mean_per_image"])
    return sum(vals) / len(vals)


def real_score(metrics: dict) -> float:
    vals = [metrics[k][c]["mean_per_image"] for k, c in (("real", "vessel"), ("carotid", "artery")) if k in metrics]
    return sum(vals) / len(vals)


def train(args: argparse.Namespace) -> dict:
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(args.seed)
    cfg = VARIANTS[args.variant]
    size = (cfg.input_size, cfg.input_size)
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    print(f"[data] generating {args.phantom_frames} phantom frames (seed {args.seed}) ...", flush=True)
    train_set = phantom_set(args.seed, args.phantom_frames, size, wide=args.wide)
    eval_phantom = phantom_set(args.seed + EVAL_SEED_OFFSET, args.eval_frames, size)
    if args.scenes:
        train_set = concat(train_set, scene_set(args.seed, args.scenes, size))
        print(f"[data] {args.scenes} randomised vessel-scene frames", flush=True)
    eval_real = eval_carotid = None
    use_real = str(args.real) != "none" and (args.real / "images").is_dir()
    if use_real:
        real_train = real_set(args.real, size, "train")
        eval_real = real_set(args.real, size, "val")
        train_set = concat(train_set, *([real_train] * args.real_repeat))
        print(f"[data] real usgra-seg: {len(real_train)} train x{args.real_repeat}, {len(eval_real)} validation", flush=True)
    else:
        print(f"[data] usgra-seg not found at {args.real}: no real vessel images", flush=True)
    use_carotid = str(args.carotid) != "none" and (args.carotid / "images").is_dir()
    if use_carotid:
        car_train = carotid_set(args.carotid, size, "train")
        eval_carotid = carotid_set(args.carotid, size, "val")
        train_set = concat(train_set, *([car_train] * args.carotid_repeat))
        print(f"[data] carotid-momot: {len(car_train)} train x{args.carotid_repeat}, {len(eval_carotid)} validation "
              "(split by acquisition)", flush=True)
    else:
        print(f"[data] carotid-momot not found at {args.carotid}: no real artery images", flush=True)
    print(f"[data] {len(train_set)} training samples ready in {time.time() - t0:.0f}s", flush=True)

    model = build_model(args.variant)
    if args.init is not None:
        model.load_state_dict(torch.load(args.init, map_location="cpu"))
        print(f"[init] weights from {args.init}", flush=True)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    steps = args.epochs * (len(train_set) // args.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=max(steps, 1), pct_start=0.1)
    best, history, step = -1.0, [], 0
    deadline = t0 + args.max_minutes * 60 if args.max_minutes else math.inf
    for epoch in range(args.epochs):
        model.train()
        running, seen, te = 0.0, 0, time.time()
        for idx in _batches(len(train_set), args.batch, gen):
            x, y = augment(train_set.images[idx], train_set.labels[idx], gen, crop=args.crop or None)
            loss = seg_loss(model(x), y, train_set.kind[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            running += loss.item() * len(idx)
            seen += len(idx)
        metrics = evaluate(model, eval_phantom, eval_real, eval_carotid)
        score = score_of(metrics) if args.select_on == "mean" else real_score(metrics)
        history.append({"epoch": epoch + 1, "loss": round(running / max(seen, 1), 4), "score": round(score, 4), **metrics})
        flag = ""
        if score > best:
            best, flag = score, " *"
            torch.save(model.state_dict(), args.out / f"{args.variant}.pt")
        print(f"[epoch {epoch + 1}/{args.epochs}] loss {running / max(seen, 1):.4f} {_fmt(metrics)} "
              f"({time.time() - te:.0f}s){flag}", flush=True)
        if time.time() > deadline:
            print(f"[train] --max-minutes reached after epoch {epoch + 1}", flush=True)
            break
    model.load_state_dict(torch.load(args.out / f"{args.variant}.pt"))
    final = evaluate(model, eval_phantom, eval_real, eval_carotid)
    summary = {
        "variant": args.variant, "config": config_dict(args.variant), "seed": args.seed,
        "phantom_frames": args.phantom_frames, "eval_frames": args.eval_frames,
        "real_images": str(args.real) if use_real else None, "real_repeat": args.real_repeat,
        "carotid_images": str(args.carotid) if use_carotid else None, "carotid_repeat": args.carotid_repeat,
        "wide": args.wide, "scenes": args.scenes, "selection": "validation splits (usgra-seg i%5==2, carotid-momot acquisitions p%4==3)",
        "epochs": args.epochs, "max_minutes": args.max_minutes, "epochs_run": len(history), "batch": args.batch,
        "crop": args.crop, "lr": args.lr, "threads": args.threads,
        "train_minutes": round((time.time() - t0) / 60, 1), "init": str(args.init) if args.init else None,
        "select_on": args.select_on, "metrics": final, "history": history,
        "labels": list(LABELS), "torch": torch.__version__,
    }
    (args.out / "train_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"[done] best {_fmt(final)} in {summary['train_minutes']} min -> {args.out}", flush=True)
    return summary


def _fmt(m: dict) -> str:
    parts = []
    if "phantom" in m:
        parts.append(f"artery {m['phantom']['artery']['pooled']:.3f} vein {m['phantom']['vein']['pooled']:.3f}")
    if "real" in m:
        parts.append(f"real vessel {m['real']['vessel']['mean_per_image']:.3f}")
    if "carotid" in m:
        parts.append(f"carotid artery {m['carotid']['artery']['mean_per_image']:.3f} "
                     f"(as vein {m['carotid']['artery_called_vein']:.2f})")
    return " ".join(parts)


def main(argv=None) -> None:
    train(parse_args(argv))


if __name__ == "__main__":
    main()
