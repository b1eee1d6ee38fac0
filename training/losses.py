"""BCE + log-Dice (Chen et al., Eq. 2-3), with partial labels for data that marks vessels but not which.

Predictions are softmax probabilities over (background, artery, vein). Full labels score artery and vein
separately. Partial labels (usgra-seg: artery and vein share one "vessel" class) score only the union
probability p(artery) + p(vein) against the vessel mask, so the model is never told a vessel's type
where the data does not know it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

SMOOTH = 1.0
EPS = 1e-6


def log_dice(prob: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """-log(Dice) per sample, prob/target (N, H, W) in [0, 1]; returns (N,)."""
    inter = (prob * target).flatten(1).sum(1)
    denom = prob.flatten(1).sum(1) + target.flatten(1).sum(1)
    return -torch.log((2 * inter + SMOOTH) / (denom + SMOOTH))


def bce(prob: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy per sample on probabilities (clamped for stability); returns (N,)."""
    return F.binary_cross_entropy(prob.clamp(EPS, 1 - EPS), target, reduction="none").flatten(1).mean(1)


def seg_loss(logits: torch.Tensor, labels: torch.Tensor, partial: torch.Tensor) -> torch.Tensor:
    """Batch loss.

    logits: (N, 3, H, W). labels: (N, H, W) int64 — full: 0 bg, 1 artery, 2 vein; partial: 0 bg, 1 vessel.
    partial: (N,) bool, which samples carry the partial (vessel-only) label.
    """
    prob = logits.softmax(1)
    full = ~partial
    losses = []
    if full.any():
        p, y = prob[full], labels[full]
        per = [bce(p[:, c], (y == c).float()) + log_dice(p[:, c], (y == c).float()) for c in (1, 2)]
        losses.append(torch.stack(per, 1).mean(1))
    if partial.any():
        p, y = prob[partial], labels[partial]
        union = p[:, 1] + p[:, 2]
        vessel = (y == 1).float()
        losses.append(bce(union, vessel) + log_dice(union, vessel))
    return torch.cat(losses).mean()
