"""Training tensors for the ultrasound segmenter: phantom frames (full labels) + real images (partial labels).

Every sample carries a label ``kind`` saying what its mask knows (see ``training.losses``):
    FULL     phantom frames: 0 background, 1 artery, 2 vein (thrombus counted as vein: the vessel outline)
    VESSEL   usgra-seg: 1 = artery or vein (the data does not say which), 0 = neither
    ARTERY   carotid-momot: 1 = artery; 0 = not artery (background OR the unlabelled jugular vein)

All go through the runtime's own preprocessing (image-region crop, resize), so training sees exactly
what the bedside runtime will feed the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from edge.us.preprocess import crop_resize, crop_resize_mask, find_image_region
from training.data import carotid, usgra
from training.phantoms.us_clip import sample_training_frames

FULL, VESSEL, ARTERY = 0, 1, 2
KINDS = {"full": FULL, "vessel": VESSEL, "artery": ARTERY}


@dataclass
class SegSet:
    images: torch.Tensor  # (N, 1, H, W) float32 in [0, 1]
    labels: torch.Tensor  # (N, H, W) int64, meaning per ``kind``
    kind: torch.Tensor  # (N,) int64: FULL, VESSEL or ARTERY

    def __len__(self) -> int:
        return int(self.images.shape[0])


def _stack(images: list[np.ndarray], labels: list[np.ndarray], kind: int) -> SegSet:
    imgs = torch.from_numpy(np.stack(images)).float().div_(255.0).unsqueeze(1)
    labs = torch.from_numpy(np.stack(labels).astype(np.int64))
    return SegSet(imgs, labs, torch.full((len(images),), kind, dtype=torch.int64))


def phantom_set(seed: int, n: int, size_hw: tuple[int, int], *, wide: bool = False) -> SegSet:
    """``n`` phantom frames from ``seed``, cropped to the auto-detected image region like the runtime does.
    wide: draw the renderer's appearance and anatomy from its wide (domain-randomised) ranges."""
    frames, masks = sample_training_frames(seed, n, wide=wide)
    images, labels = [], []
    for frame, mask in zip(frames, masks):
        region = find_image_region(frame)
        images.append(crop_resize(frame, region, size_hw))
        labels.append(crop_resize_mask(mask, region, size_hw))
    return _stack(images, labels, FULL)


def scene_set(seed: int, n: int, size_hw: tuple[int, int]) -> SegSet:
    """``n`` randomised vessel-scene frames (``training.phantoms.vessel_scenes``), drawn at the model's input size."""
    from training.phantoms.vessel_scenes import scene_frames

    frames, labels = scene_frames(seed, n, size_hw)
    return _stack(frames, labels, FULL)


def real_set(root: Path, size_hw: tuple[int, int], split: str) -> SegSet:
    """usgra-seg vessel masks, one split (``training.data.usgra.SPLITS``)."""
    samples = usgra.load(root, size_hw, split)
    return _stack([s.image for s in samples], [s.vessel for s in samples], VESSEL)


def carotid_set(root: Path, size_hw: tuple[int, int], split: str) -> SegSet:
    """carotid-momot artery masks, one acquisition split (``training.data.carotid.SPLITS``)."""
    samples = carotid.load(root, size_hw, split)
    return _stack([s.image for s in samples], [s.artery for s in samples], ARTERY)


def concat(*sets: SegSet) -> SegSet:
    return SegSet(
        torch.cat([s.images for s in sets]), torch.cat([s.labels for s in sets]), torch.cat([s.kind for s in sets])
    )
