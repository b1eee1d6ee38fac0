"""BCE + log-Dice (Chen et al., Eq. 2-3), with partial labels for data that marks only part of the truth.

Predictions are softmax probabilities over (background, artery, vein). What is scored depends on what a
sample's mask knows (its ``kind``, see ``training.data.us_frames``):
    FULL    (phantoms)      artery and vein separately;
    VESSEL  (usgra-seg)     only the union p(artery) + p(vein) against the vessel mask: the model is never
                            told a vessel's type where the data does not know it;
    ARTERY  (carotid-momot) only p(artery) against the artery mask: outside it a pixel is "not artery",
                            which may be background or the unlabelled jugular vein, so p(vein) vs
                            p(background) is left free there.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

SMOOTH = 1.0
EPS = 1e-6
FULL, VESSEL, ARTERY = 0, 1, 2  # mirrors training.data.us_frames (kept here so losses import nothing)


def log_dice(prob: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """-log(Dice) per sample, prob/target (N, H, W) in [0, 1]; returns (N,)."""
    inter = (prob * target).flatten(1).sum(1)
    denom = prob.flatten(1).sum(1) + target.flatten(1).sum(1)
    return -torch.log((2 * inter + SMOOTH) / (denom + SMOOTH))


def bce(prob: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy per sample on probabilities (clamped for stability); returns (N,)."""
    return F.binary_cross_entropy(prob.clamp(EPS, 1 - EPS), target, reduction="none").flatten(1).mean(1)


def seg_loss(logits: torch.Tensor, labels: torch.Tensor, kind: torch.Tensor) -> torch.Tensor:
    """Batch loss.

    logits: (N, 3, H, W). labels: (N, H, W) int64 (meaning per kind, module docstring).
    kind: (N,) int64, FULL / VESSEL / ARTERY per sample (a bool tensor is read as VESSEL where True).
    """
    if kind.dtype == torch.bool:
        kind = kind.long() * VESSEL
    prob = logits.softmax(1)
    losses = []
    full = kind == FULL
    if full.any():
        p, y = prob[full], labels[full]
        per = [bce(p[:, c], (y == c).float()) + log_dice(p[:, c], (y == c).float()) for c in (1, 2)]
        losses.append(torch.stack(per, 1).mean(1))
    vessel = kind == VESSEL
    if vessel.any():
        p, y = prob[vessel], labels[vessel]
        union = p[:, 1] + p[:, 2]
        target = (y == 1).float()
        losses.append(bce(union, target) + log_dice(union, target))
    artery = kind == ARTERY
    if artery.any():
        p, y = prob[artery], labels[artery]
        target = (y == 1).float()
        losses.append(bce(p[:, 1], target) + log_dice(p[:, 1], target))
    return torch.cat(losses).mean()
