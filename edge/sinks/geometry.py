"""Model grid -> screen mapping for drawing (see the pixel conventions in :mod:`edge.us.types`)."""

from __future__ import annotations

import numpy as np

from edge.us.types import Region


def model_to_screen(xy: np.ndarray, grid_hw: tuple[int, int], region: Region) -> np.ndarray:
    """Map model-grid pixel coordinates (..., 2) as (x, y) onto the screen; returns float64 (..., 2).

    Pixel centres map to pixel centres: model pixel ``i`` covers screen ``[x0 + i*sx, x0 + (i+1)*sx)``,
    so its centre is ``x0 + (i + 0.5)*sx - 0.5`` in screen pixel-centre coordinates.
    """
    gh, gw = grid_hw
    x0, y0, w, h = region
    xy = np.asarray(xy, dtype=np.float64)
    out = np.empty_like(xy)
    out[..., 0] = x0 + (xy[..., 0] + 0.5) * (w / gw) - 0.5
    out[..., 1] = y0 + (xy[..., 1] + 0.5) * (h / gh) - 0.5
    return out


def screen_scale(grid_hw: tuple[int, int], region: Region) -> tuple[float, float]:
    """(screen px per model px horizontally, vertically)."""
    return region[2] / grid_hw[1], region[3] / grid_hw[0]
