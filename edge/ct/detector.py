"""The CT detector seam: :class:`SliceDetector` (what the slice loop calls) and :class:`ModelDetector`, the
trained detector behind a Backend (prepare slices -> stack k -> infer -> decode detections -> plausibility).

Tests use :class:`edge.ct.testing.ThresholdDetector`, a deterministic stand-in with the same Protocol.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from edge.ct.types import CTSlice, Detection
from edge.errors import ModelError


@runtime_checkable
class SliceDetector(Protocol):
    """Detects candidates on ``centre`` given its k-slice ``window`` (ascending position, ``window[k//2] is centre``).

    Returns Detections with ``slice_index == centre.index`` and boxes in centre's original pixel grid.
    ``k`` is the window length the detector was trained for.

    Per series the loop calls ``reset()`` first (a detector serves many studies in ``ct listen``: per-series
    state must not leak); after the series it reports ``rejected`` (detections a rule turned down, with the
    reason; never dropped silently) and ``timing`` (per-call milliseconds by stage name).
    """

    k: int
    rejected: list[tuple[Detection, str]]
    timing: dict[str, list[float]]

    def reset(self) -> None: ...

    def detect(self, window: list[CTSlice], centre: CTSlice) -> list[Detection]: ...


class ModelDetector:
    """The trained detector behind a Backend: prepare slices -> stack k -> infer -> decode_detections.

    Each slice is windowed/resampled once (``decode.prepare_slice``) and kept while it can still appear in a
    window (2k entries), then stacked into a preallocated [1, k, S, S] input: k=3 costs one slice
    preparation per slice, not three. Same arithmetic as ``decode.prepare_input`` (used by training).
    The backend and spec are owned by the caller (created once, before the loop; closed by the caller).
    ``timing`` collects per-call milliseconds for preprocess / infer / decode.

    Plausibility (``edge.ct.plausibility``): each decoded detection is checked on the centre slice's HU (bone
    ring, clot density, filling defect) with the spec's ``extra["plausibility"]`` parameters (or ``plausibility``
    given here; ``PlausibilityParams(enabled=False)`` turns it off). Rejected detections are kept in
    ``rejected`` as (Detection, reason) - never dropped silently; ``run_slice_loop`` reports them as a warning.
    """

    def __init__(self, backend, spec, score_threshold: float | None = None, plausibility=None, lumen=None):
        try:
            from edge.ct import decode as _decode
        except ImportError as exc:
            raise ModelError(f"the CT detection decoder (edge/ct/decode.py) is not available: {exc}") from exc
        self._dec = _decode
        self.backend, self.spec, self.score_threshold = backend, spec, score_threshold
        self._pre = _decode.preprocess_params(spec)
        k = spec.input.shape[1] if len(spec.input.shape) == 4 else None
        if not isinstance(k, int) or k != int(self._pre["k"]):
            raise ModelError(f"model '{spec.name}': input shape {spec.input.shape} does not fit k={self._pre['k']} "
                             "(expected [1, k, S, S])")
        self.k = k
        size = int(self._pre["size"])
        self._input = np.empty((1, k, size, size), np.float32)  # reused for every slice (hot loop)
        self._prepared: dict[int, np.ndarray] = {}
        self.timing: dict[str, list[float]] = {"preprocess": [], "infer": [], "decode": []}
        from edge.ct.plausibility import PlausibilityParams
        self.plausibility = plausibility if plausibility is not None else PlausibilityParams.from_spec(spec)
        self.rejected: list[tuple[Detection, str]] = []
        from edge.ct.lumen import LumenParams, LumenStage
        self.lumen = lumen if lumen is not None else LumenParams.from_spec(spec)
        self._lumen_stage = LumenStage(self.lumen) if self.lumen.enabled else None
        self.lumen_last: list[tuple[tuple, float, float]] = []  # (box, lumen score, heatmap max) of the last slice
        if self._lumen_stage is not None:
            self.timing["lumen"] = []

    def reset(self) -> None:
        """Start a new series: slice indices restart at 0, so prepared slices and timings are dropped."""
        self._prepared.clear()
        self.rejected = []
        if self._lumen_stage is not None:
            self._lumen_stage.reset()
        for v in self.timing.values():
            v.clear()

    def _prepared_slice(self, s: CTSlice) -> np.ndarray:
        img = self._prepared.get(s.index)
        if img is None:
            img = self._dec.prepare_slice(s.hu, s.pixel_spacing_mm, self._pre)
            self._prepared[s.index] = img
            if len(self._prepared) > 2 * self.k:  # forget slices no later window can contain
                for i in sorted(self._prepared, key=lambda j: abs(j - s.index), reverse=True)[: len(self._prepared) - 2 * self.k]:
                    del self._prepared[i]
        return img

    def detect(self, window: list[CTSlice], centre: CTSlice) -> list[Detection]:
        t0 = time.perf_counter()
        x = self._dec.stack_input([self._prepared_slice(s) for s in window], out=self._input)
        t1 = time.perf_counter()
        outputs = self.backend.infer({self.spec.input.name: x})
        t2 = time.perf_counter()
        dets = self._dec.decode_detections(outputs, self.spec, slice_index=centre.index,
                                           pixel_spacing_mm=centre.pixel_spacing_mm,
                                           original_shape=centre.hu.shape, score_threshold=self.score_threshold)
        if self._lumen_stage is not None:
            dets = self._add_lumen(window, centre, outputs, dets)
        if self.plausibility.enabled and dets:
            from edge.ct.plausibility import check
            kept = []
            for d in dets:
                why = check(centre.hu, d.box, centre.pixel_spacing_mm, self.plausibility)
                if why is None:
                    kept.append(d)
                else:
                    self.rejected.append((d, why))
            dets = kept
        t3 = time.perf_counter()
        for key, dt in (("preprocess", t1 - t0), ("infer", t2 - t1), ("decode", t3 - t2)):
            self.timing[key].append(dt * 1e3)
        return list(dets)

    def _add_lumen(self, window: list[CTSlice], centre: CTSlice, outputs: dict, dets: list[Detection]) -> list[Detection]:
        """The vessel-lumen candidates (``edge.ct.lumen``) of the centre slice fused with the learned ones."""
        from edge.ct.lumen import fuse, heat_max

        t0 = time.perf_counter()
        cands = self._lumen_stage.detect(window, centre)
        dec = self._dec.decode_params(self.spec)
        heat = self._dec.sigmoid(np.asarray(outputs[dec["heatmap_output"]])[0, 0])
        scale, offset = self._dec.grid_transform(centre.hu.shape, centre.pixel_spacing_mm, self._pre)
        hm = [heat_max(heat, b, (scale, offset, float(dec["stride"]))) for b, _ in cands]
        self.lumen_last = [(b, s, h) for (b, s), h in zip(cands, hm)]
        op = float(dec["score_threshold"])
        out = fuse(dets, cands, hm, self.lumen, op, centre.index)
        if self.score_threshold is not None:
            out = [d for d in out if d.score >= self.score_threshold]
        self.timing["lumen"].append((time.perf_counter() - t0) * 1e3)
        return out


def default_model_path() -> Path:
    """``edge/ct/assets/ctdet-k3.onnx`` inside the installed package (it may not exist yet)."""
    from importlib.resources import files

    return Path(str(files("edge.ct").joinpath("assets", "ctdet-k3.onnx")))
