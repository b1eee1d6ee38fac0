"""Parity as a contract: an exported artifact must do the same job as its PyTorch reference.

Task-level metrics, not only ``allclose``: mask Dice per class for segmentation; the caller adds
measurement-level checks (compressibility difference) on clips.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge.metrics import dice


@dataclass(frozen=True)
class SegParity:
    dice_per_class: dict[str, float]  # pooled over all frames: Dice of the stacked masks
    min_frame_dice: float  # worst single frame, over foreground classes present in either mask
    max_abs_logit_diff: float
    frames: int

    @property
    def min_dice(self) -> float:
        return min(self.dice_per_class.values())


def segmentation_parity(ref_logits: np.ndarray, test_logits: np.ndarray, labels: list[str]) -> SegParity:
    """Compare two stacks of logits (N, C, H, W) by their argmax label maps.

    Class 0 (background) is excluded from the Dice report; a class absent from both stacks scores 1.0.
    """
    if ref_logits.shape != test_logits.shape:
        raise ValueError(f"logit shapes differ: {ref_logits.shape} vs {test_logits.shape}")
    ref = ref_logits.argmax(1)
    test = test_logits.argmax(1)
    per_class = {labels[c]: dice(ref == c, test == c) for c in range(1, ref_logits.shape[1])}
    frame_scores = [
        dice(ref[i] == c, test[i] == c)
        for i in range(ref.shape[0])
        for c in range(1, ref_logits.shape[1])
        if (ref[i] == c).any() or (test[i] == c).any()
    ]
    return SegParity(
        dice_per_class=per_class,
        min_frame_dice=min(frame_scores) if frame_scores else 1.0,
        max_abs_logit_diff=float(np.abs(ref_logits.astype(np.float32) - test_logits.astype(np.float32)).max()),
        frames=int(ref.shape[0]),
    )
