"""Slices arriving one by one: a folder read in order, a folder being filled, or datasets from the network.

Every source is a :class:`SliceStream`: iterate it to get CTSlices with consecutive stream indices 0, 1, ...
in stream order; after the iteration ``warnings``, ``direction`` and ``count`` are final.

Out-of-order arrival (documented policy): a reorder buffer holds up to ``reorder_window``-1 slices (window 4 by
default) and releases them sorted by position. The stream's direction (+1 feet-to-head = ascending
position, -1 descending, as many scanners send head-to-feet) is taken from the order of the first slices in
the buffer; slices are then released in that direction. A slice that arrives after a neighbour further
along has already been released ("late", more than the window out of order) cannot be inserted without
renumbering what has been processed: it is dropped with a warning that says to re-run ``ct scan`` on the
stored folder, which sorts the whole series. For direction -1, stream index i is position index
``count-1-i``; :mod:`edge.ct.loop` maps findings back at the end so every report uses position order.

Per-file problems in a live stream (non-DICOM, truncated, non-CT, another series, a different pixel grid,
a duplicate position) skip that file with a warning rather than abort: the study keeps going and the
report lists what was left out. The offline folder reader (:mod:`edge.ct.dicom_series`) is stricter.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from edge.ct.dicom_series import (
    DEFAULT_DECODE_WORKERS,
    GAP_FACTOR,
    CTSeries,
    check_complete,
    check_decode_workers,
    dataset_hu,
    header_from_dataset,
    not_ct_reason,
    scan_series,
    short_uid,
)
from edge.ct.types import CTSlice
from edge.errors import InputError

DEFAULT_REORDER_WINDOW = 4  # PACS push in instance order or nearly so; 4 absorbs swaps of neighbours at a lag of 3


class SliceStream:
    """Iterable of indexed CTSlices (see module doc). Iterate once.

    warnings: human-readable lines, no identifiers (files by base name, series by hash).
    direction: +1 ascending position, -1 descending, 0 until known. count: slices yielded so far.
    series_hash: :func:`short_uid` of the series being streamed ("" until the first slice).
    """

    def __init__(self, slices: Iterable[CTSlice], *, warnings: list[str] | None = None,
                 reorder_window: int = DEFAULT_REORDER_WINDOW, presorted: bool = False, series_hash: str = ""):
        self._src = slices
        self.warnings: list[str] = warnings if warnings is not None else []
        self.window = max(2, int(reorder_window))
        self.presorted = presorted
        self.direction = 1 if presorted else 0
        self.count = 0
        self.series_hash = series_hash
        self.positions: list[float] = []  # released positions, stream order

    def __iter__(self) -> Iterator[CTSlice]:
        if self.presorted:
            for s in self._src:
                self.count += 1
                self.positions.append(s.position_mm)
                yield s
        else:
            yield from self._reordered()
        self._report_gaps()

    def _reordered(self) -> Iterator[CTSlice]:
        buf: list[CTSlice] = []
        for s in self._src:
            if not self._accept(s, buf):
                continue
            buf.append(s)
            if self.direction == 0 and len(buf) >= self.window:
                self.direction = _direction([b.position_mm for b in buf])
            # hold at most window-1 slices: the reorder lag is window-1 slices
            while self.direction != 0 and len(buf) >= self.window:
                yield self._release(buf)
        if self.direction == 0:
            self.direction = _direction([b.position_mm for b in buf]) if len(buf) > 1 else 1
        while buf:
            yield self._release(buf)

    def _accept(self, s: CTSlice, buf: list[CTSlice]) -> bool:
        pos = s.position_mm
        if any(abs(pos - b.position_mm) < 1e-3 for b in buf) or any(abs(pos - p) < 1e-3 for p in self.positions[-self.window:]):
            self.warnings.append(f"{s.meta.get('file', 'slice')}: duplicate position {pos:.2f} mm, dropped")
            return False
        if self.positions and (pos - self.positions[-1]) * self.direction < 0:
            self.warnings.append(
                f"{s.meta.get('file', 'slice')}: arrived late (position {pos:.2f} mm is behind slices already "
                f"processed, more than {self.window} out of order): dropped; re-run 'ct scan' on the stored folder"
            )
            return False
        return True

    def _release(self, buf: list[CTSlice]) -> CTSlice:
        pick = min if self.direction > 0 else max
        j = pick(range(len(buf)), key=lambda i: buf[i].position_mm)
        s = buf.pop(j)  # by position in the list: CTSlice equality would compare whole arrays
        self.positions.append(s.position_mm)
        out = dataclasses.replace(s, index=self.count)
        self.count += 1
        return out

    def _report_gaps(self) -> None:
        steps = np.abs(np.diff(self.positions))
        if len(steps) == 0:
            return
        med = float(np.median(steps))
        for i, step in enumerate(steps):
            if step > GAP_FACTOR * med:
                self.warnings.append(f"gap after received slice {i}: {step:.2f} mm vs median {med:.2f} mm "
                                     f"(about {int(round(step / med)) - 1} slice(s) missing)")


def _direction(positions: list[float]) -> int:
    """+1 when positions mostly increase in arrival order, else -1 (pairwise vote: robust to a few swaps)."""
    p = np.asarray(positions)
    votes = np.sign(p[None, :] - p[:, None])[np.triu_indices(len(p), 1)].sum()
    return 1 if votes >= 0 else -1


# --------------------------------------------------------------------------- sources


def iter_folder(path: str | os.PathLike, series_uid: str | None = None, *,
                decode_workers: int | None = None) -> SliceStream:
    """A complete folder, read in position order (ascending): the reader's strict checks apply up front.

    decode_workers: threads decoding slices ahead of the consumer (``CTSeries.prefetch``); None = the default
        (``DEFAULT_DECODE_WORKERS``), 0 = decode on the consumer's thread. The slices are the same either way."""
    workers = DEFAULT_DECODE_WORKERS if decode_workers is None else check_decode_workers(decode_workers)
    series: CTSeries = scan_series(path, series_uid)
    stream = SliceStream(series.prefetch(workers=workers), warnings=list(series.warnings), presorted=True,
                         series_hash=series.series_hash)
    stream.series = series  # type: ignore[attr-defined]
    return stream


class DatasetGate:
    """Turns received datasets into unindexed CTSlices of one series; skips the rest with a warning.

    series_uid: the series to keep (full UID or short hash); None keeps the first CT series that arrives.
    """

    def __init__(self, warnings: list[str], series_uid: str | None = None):
        self.warnings = warnings
        self.want = series_uid
        self.uid: str | None = None
        self.ref = None  # (shape, spacing, orientation) of the first slice
        self.other: dict[str, int] = {}

    def __call__(self, ds, name: str) -> CTSlice | None:
        try:
            why_not = not_ct_reason(ds)
            if why_not is not None:
                self.warnings.append(f"{name}: skipped, {why_not}")
                return None
            check_complete(ds, name)
            h = header_from_dataset(ds, name)
            uid = h.series_uid
            if self.uid is None and (self.want is None or self.want in (uid, short_uid(uid))):
                self.uid = uid
            if uid != self.uid:
                self.other[uid] = self.other.get(uid, 0) + 1
                return None
            geom = (h.shape, h.pixel_spacing_mm, tuple(round(v, 3) for v in h.orientation))
            if self.ref is None:
                self.ref = geom
            elif geom != self.ref:
                self.warnings.append(f"{name}: skipped, pixel grid {geom[:2]} differs from the series' {self.ref[:2]}")
                return None
            hu = dataset_hu(ds, name)
        except InputError as exc:
            self.warnings.append(f"skipped: {exc}")
            return None
        return CTSlice(hu=hu, index=-1, position_mm=h.position_mm, pixel_spacing_mm=h.pixel_spacing_mm,
                       thickness_mm=h.thickness_mm, series_uid=uid, sop_uid=h.sop_uid, meta={"file": name})

    def finish(self) -> None:
        for uid, n in self.other.items():
            self.warnings.append(f"series {short_uid(uid)}: {n} slice(s) received but not processed "
                                 "(one series per study; re-run 'ct scan --series-uid' on the stored folder)")


def stream_datasets(items: Iterable[tuple[str, object]], *, series_uid: str | None = None,
                    reorder_window: int = DEFAULT_REORDER_WINDOW, warnings: list[str] | None = None) -> SliceStream:
    """A SliceStream over (display name, pydicom Dataset) pairs, e.g. from the C-STORE listener.

    warnings: a list to append to (shared with the producer of ``items``); a new one when None.
    """
    warnings = warnings if warnings is not None else []
    gate = DatasetGate(warnings, series_uid)

    def gen() -> Iterator[CTSlice]:
        for name, ds in items:
            s = gate(ds, name)
            if s is not None:
                stream.series_hash = stream.series_hash or short_uid(s.series_uid)
                yield s
        gate.finish()

    stream = SliceStream(gen(), warnings=warnings, reorder_window=reorder_window)
    return stream


def _stable_files(folder: Path, idle_timeout_s: float, expected: int | None, poll_s: float, stable_s: float,
                  clock: Callable[[], float] = time.monotonic) -> Iterator[Path]:
    """Yield files in ``folder`` once their size is unchanged for ``stable_s``; stop when idle or complete.

    Names starting with '.' or ending in .part/.tmp are writers' temporary files and are waited for, not
    taken (they are renamed when complete). Files are taken in order of first sighting, then name.
    """
    seen: dict[Path, tuple[int, float]] = {}  # path -> (size, time that size was first seen)
    taken: set[Path] = set()
    last_new = clock()
    while True:
        try:
            entries = sorted(p for p in folder.iterdir() if p.is_file())
        except OSError as exc:
            raise InputError(f"{folder}: cannot list the folder being watched: {exc}") from exc
        now = clock()
        for p in entries:
            if p in taken or p.name.startswith(".") or p.suffix in (".part", ".tmp"):
                continue
            try:
                size = p.stat().st_size
            except OSError:  # renamed or removed between listing and stat
                continue
            prev = seen.get(p)
            if prev is None or prev[0] != size:
                seen[p] = (size, now)
                last_new = now  # a new or growing file counts as activity
            elif size > 0 and now - prev[1] >= stable_s:
                taken.add(p)
                last_new = now
                yield p
                if expected is not None and len(taken) >= expected:
                    return
        if clock() - last_new > idle_timeout_s:
            return
        time.sleep(poll_s)


def watch_folder(path: str | os.PathLike, idle_timeout_s: float = 10.0, *, expected_count: int | None = None,
                 poll_s: float = 0.2, stable_s: float = 1.0, series_uid: str | None = None,
                 reorder_window: int = DEFAULT_REORDER_WINDOW) -> SliceStream:
    """A folder being filled by a scanner or a copy: each file is taken when its size is stable.

    stable_s: how long a file's size must stay unchanged before it is read (1 s by default: writers that
        pause longer than that mid-file should write to a .part/.tmp name and rename when done).
    Ends after ``idle_timeout_s`` seconds without a new or growing file, or when ``expected_count`` files
    have been taken. Unreadable files are skipped with a warning (see the module doc).
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    folder = Path(path)
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder (watch needs the folder the slices are written into)")
    warnings: list[str] = []

    def datasets() -> Iterator[tuple[str, object]]:
        for p in _stable_files(folder, idle_timeout_s, expected_count, poll_s, stable_s):
            try:
                yield p.name, pydicom.dcmread(p)
            except InvalidDicomError:
                warnings.append(f"{p.name}: skipped, not a DICOM file (no DICM preamble)")
            except Exception as exc:  # truncated or corrupt: pydicom raises many types
                warnings.append(f"{p.name}: skipped, truncated or corrupt DICOM file, cannot read it "
                                f"({type(exc).__name__}); copy it again and re-run 'ct scan' on the folder")

    return stream_datasets(datasets(), series_uid=series_uid, reorder_window=reorder_window, warnings=warnings)
