"""The cross-renderer table: train a short phantom-only model on renderer A (``training.phantoms``), test
it on renderer B (``training.second_renderer``), and the reverse, so the gap between in-style and
out-of-style figures is measured rather than assumed.

    python -m training.cross_renderer --minutes 8 --out training/results/us-cross-renderer

Both short models see phantoms only (no real images, no domain randomisation), the same architecture,
budget and augmentation; each is scored on held-out frames (artery/vein Dice) and on compression clips
(verdicts) of both renderers. These models are for this table only and are never shipped. Training seeds
of B (100000+) are disjoint from its evaluation seeds (700000+, ``training.evaluate_generalisation``);
the clips scored here use seeds 750000+ (B) and 950000+ (A), used nowhere else.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from edge.spec import load_spec
from edge.us.preprocess import crop_resize, crop_resize_mask, find_image_region
from training.augment import augment
from training.data.us_frames import FULL, SegSet, phantom_set
from training.losses import seg_loss
from training.models.resunet import build_model
from training.seg_eval import dice_scores, predict_labels

B_TRAIN_SEED = 100_000


def second_renderer_set(seed: int, n: int, size_hw: tuple[int, int], per_clip: int = 8) -> SegSet:
    """``n`` frames of renderer B: ``per_clip`` random frames from each of n/per_clip random clips."""
    from training.second_renderer.us_clips import generate_clip

    rng = np.random.default_rng(seed)
    images, labels = [], []
    k = 0
    while len(images) < n:
        clip = generate_clip(seed + k)
        k += 1
        for i in rng.choice(len(clip.frames), size=min(per_clip, len(clip.frames)), replace=False):
            region = find_image_region(clip.frames[i])
            images.append(crop_resize(clip.frames[i], region, size_hw))
            labels.append(crop_resize_mask(clip.masks[i], region, size_hw))
            if len(images) >= n:
                break
    imgs = torch.from_numpy(np.stack(images)).float().div_(255.0).unsqueeze(1)
    return SegSet(imgs, torch.from_numpy(np.stack(labels).astype(np.int64)), torch.full((n,), FULL))


class TorchBackend:
    """The Backend contract (``infer(feeds) -> outputs``) over an eager model, for this table only."""

    def __init__(self, model: torch.nn.Module, input_name: str, output_name: str):
        self.model, self.input_name, self.output_name = model.eval(), input_name, output_name

    @torch.no_grad()
    def infer(self, feeds: dict) -> dict:
        return {self.output_name: self.model(torch.from_numpy(feeds[self.input_name])).numpy()}

    def close(self) -> None:
        pass


def train_short(data: SegSet, minutes: float, seed: int, threads: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    gen = torch.Generator().manual_seed(seed)
    model = build_model("resunet-lite")
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    deadline = time.time() + minutes * 60
    step = 0
    while time.time() < deadline:
        model.train()
        for idx in torch.randperm(len(data), generator=gen).split(16):
            if len(idx) < 16 or time.time() >= deadline:
                break
            x, y = augment(data.images[idx], data.labels[idx], gen, crop=128)
            loss = seg_loss(model(x), y, data.kind[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
    print(f"[train] {step} steps in {minutes} min", flush=True)
    return model.eval()


def score(model, spec, frames: dict[str, SegSet], clips: dict[str, list]) -> dict:
    from training.evaluate_verdicts import run_clip, summarise

    out = {}
    for name, s in frames.items():
        pred = predict_labels(model, s.images)
        out[f"{name}_frames"] = dice_scores(pred, s.labels.numpy(), {"artery": (1,), "vein": (2,)})
    backend = TorchBackend(model, spec.input.name, spec.outputs[0].name)
    for name, cl in clips.items():
        rows = [run_clip(c, backend, spec) for c in cl]
        summary = summarise(rows)
        out[f"{name}_clips"] = {k: summary[k] for k in ("clips", "correct", "accuracy", "dvt_called_compressible")}
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.cross_renderer", description=__doc__.split("\n")[0])
    p.add_argument("--minutes", type=float, default=8.0, help="training budget per renderer")
    p.add_argument("--frames", type=int, default=800, help="training frames per renderer")
    p.add_argument("--eval-frames", type=int, default=120)
    p.add_argument("--clips", type=int, default=10, help="clips per renderer for verdicts (half normal, half DVT)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--spec", type=Path, default=Path("edge/assets/resunet-lite.json"), help="input/output names")
    p.add_argument("--out", type=Path, required=True, help="output stem: OUT.json and OUT.md")
    args = p.parse_args(argv)
    from training.phantoms.us_clip import evaluation_set as a_clips
    from training.second_renderer.us_clips import evaluation_set as b_clips

    spec = load_spec(args.spec)
    size = spec.input_hw
    t0 = time.time()
    print("[data] rendering training and held-out frames of both renderers ...", flush=True)
    train = {"A": phantom_set(11, args.frames, size), "B": second_renderer_set(B_TRAIN_SEED, args.frames, size)}
    held = {"A": phantom_set(11 + 600_000, args.eval_frames, size),
            "B": second_renderer_set(B_TRAIN_SEED + 50_000, args.eval_frames, size)}
    n = args.clips // 2
    clips = {"A": list(a_clips(n, n, base_seed=950_000)), "B": list(b_clips(n, n, base_seed=750_000))}
    res = {"schema": "dvt-edge/us-cross-renderer@1", "command": " ".join(sys.argv), "minutes_per_model": args.minutes,
           "frames": args.frames, "note": "short phantom-only models for this table; never shipped", "trained_on": {}}
    for name in ("A", "B"):
        print(f"[train] on renderer {name} ...", flush=True)
        model = train_short(train[name], args.minutes, seed=5, threads=args.threads)
        res["trained_on"][name] = score(model, spec, held, clips)
        print(f"[score] trained on {name}: {json.dumps(res['trained_on'][name])}", flush=True)
    res["minutes"] = round((time.time() - t0) / 60, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(res, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(res))
    print(f"[done] {args.out.with_suffix('.md')}", flush=True)
    return 0


def markdown(res: dict) -> str:
    lines = ["# Cross-renderer table (short phantom-only models)", "",
             f"`{res['command']}`: {res['frames']} training frames, {res['minutes_per_model']} min per model.", "",
             "| trained on | tested on | artery Dice | vein Dice | verdicts correct | DVT called compressible |",
             "|---|---|---|---|---|---|"]
    for tr, r in res["trained_on"].items():
        for te in ("A", "B"):
            f, c = r[f"{te}_frames"], r[f"{te}_clips"]
            style = "in-style" if tr == te else "**out-of-style**"
            lines.append(f"| {tr} | {te} ({style}) | {f['artery']['pooled']:.3f} | {f['vein']['pooled']:.3f} | "
                         f"{c['correct']}/{c['clips']} | {c['dvt_called_compressible']} |")
    return "\n".join(lines) + "\n\nA = `training.phantoms` (the training renderer); B = `training.second_renderer` (independent).\n"


if __name__ == "__main__":
    sys.exit(main())
