"""Real transverse carotid B-mode with expert artery masks (Momot 2022, doi:10.17632/d4xt63mgjm.1), read
from ../shared/data/carotid-momot. A second scanner (Mindray UMT-500Plus, L13-3s) beside usgra-seg.

Masks: 0 background, 1 common carotid artery lumen. Only the artery is labelled; the internal jugular
vein beside it is not, so these images train the artery channel alone (see ``training.losses``): the model
is told where the artery is and is never told that the unlabelled vessel next to it is background.

Split BY ACQUISITION, never by frame: the frames of one cine loop are near-duplicates. The acquisition
is the part of the file name before ``_slice``. Acquisitions are sorted by name and assigned by position
p: ``p % 4 == 1`` -> test, ``p % 4 == 3`` -> validation, else train. The rule needs no stored list, and
it is fixed before any model was trained on these images.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge.errors import InputError
from edge.us.preprocess import crop_resize, crop_resize_mask

SPLITS = ("train", "val", "test")
ARTERY = 1


@dataclass(frozen=True)
class CarotidSample:
    name: str
    acquisition: str
    image: np.ndarray  # (H, W) uint8, whole image resized to the model input
    artery: np.ndarray  # (H, W) uint8 {0, 1}


def acquisition_of(name: str) -> str:
    """'202201121748100022VAS_slice_1069' -> '202201121748100022VAS'."""
    return name.split("_slice")[0]


def split_of(acquisitions: list[str]) -> dict[str, str]:
    """Acquisition -> split name by sorted position (module docstring)."""
    out = {}
    for p, acq in enumerate(sorted(set(acquisitions))):
        out[acq] = "test" if p % 4 == 1 else "val" if p % 4 == 3 else "train"
    return out


def list_pairs(root: Path) -> list[tuple[Path, Path]]:
    images = sorted((root / "images").glob("*.png"))
    if not images:
        raise InputError(f"{root}: no images/*.png found (expected the carotid-momot layout: images/ and masks/)")
    pairs = []
    for img in images:
        mask = root / "masks" / img.name
        if not mask.is_file():
            raise InputError(f"{mask}: mask missing for image {img.name}")
        pairs.append((img, mask))
    return pairs


def load(root: Path, size_hw: tuple[int, int], split: str) -> list[CarotidSample]:
    """One split, resized with the runtime's own preprocessing (the images hold no screen text: used whole)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
    pairs = list_pairs(root)
    assign = split_of([acquisition_of(p[0].stem) for p in pairs])
    out = []
    for img_path, mask_path in pairs:
        acq = acquisition_of(img_path.stem)
        if assign[acq] != split:
            continue
        grey = cv2.imread(str(img_path), cv2.IMREAD_GRAYSCALE)
        mask = cv2.imread(str(mask_path), cv2.IMREAD_GRAYSCALE)
        if grey is None or mask is None:
            raise InputError(f"{img_path}: cannot read the image or its mask")
        if grey.shape != mask.shape:
            raise InputError(f"{mask_path}: mask shape {mask.shape} differs from image {grey.shape}")
        region = (0, 0, grey.shape[1], grey.shape[0])
        out.append(CarotidSample(img_path.stem, acq, crop_resize(grey, region, size_hw),
                                 (crop_resize_mask(mask, region, size_hw) == ARTERY).astype(np.uint8)))
    return out
