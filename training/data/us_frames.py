"""Training tensors for the ultrasound segmenter: phantom frames (full labels) + real images (partial labels).

Both go through the runtime's own preprocessing (image-region crop, resize), so training sees exactly
what the bedside runtime will feed the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from edge.us.preprocess import crop_resize, crop_resize_mask, find_image_region
from training.data import usgra
from training.phantoms.us_clip import sample_training_frames


@dataclass
class SegSet:
    images: torch.Tensor  # (N, 1, H, W) float32 in [0, 1]
    labels: torch.Tensor  # (N, H, W) int64: full 0/1/2, or partial 0/1 (vessel)
    partial: torch.Tensor  # (N,) bool

    def __len__(self) -> int:
        return int(self.images.shape[0])


def _stack(images: list[np.ndarray], labels: list[np.ndarray], partial: bool) -> SegSet:
    imgs = torch.from_numpy(np.stack(images)).float().div_(255.0).unsqueeze(1)
    labs = torch.from_numpy(np.stack(labels).astype(np.int64))
    return SegSet(imgs, labs, torch.full((len(images),), partial, dtype=torch.bool))


def phantom_set(seed: int, n: int, size_hw: tuple[int, int]) -> SegSet:
    """``n`` phantom frames from ``seed``, cropped to the auto-detected image region like the runtime does."""
    frames, masks = sample_training_frames(seed, n)
    images, labels = [], []
    for frame, mask in zip(frames, masks):
        region = find_image_region(frame)
        images.append(crop_resize(frame, region, size_hw))
        labels.append(crop_resize_mask(mask, region, size_hw))
    return _stack(images, labels, partial=False)


def real_set(root: Path, size_hw: tuple[int, int], held_out: bool) -> SegSet:
    samples = usgra.load(root, size_hw, held_out)
    return _stack([s.image for s in samples], [s.vessel for s in samples], partial=True)


def concat(*sets: SegSet) -> SegSet:
    return SegSet(
        torch.cat([s.images for s in sets]), torch.cat([s.labels for s in sets]), torch.cat([s.partial for s in sets])
    )
