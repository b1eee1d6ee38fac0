"""The CT job composed: slice stream -> ring of k slices -> detector -> linker -> findings.

:func:`run_pipeline` is the one loop shared by ``ct scan`` (a folder or NIfTI file) and ``ct listen``
(C-STORE): findings are handed to ``on_finding`` the moment the linker closes their chain, while later
slices are still arriving. The detector is a small Protocol so tests inject a deterministic fake;
:class:`ModelDetector` is the real one (preprocess -> Backend.infer -> decode_detections).

Indices: inside the loop everything uses stream indices (0 = first slice released by the stream). When
the stream ran head-to-feet (direction -1) the result is mapped to position order at the end, so every
report uses slice indices of the position-sorted series (0 = most inferior), like ``ct scan`` on a folder.
The detector always sees its window in ascending position order, whatever the stream direction, so a
slice gets the same input (and the same detections) from a folder and from the network.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Protocol, runtime_checkable

import numpy as np

from edge.ct.linking import LinkParams, Linker, SliceGeom, Suppressed, reverse_finding
from edge.ct.preprocess import window as hu_window
from edge.ct.ring import SliceRing
from edge.ct.types import CTSlice, Detection, Finding
from edge.errors import ConfigError, ModelError


@runtime_checkable
class SliceDetector(Protocol):
    """Detects candidates on ``centre`` given its k-slice ``window`` (ascending position, ``window[k//2] is centre``).

    Returns Detections with ``slice_index == centre.index`` and boxes in centre's original pixel grid.
    ``k`` is the window length the detector was trained for.
    """

    k: int

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
    ``rejected`` as (Detection, reason) - never dropped silently; ``run_pipeline`` reports them as a warning.
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


@dataclass
class ScanResult:
    """What one series produced. Indices are position-order slice indices (see module doc)."""

    slices: int
    findings: list[Finding]
    suppressed: list[Suppressed]
    warnings: list[str]
    direction: int
    k: int
    timing: dict
    key_images: list[np.ndarray] = field(default_factory=list)  # per finding: windowed uint8 peak slice
    pixel_spacing_mm: tuple[float, float] | None = None
    series_hash: str = ""


def _stats(ms: list[float]) -> dict:
    if not ms:
        return {"n": 0}
    a = np.asarray(ms)
    return {"n": len(ms), "mean": round(float(a.mean()), 3), "p50": round(float(np.percentile(a, 50)), 3),
            "p90": round(float(np.percentile(a, 90)), 3), "max": round(float(a.max()), 3)}


def _key_image(hu: np.ndarray) -> np.ndarray:
    """The soft-tissue window (W400/L140, as the detector sees it) as uint8: what a key image shows."""
    return (hu_window(hu) * 255.0 + 0.5).astype(np.uint8)


def run_pipeline(stream: Iterable[CTSlice], detector: SliceDetector, *, k: int | None = None,
                 link_params: LinkParams | None = None,
                 on_finding: Callable[[Finding, int], None] | None = None) -> ScanResult:
    """Run the detector over a stream and link its detections; see the module doc.

    stream: CTSlices with consecutive indices 0, 1, ... (a :class:`edge.ct.stream.SliceStream`, whose
        ``direction``, ``warnings`` and ``series_hash`` are read when present).
    k: window length; defaults to ``detector.k``; a different k is a ConfigError (the model was trained on k).
    on_finding(finding, direction): called live with the finding in STREAM indices, as soon as it closes.
    """
    k = detector.k if k is None else k
    if k != detector.k:
        raise ConfigError(f"--k {k} does not match the detector, which was trained on {detector.k}-slice windows")
    if hasattr(detector, "reset"):
        detector.reset()  # a detector serves many studies (listen): per-series state must not leak
    ring, linker = SliceRing(k), Linker(link_params)
    findings: list[Finding] = []
    suppressed: list[Suppressed] = []
    key_images: list[np.ndarray] = []
    cache: dict[int, np.ndarray] = {}  # windowed slices that carry detections, until their chain closes
    times: dict[str, list[float]] = {"read": [], "detect": [], "link": []}
    spacing = None
    direction = lambda: getattr(stream, "direction", 1) or 1  # noqa: E731 - known once slices are released

    def handle(windows) -> None:
        for w in windows:
            slices = list(w.slices) if direction() > 0 else list(w.slices)[::-1]
            t0 = time.perf_counter()
            dets = detector.detect(slices, w.centre)
            t1 = time.perf_counter()
            if dets:
                cache[w.centre.index] = _key_image(w.centre.hu)
            closed = linker.add(w.centre.index, SliceGeom(w.centre.position_mm, w.centre.pixel_spacing_mm), dets)
            times["detect"].append((t1 - t0) * 1e3)
            times["link"].append((time.perf_counter() - t1) * 1e3)
            emit(closed)
            for i in [i for i in cache if i < linker.oldest_open()]:
                del cache[i]

    def emit(closed) -> None:
        for r in closed:
            if isinstance(r, Suppressed):
                suppressed.append(r)
                continue
            findings.append(r)
            key_images.append(cache[r.peak_slice])
            if on_finding is not None:
                on_finding(r, direction())

    t_start = time.perf_counter()
    it = iter(stream)
    n = 0
    while True:
        t0 = time.perf_counter()
        s = next(it, None)
        times["read"].append((time.perf_counter() - t0) * 1e3)
        if s is None:
            times["read"].pop()  # the end-of-stream wait is not a slice read
            break
        n += 1
        spacing = spacing or s.pixel_spacing_mm
        handle(ring.push(s))
    handle(ring.flush())
    emit(linker.close())
    total = time.perf_counter() - t_start

    rejected = getattr(detector, "rejected", None)
    warnings = list(getattr(stream, "warnings", []))
    if rejected:
        reasons: dict[str, int] = {}
        for _, why in rejected:
            key = why.split(":")[0]
            reasons[key] = reasons.get(key, 0) + 1
        warnings.append(f"plausibility rule (edge/ct/plausibility.py) rejected {len(rejected)} detection(s) on "
                        f"{len({d.slice_index for d, _ in rejected})} slice(s): "
                        + ", ".join(f"{k}: {v}" for k, v in sorted(reasons.items())))
    d = direction()
    if d < 0:
        findings = [reverse_finding(f, n) for f in findings]
        suppressed = [Suppressed(reverse_finding(x.finding, n), x.reason, x.extent_mm) for x in suppressed]
    order = sorted(range(len(findings)), key=lambda j: (findings[j].slice_start, findings[j].peak_slice, findings[j].box))
    stages = {name: _stats(v) for name, v in times.items()}
    for name, v in getattr(detector, "timing", {}).items():
        stages[f"detect.{name}"] = _stats(v)
    timing = {"total_s": round(total, 3), "slices_per_s": round(n / total, 2) if total > 0 else None,
              "stages_ms": stages}
    return ScanResult(
        slices=n, findings=[findings[j] for j in order], suppressed=sorted(suppressed, key=lambda x: x.finding.slice_start),
        warnings=warnings, direction=d, k=k, timing=timing,
        key_images=[key_images[j] for j in order], pixel_spacing_mm=spacing,
        series_hash=getattr(stream, "series_hash", ""),
    )


def default_model_path() -> Path:
    """``edge/ct/assets/ctdet-k3.onnx`` inside the installed package (it may not exist yet)."""
    from importlib.resources import files

    return Path(str(files("edge.ct").joinpath("assets", "ctdet-k3.onnx")))


def open_model_detector(model: str | Path | None, backend: str = "auto", score_threshold: float | None = None,
                        lumen: bool | None = None):
    """(ModelDetector, backend Choice, model path). ModelError when the model or its spec is missing.

    lumen: None = as the spec says (``extra["lumen"]["enabled"]``); True / False switch the vessel-lumen stage on or
    off (on with the spec's parameters, or the defaults of ``edge.ct.lumen.LumenParams`` without a block)."""
    from edge.backends import open_backend
    from edge.spec import load_spec

    path = Path(model) if model else default_model_path()
    if not path.is_file():
        hint = "pass --model PATH" if model else "the CT detector is not installed; train/export it or pass --model PATH"
        raise ModelError(f"{path}: model not found ({hint})")
    spec = load_spec(path)
    be, choice = open_backend(path, backend)
    try:
        from dataclasses import replace

        from edge.ct.lumen import LumenParams
        lp = LumenParams.from_spec(spec)
        if lumen is not None:
            block = (spec.extra or {}).get("lumen")
            lp = replace(LumenParams.from_dict(block) if isinstance(block, dict) else LumenParams(), enabled=bool(lumen))
        return ModelDetector(be, spec, score_threshold, lumen=lp), choice, path
    except Exception:
        be.close()
        raise
