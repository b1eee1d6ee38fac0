"""The CT slice loop: slice source -> ring of k slices -> detector -> linker -> findings.

:func:`run_slice_loop` is the one loop shared by ``ct scan`` / ``ct watch`` (a folder or NIfTI file) and
``ct listen`` (C-STORE): findings are handed to ``on_finding`` the moment the linker closes their chain, while
later slices are still arriving. The detector is the :class:`edge.ct.detector.SliceDetector` Protocol.

Indices: inside the loop everything uses stream indices (0 = first slice released by the stream). When
the stream ran head-to-feet (direction -1) the result is mapped to position order at the end, so every
report uses slice indices of the position-sorted series (0 = most inferior), like ``ct scan`` on a folder.
The detector always sees its window in ascending position order, whatever the stream direction, so a
slice gets the same input (and the same detections) from a folder and from the network.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Protocol, runtime_checkable

import numpy as np

from edge.ct.detector import SliceDetector
from edge.ct.linking import Linker, LinkParams, SliceGeom, Suppressed, reverse_finding
from edge.ct.preprocess import window as hu_window
from edge.ct.ring import SliceRing
from edge.ct.types import CTSlice, Finding
from edge.errors import ConfigError
from edge.stats import timing_summary


@runtime_checkable
class SliceSource(Protocol):
    """What the loop reads besides the slices: the direction they arrive in (+1 ascending position, -1
    descending, 0 until known), warnings found on the way, and the series' hashed UID. Implemented by
    :class:`edge.ct.stream.SliceStream` (and wrappers that pass attributes through)."""

    direction: int
    warnings: list[str]
    series_hash: str

    def __iter__(self) -> Iterator[CTSlice]: ...


def as_source(slices: Iterable[CTSlice]) -> SliceSource:
    """``slices`` as a :class:`SliceSource`: a plain iterable of slices in ascending position (tests, tools)
    is wrapped as a presorted stream."""
    if isinstance(slices, SliceSource):
        return slices
    from edge.ct.stream import SliceStream

    return SliceStream(iter(slices), presorted=True)


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


def _key_image(hu: np.ndarray) -> np.ndarray:
    """The soft-tissue window (W400/L140, as the detector sees it) as uint8: what a key image shows."""
    return (hu_window(hu) * 255.0 + 0.5).astype(np.uint8)


def run_slice_loop(stream: Iterable[CTSlice], detector: SliceDetector, *, k: int | None = None,
                 link_params: LinkParams | None = None,
                 on_finding: Callable[[Finding, int], None] | None = None) -> ScanResult:
    """Run the detector over a stream and link its detections; see the module doc.

    stream: a :class:`SliceSource` of CTSlices with consecutive indices 0, 1, ... (a plain iterable is taken
        as presorted, see :func:`as_source`).
    k: window length; defaults to ``detector.k``; a different k is a ConfigError (the model was trained on k).
    on_finding(finding, direction): called live with the finding in STREAM indices, as soon as it closes.
    """
    stream = as_source(stream)
    k = detector.k if k is None else k
    if k != detector.k:
        raise ConfigError(f"--k {k} does not match the detector, which was trained on {detector.k}-slice windows")
    detector.reset()  # a detector serves many studies (listen): per-series state must not leak
    ring, linker = SliceRing(k), Linker(link_params)
    findings: list[Finding] = []
    suppressed: list[Suppressed] = []
    key_images: list[np.ndarray] = []
    cache: dict[int, np.ndarray] = {}  # windowed slices that carry detections, until their chain closes
    times: dict[str, list[float]] = {"read": [], "detect": [], "link": []}
    spacing = None
    direction = lambda: stream.direction or 1  # noqa: E731 - known once slices are released

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

    rejected = detector.rejected
    warnings = list(stream.warnings)
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
    stages = {name: timing_summary(v) for name, v in times.items()}
    for name, v in detector.timing.items():
        stages[f"detect.{name}"] = timing_summary(v)
    timing = {"total_s": round(total, 3), "slices_per_s": round(n / total, 2) if total > 0 else None,
              "stages_ms": stages}
    return ScanResult(
        slices=n, findings=[findings[j] for j in order], suppressed=sorted(suppressed, key=lambda x: x.finding.slice_start),
        warnings=warnings, direction=d, k=k, timing=timing,
        key_images=[key_images[j] for j in order], pixel_spacing_mm=spacing,
        series_hash=stream.series_hash,
    )
