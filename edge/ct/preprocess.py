"""CT preprocessing per Hwang/Seo et al.: a soft-tissue window and isotropic in-plane resampling.

Pure functions; the detector's spec records the values used (``preprocess`` in the model JSON), so
training, export and the runtime share one definition.
"""

from __future__ import annotations

import cv2
import numpy as np

WINDOW_LEVEL_HU = 140.0  # Hwang et al.: W400/L140 makes contrast-filled veins bright and thrombus grey
WINDOW_WIDTH_HU = 400.0
TARGET_SPACING_MM = 0.695  # Hwang et al. resample every slice to 0.695 mm pixels


def window(hu: np.ndarray, level: float = WINDOW_LEVEL_HU, width: float = WINDOW_WIDTH_HU) -> np.ndarray:
    """Map HU to [0, 1] float32: level - width/2 -> 0, level + width/2 -> 1, clipped."""
    lo = level - width / 2.0
    out = (np.asarray(hu, dtype=np.float32) - np.float32(lo)) / np.float32(width)
    return np.clip(out, 0.0, 1.0, out=out)


def resample_factor(pixel_spacing_mm: tuple[float, float], target_mm: float) -> tuple[float, float]:
    """(row, col) scale from the original grid to the target grid: original_px * factor = target_px."""
    return pixel_spacing_mm[0] / target_mm, pixel_spacing_mm[1] / target_mm


def resample(img: np.ndarray, pixel_spacing_mm: tuple[float, float], target_mm: float = TARGET_SPACING_MM) -> np.ndarray:
    """Resample a 2D slice to ``target_mm`` pixels (bilinear; area when shrinking)."""
    fy, fx = resample_factor(pixel_spacing_mm, target_mm)
    h, w = img.shape[:2]
    size = (max(1, int(round(w * fx))), max(1, int(round(h * fy))))
    interp = cv2.INTER_AREA if fx < 1 and fy < 1 else cv2.INTER_LINEAR
    return cv2.resize(img, size, interpolation=interp)


def fit_to(img: np.ndarray, size: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Centre-crop or zero-pad a 2D image to (size, size).

    Returns the image and the (x, y) offset of the output's origin in the input grid, so that
    ``input_xy = output_xy + offset`` (offsets are negative where padding was added).
    """
    h, w = img.shape[:2]
    out = np.zeros((size, size), dtype=img.dtype)
    oy, ox = (h - size) // 2, (w - size) // 2
    sy0, sx0 = max(oy, 0), max(ox, 0)
    dy0, dx0 = max(-oy, 0), max(-ox, 0)
    ch, cw = min(h - sy0, size - dy0), min(w - sx0, size - dx0)
    out[dy0:dy0 + ch, dx0:dx0 + cw] = img[sy0:sy0 + ch, sx0:sx0 + cw]
    return out, (ox, oy)
