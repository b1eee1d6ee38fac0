"""Segmentation scores for the ultrasound model: artery/vein Dice on phantoms, vessel Dice on real images."""

from __future__ import annotations

import numpy as np
import torch

from edge.metrics import dice


@torch.no_grad()
def predict_labels(model: torch.nn.Module, images: torch.Tensor, batch: int = 32) -> np.ndarray:
    """(N,1,H,W) float -> (N,H,W) uint8 argmax labels."""
    model.eval()
    out = [model(images[i:i + batch]).argmax(1).to(torch.uint8) for i in range(0, len(images), batch)]
    return torch.cat(out).numpy()


def dice_scores(pred: np.ndarray, truth: np.ndarray, classes: dict[str, tuple[int, ...]]) -> dict[str, dict[str, float]]:
    """For each named class (a tuple of label values to merge, e.g. vessel = (1, 2)): pooled Dice over the
    whole stack, and the mean per-image Dice over images where the class is present in the truth."""
    scores = {}
    for name, values in classes.items():
        p, t = np.isin(pred, values), np.isin(truth, values)
        per_image = [dice(p[i], t[i]) for i in range(len(t)) if t[i].any()]
        scores[name] = {
            "pooled": round(dice(p, t), 4),
            "mean_per_image": round(float(np.mean(per_image)), 4) if per_image else float("nan"),
            "images": len(per_image),
        }
    return scores


def artery_called_vein(pred: np.ndarray, artery: np.ndarray) -> float:
    """Share of images whose labelled artery is called vein: of the artery-mask pixels predicted as a
    vessel (artery or vein), more are vein than artery; an artery not found at all counts too (it was not
    called artery). pred (N,H,W) labels 0/1/2, artery (N,H,W) 0/1."""
    bad = 0
    n = 0
    for p, a in zip(pred, artery.astype(bool)):
        if not a.any():
            continue
        n += 1
        inside = p[a]
        bad += int((inside == 2).sum() >= (inside == 1).sum())
    return bad / n if n else float("nan")


def evaluate(model: torch.nn.Module, phantom, real, carotid=None) -> dict:
    """Scores on a phantom SegSet (artery, vein), a usgra-seg SegSet (vessel = artery ∪ vein) and a
    carotid SegSet (artery; share of images where the artery is called vein)."""
    result = {}
    if phantom is not None:
        pred = predict_labels(model, phantom.images)
        result["phantom"] = dice_scores(pred, phantom.labels.numpy(), {"artery": (1,), "vein": (2,)})
    if real is not None:
        pred = predict_labels(model, real.images)
        # real labels are partial: 1 = vessel; predictions 1 or 2 both count as vessel
        pred_vessel = np.isin(pred, (1, 2)).astype(np.uint8)
        result["real"] = dice_scores(pred_vessel, real.labels.numpy(), {"vessel": (1,)})
    if carotid is not None:
        pred = predict_labels(model, carotid.images)
        truth = carotid.labels.numpy()
        result["carotid"] = {**dice_scores((pred == 1).astype(np.uint8), truth, {"artery": (1,)}),
                             "artery_called_vein": round(artery_called_vein(pred, truth), 4)}
    return result
