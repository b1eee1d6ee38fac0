"""The real usgra-seg images (Kandaouroff, CC BY 4.0): B-mode with vessel masks, read from ../shared/data.

Masks are palette PNGs: 0 background, 1 nerve, 2 blood vessel. Artery and vein share class 2, so these
images train the model through the partial (vessel = artery ∪ vein) loss. Nerve counts as background.

Split: files sorted by name, assigned by position i: every fifth (i % 5 == 4) is the test split (held out
for evaluation since the first model; never trained on, never used to choose anything), i % 5 == 2 is the
validation split (epochs and thresholds are chosen there), the rest train. The split is by position so it is
reproducible without a stored list. The images carry no acquisition tag, so near-duplicate frames of one
sweep may straddle splits: the test figure may be optimistic for that reason (the carotid set, which names
its acquisitions, is split by acquisition).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from edge.errors import InputError
from edge.us.preprocess import crop_resize, crop_resize_mask

VESSEL = 2


@dataclass(frozen=True)
class RealSample:
    name: str
    image: np.ndarray  # (H, W) uint8, cropped to the image region and resized to the model input
    vessel: np.ndarray  # (H, W) uint8 {0, 1}: artery ∪ vein


def list_pairs(root: Path) -> list[tuple[Path, Path]]:
    images = sorted((root / "images").glob("*.png"))
    if not images:
        raise InputError(f"{root}: no images/*.png found (expected the usgra-seg layout: images/ and masks/)")
    pairs = []
    for img in images:
        mask = root / "masks" / img.name
        if not mask.is_file():
            raise InputError(f"{mask}: mask missing for image {img.name}")
        pairs.append((img, mask))
    return pairs


SPLITS = ("train", "val", "test")


def split_name(i: int) -> str:
    return "test" if i % 5 == 4 else "val" if i % 5 == 2 else "train"


def split(pairs: list, name: str) -> list:
    """Deterministic train/val/test split by sorted position (see module docstring)."""
    if name not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, not {name!r}")
    return [p for i, p in enumerate(pairs) if split_name(i) == name]


def load(root: Path, size_hw: tuple[int, int], split_: str) -> list[RealSample]:
    """Load one split, resized with the runtime's own preprocessing functions."""
    out = []
    for img_path, mask_path in split(list_pairs(root), split_):
        grey = cv2.imread(str(img_path), cv2.IMREAD_GRAYSCALE)
        if grey is None:
            raise InputError(f"{img_path}: cannot read the image")
        with Image.open(mask_path) as im:  # OpenCV would expand the palette to colours; PIL keeps indices
            if im.mode not in ("P", "L"):
                raise InputError(f"{mask_path}: expected a palette (indexed) PNG, got mode {im.mode}")
            mask = np.array(im)
        # These images hold only the ultrasound image (no scanner text or scales), and deep anatomy can be
        # pure black, which a brightness-based region finder cannot tell from a border: use it whole.
        region = (0, 0, grey.shape[1], grey.shape[0])
        out.append(RealSample(
            img_path.stem,
            crop_resize(grey, region, size_hw),
            (crop_resize_mask(mask, region, size_hw) == VESSEL).astype(np.uint8),
        ))
    return out
