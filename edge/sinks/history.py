"""The short memory the overlay needs across frames: recent vein areas and where the vein was last seen."""

from __future__ import annotations

import math

import numpy as np

from edge.sinks.geometry import model_to_screen, screen_scale
from edge.us.types import FrameResult, VeinStatus


class CurveHistory:
    """The last ``capacity`` (t, vein area) points plus the last tracked vein position, for the sparkline
    and for marking a collapsed vein.

    Fixed memory: two preallocated float64 ring buffers of ``capacity``; ``append`` allocates nothing.
    Call ``append(result)`` once per processed frame *before* ``render_overlay(result, history)`` so the
    sparkline ends at the current frame. One history per rendering consumer (not thread-safe).

    t: ``result.t_media`` in seconds when the source has a media clock, else ``result.t_capture``.
    area: ``result.track.vein_area_px`` in screen px; NaN when None (lost/searching: drawn as a gap).
    """

    def __init__(self, capacity: int = 300):
        if capacity < 2:
            raise ValueError(f"CurveHistory capacity must be >= 2, got {capacity}")
        self.capacity = int(capacity)
        self._t = np.empty(self.capacity, dtype=np.float64)
        self._a = np.empty(self.capacity, dtype=np.float64)
        self._n = 0
        self._head = 0  # next write position
        #: screen (x, y) of the vein centroid on the last frame where it was tracked, else None
        self.last_vein_xy: tuple[float, float] | None = None
        #: screen width (px) of the vein bounding box on that frame, else None
        self.last_vein_width: float | None = None

    def __len__(self) -> int:
        return self._n

    def append(self, result: FrameResult) -> None:
        t = result.t_media if result.t_media is not None else result.t_capture
        area = result.track.vein_area_px
        self._t[self._head] = float(t)
        self._a[self._head] = math.nan if area is None else float(area)
        self._head = (self._head + 1) % self.capacity
        self._n = min(self._n + 1, self.capacity)
        vein = result.track.vein
        if result.track.vein_status == VeinStatus.TRACKED and vein is not None:
            grid_hw = result.labels.shape[:2]
            cx, cy = model_to_screen(np.asarray(vein.centroid), grid_hw, result.region)
            self.last_vein_xy = (float(cx), float(cy))
            self.last_vein_width = float(vein.bbox[2] * screen_scale(grid_hw, result.region)[0])

    def points(self) -> tuple[np.ndarray, np.ndarray]:
        """(t, area) in append order as new float64 arrays of length ``len(self)``; NaN area = no vein."""
        if self._n < self.capacity:
            return self._t[: self._n].copy(), self._a[: self._n].copy()
        order = np.r_[self._head:self.capacity, 0:self._head]
        return self._t[order], self._a[order]

    def snapshot(self) -> "HistorySnapshot":
        """A frozen copy for rendering on another thread (two small array copies, no drawing)."""
        t, a = self.points()
        return HistorySnapshot(t, a, self.last_vein_xy, self.last_vein_width)

    def clear(self) -> None:
        self._n = self._head = 0
        self.last_vein_xy = self.last_vein_width = None


class HistorySnapshot:
    """What :func:`edge.sinks.overlay.render_overlay` reads of a :class:`CurveHistory` (``len``,
    ``points()``, ``last_vein_xy``, ``last_vein_width``), frozen at one frame. The background recorder
    takes one per queued frame on the loop's thread, so its renderer never reads a history that the loop
    is appending to."""

    __slots__ = ("_t", "_a", "last_vein_xy", "last_vein_width")

    def __init__(self, t: np.ndarray, a: np.ndarray, last_vein_xy, last_vein_width):
        self._t, self._a = t, a
        self.last_vein_xy, self.last_vein_width = last_vein_xy, last_vein_width

    def __len__(self) -> int:
        return len(self._t)

    def points(self) -> tuple[np.ndarray, np.ndarray]:
        return self._t, self._a
