"""Read a folder of single-frame CT DICOM files as one position-sorted series in Hounsfield units.

Two passes: :func:`scan_series` reads every file's header only (``stop_before_pixels``: fast, no decoding),
groups by SeriesInstanceUID, sorts along the slice normal and checks the geometry; :class:`CTSeries` then
decodes slices lazily, one at a time, so a 600-slice leg CT never sits in memory at once.

What happens to each odd input (never silently; every skip is a warning in ``CTSeries.warnings``):

===============================  ===========================================================================
non-DICOM file (no DICM header)  skipped + warning (folders carry README, DICOMDIR, .DS_Store, thumbnails)
truncated / unparseable DICOM    InputError naming the file: it claims to be a slice, so dropping it would
                                 make a hole the user never hears of; an incomplete copy should be redone
Modality != CT                   skipped + warning (a dose report or a PET series next to the CT); an error
                                 when no CT file is left
two or more CT series            InputError listing each (short hash, slice count, number, description) and
                                 how to pick one (``series_uid=`` / ``--series-uid``, full UID or short hash)
mixed geometry in one series     InputError (orientation, pixel spacing or size differ): a k-slice window
                                 must share one pixel grid
duplicate position               the first file (lowest InstanceNumber) kept, the others dropped + warning
gap (> 1.5 x median spacing)     kept + warning + ``CTSeries.gaps`` (the ring then stacks slices that are
                                 further apart than the model was trained on; the user must know)
not axial                        kept + warning (the detector was trained on axial slices)
compressed pixel data            decoded via pydicom's plugins (JPEG 2000 Lossless: imagecodecs first, j2k.py);
                                 InputError naming the file, the transfer syntax and the package to install
                                 when no decoder is available
===============================  ===========================================================================

No patient identifiers leave this module: series are named by :func:`short_uid` (a hash), warnings name
files by their base name (a path the user chose, not DICOM content).
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from edge.ct import j2k as _j2k
from edge.ct.types import CTSlice
from edge.dicom_codecs import decodability, is_compressed, transfer_syntax
from edge.errors import InputError

GAP_FACTOR = 1.5  # a neighbour spacing above 1.5 x the median is a missing slice (brief of issue 4)
_ORIENT_TOL = 1e-3  # direction cosines are written with ~6 digits; anything beyond this is a real tilt
_SPACING_TOL = 1e-3  # mm
DEFAULT_DECODE_WORKERS = 2  # measured on the 2-core machine, benchmarks/results/ct-decode.md
DEFAULT_DECODE_AHEAD = 4  # slices decoded and not yet taken, at most (memory: 4 x 1 MiB for 512x512)


def short_uid(uid: str) -> str:
    """A 10-hex-digit hash naming a series/instance UID in logs, reports and file names (no raw UIDs)."""
    return hashlib.sha1(uid.encode()).hexdigest()[:10]


@dataclass(frozen=True)
class SliceHeader:
    """Geometry and rescale of one file, read without its pixels. Lengths in mm, angles as direction cosines."""

    path: Path
    series_uid: str
    sop_uid: str
    instance_number: int | None
    orientation: tuple[float, ...]  # ImageOrientationPatient: row cosines (3) then column cosines (3)
    normal: tuple[float, float, float]  # row x column: the slice normal
    position_mm: float  # ImagePositionPatient . normal
    pixel_spacing_mm: tuple[float, float]  # (row spacing, column spacing)
    shape: tuple[int, int]  # (rows, columns)
    thickness_mm: float | None
    slope: float
    intercept: float
    transfer_syntax: str


@dataclass
class CTSeries:
    """One position-sorted series. ``headers[i]`` is slice index i (0 = lowest position along the normal)."""

    headers: list[SliceHeader]
    warnings: list[str] = field(default_factory=list)
    gaps: list[tuple[int, int, float]] = field(default_factory=list)  # (index before, index after, spacing mm)
    spacing_mm: float | None = None  # median neighbour spacing along the normal

    @property
    def series_uid(self) -> str:
        return self.headers[0].series_uid

    @property
    def series_hash(self) -> str:
        return short_uid(self.series_uid)

    def __len__(self) -> int:
        return len(self.headers)

    def read_slice(self, i: int) -> CTSlice:
        """Decode slice i to HU. The returned array is new and owned by the caller."""
        h = self.headers[i]
        return CTSlice(
            hu=decode_hu(h.path), index=i, position_mm=h.position_mm, pixel_spacing_mm=h.pixel_spacing_mm,
            thickness_mm=h.thickness_mm if h.thickness_mm is not None else self.spacing_mm,
            series_uid=h.series_uid, sop_uid=h.sop_uid, meta={"file": h.path.name},
        )

    def __iter__(self) -> Iterator[CTSlice]:
        for i in range(len(self.headers)):
            yield self.read_slice(i)

    def prefetch(self, depth: int = DEFAULT_DECODE_AHEAD, workers: int = DEFAULT_DECODE_WORKERS) -> Iterator[CTSlice]:
        """Like iterating, but slices are decoded by a pool of ``workers`` threads, at most ``depth`` ahead.

        Decoding then runs beside inference instead of before it: the JPEG 2000 decoder (:mod:`edge.ct.j2k`,
        imagecodecs) and numpy release the GIL, so threads decode in parallel with ONNX Runtime and with each
        other. Slices come out in series order whatever order the workers finish in. ``depth`` bounds what is
        decoded and not yet taken by the consumer (depth x one float32 slice of memory; a slow consumer holds the
        pool back). Errors surface in order, at the slice that failed, exactly as iterating would raise them
        (earlier slices are yielded first). ``workers=0`` decodes on the consumer's thread (no pool, no lookahead).
        """
        workers = check_decode_workers(workers)
        if workers == 0:
            yield from self
            return
        from collections import deque
        from concurrent.futures import ThreadPoolExecutor

        depth = max(int(depth), workers)
        _j2k.register()  # before the workers start: pydicom's plugin table is not changed under them
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ct-decode")
        pending: deque = deque()
        nxt = 0
        try:
            while nxt < len(self.headers) or pending:
                while nxt < len(self.headers) and len(pending) < depth:
                    pending.append(pool.submit(self.read_slice, nxt))
                    nxt += 1
                s = pending.popleft().result()  # raises the slice's own error, in order
                # refill before handing the slice over, so the workers decode while the consumer infers
                while nxt < len(self.headers) and len(pending) < depth:
                    pending.append(pool.submit(self.read_slice, nxt))
                    nxt += 1
                yield s
        finally:
            for f in pending:  # a consumer that stops early (or an error) must not wait for unread slices
                f.cancel()
            pool.shutdown(wait=True, cancel_futures=True)  # at most `workers` slices still being decoded


def check_decode_workers(n) -> int:
    """The decode pool size as an int in 0..16; ConfigError otherwise (0 = decode on the consumer's thread)."""
    from edge.errors import ConfigError

    try:
        value = int(n)
    except (TypeError, ValueError):
        raise ConfigError(f"--decode-workers {n!r}: give a whole number from 0 to 16") from None
    if not 0 <= value <= 16 or (not isinstance(n, str) and value != n):
        raise ConfigError(f"--decode-workers {n}: give a whole number from 0 to 16 (0 = decode inline)")
    return value


# --------------------------------------------------------------------------- header parsing


def _float_list(ds, keyword: str, n: int, where: str) -> list[float]:
    value = ds.get(keyword)
    try:
        out = [float(v) for v in value]
    except (TypeError, ValueError) as exc:
        raise InputError(f"{where}: tag {keyword} is missing or not numeric ({value!r})") from exc
    if len(out) != n:
        raise InputError(f"{where}: tag {keyword} needs {n} values, got {len(out)}")
    return out


def header_from_dataset(ds, path: Path | str) -> SliceHeader:
    """Geometry of a parsed dataset (pixels need not be loaded). InputError names the file and the tag."""
    where = str(path)
    if int(ds.get("NumberOfFrames", 1) or 1) > 1:
        raise InputError(f"{where}: multi-frame (enhanced) CT is not supported; export single-frame slices")
    iop = _float_list(ds, "ImageOrientationPatient", 6, where)
    ipp = _float_list(ds, "ImagePositionPatient", 3, where)
    ps = _float_list(ds, "PixelSpacing", 2, where)
    row, col = np.array(iop[:3]), np.array(iop[3:])
    normal = np.cross(row, col)
    norm = float(np.linalg.norm(normal))
    if norm < 0.5:
        raise InputError(f"{where}: ImageOrientationPatient {iop} has parallel row and column directions")
    normal /= norm
    rows, cols = ds.get("Rows"), ds.get("Columns")
    if not rows or not cols:
        raise InputError(f"{where}: Rows/Columns missing")
    thick = ds.get("SliceThickness")
    sop = str(ds.get("SOPInstanceUID", "") or "")
    if not sop and getattr(ds, "file_meta", None) is not None:  # anonymisers sometimes blank the dataset copy
        sop = str(ds.file_meta.get("MediaStorageSOPInstanceUID", "") or "")
    inst = ds.get("InstanceNumber")
    ts = str(transfer_syntax(ds) or "")
    return SliceHeader(
        path=Path(path), series_uid=str(ds.get("SeriesInstanceUID", "") or ""), sop_uid=sop,
        instance_number=int(inst) if inst not in (None, "") else None,
        orientation=tuple(iop), normal=tuple(float(v) for v in normal),
        position_mm=float(np.dot(ipp, normal)), pixel_spacing_mm=(ps[0], ps[1]), shape=(int(rows), int(cols)),
        thickness_mm=float(thick) if thick not in (None, "") else None,
        slope=float(ds.get("RescaleSlope", 1) or 1), intercept=float(ds.get("RescaleIntercept", 0) or 0),
        transfer_syntax=ts,
    )


def _read_header(path: Path):
    """(dataset or None, why-not-DICOM). Raises InputError for a file that is DICOM but cannot be parsed.

    The whole file is parsed (pixel bytes read, not decoded) so that a truncated copy is caught here, before
    any slice is processed, instead of failing at slice 400 of a stream; :func:`check_complete` judges it.
    """
    import warnings as _w

    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        with _w.catch_warnings():
            _w.simplefilter("ignore")  # "End of file reached before delimiter": judged by check_complete
            ds = pydicom.dcmread(path)
    except InvalidDicomError:
        return None, "not a DICOM file (no DICM preamble)"
    except Exception as exc:  # noqa: BLE001 - pydicom raises assorted types on cut files (BytesLengthException...)
        msg = " ".join(str(exc).split())[:200]
        raise InputError(f"{path}: truncated or corrupt DICOM file ({type(exc).__name__}: {msg}); copy the file "
                         "again from the source, or move it out of the folder") from exc
    meta = getattr(ds, "file_meta", None)
    if len(ds) == 0 and (meta is None or "TransferSyntaxUID" not in meta or "MediaStorageSOPClassUID" not in meta):
        # the DICM marker is there but the file ends inside its File Meta header: a cut copy, not a non-CT file
        raise InputError(f"{path}: truncated DICOM file (it ends inside its header, {Path(path).stat().st_size} "
                         "bytes); copy the file again from the source, or move it out of the folder")
    return ds, None


#: CT Image Storage, Enhanced CT, Legacy Converted Enhanced CT
CT_SOP_CLASSES = frozenset({"1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.2.1", "1.2.840.10008.5.1.4.1.1.2.2"})


def not_ct_reason(ds) -> str | None:
    """None when ``ds`` is to be read as a CT slice, else why it is skipped ("Modality is MR (not CT)").

    A file whose File Meta says CT Image Storage but whose data set ends before its Modality is a truncated
    CT slice, not a non-CT file: it is taken as CT, so :func:`check_complete` names it as truncated."""
    modality = str(ds.get("Modality", "") or "")
    if modality == "CT":
        return None
    sop = ""
    if getattr(ds, "file_meta", None) is not None:
        sop = str(ds.file_meta.get("MediaStorageSOPClassUID", "") or "")
    sop = sop or str(ds.get("SOPClassUID", "") or "")
    if not modality and (sop in CT_SOP_CLASSES or len(ds) == 0):  # len 0: the file ends inside its header
        return None
    return f"Modality is {modality or 'missing'} (not CT)"


def check_complete(ds, where: str) -> None:
    """InputError when an image's pixel data is missing or shorter than Rows x Columns x BitsAllocated."""
    if "PixelData" not in ds:
        raise InputError(f"{where}: truncated DICOM file (it ends before its complete pixel data); copy the "
                         "file again from the source, or move it out of the folder")
    if not is_compressed(transfer_syntax(ds)):
        need = int(ds.get("Rows", 0)) * int(ds.get("Columns", 0)) * int(ds.get("BitsAllocated", 16)) // 8
        need *= int(ds.get("SamplesPerPixel", 1) or 1)
        if len(ds.PixelData) < need:
            raise InputError(f"{where}: truncated DICOM file (pixel data {len(ds.PixelData)} of {need} bytes); "
                             "copy the file again from the source, or move it out of the folder")


def decode_hu(path: Path | str, ds=None) -> np.ndarray:
    """Decode one file's pixels to (rows, cols) float32 HU. InputError names the file and what is missing."""
    import pydicom

    where = str(path)
    if ds is None:
        try:
            ds = pydicom.dcmread(path)
        except Exception as exc:  # pydicom raises many types on damaged files
            raise InputError(f"{where}: cannot read DICOM file ({type(exc).__name__}: {exc})") from exc
    return dataset_hu(ds, where)


def dataset_hu(ds, where: str) -> np.ndarray:
    """HU of a fully parsed dataset: stored values x RescaleSlope + RescaleIntercept, float32 (rows, cols)."""
    if "PixelData" not in ds:
        raise InputError(f"{where}: no pixel data (truncated file, or not an image)")
    ts = transfer_syntax(ds)
    if is_compressed(ts):
        if not _j2k.registered():
            _j2k.register()  # imagecodecs first for JPEG 2000 when installed (edge/ct/j2k.py); once

        d = decodability(ts)
        if not d.known:
            raise InputError(f"{where}: transfer syntax {ts.name} ({ts}) is not supported by pydicom")
        if not d.ok:
            need = "; ".join(d.options) or "a pixel data plugin"
            raise InputError(
                f"{where}: no decoder for {ts.name} ({ts}) installed: install one of [{need}] "
                "(for JPEG 2000: pip install pylibjpeg pylibjpeg-openjpeg)"
            )
    try:
        raw = ds.pixel_array
    except Exception as exc:  # truncated fragments, wrong lengths, codec failures
        raise InputError(f"{where}: cannot decode pixel data ({type(exc).__name__}: {exc})") from exc
    if raw.ndim != 2:
        raise InputError(f"{where}: expected one 2D slice, pixel data has shape {raw.shape}")
    slope = float(ds.get("RescaleSlope", 1) or 1)
    intercept = float(ds.get("RescaleIntercept", 0) or 0)
    hu = raw.astype(np.float32)
    if slope != 1.0:
        hu *= np.float32(slope)
    if intercept != 0.0:
        hu += np.float32(intercept)
    return hu


# --------------------------------------------------------------------------- folder scan


def _list_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def _describe_series(uid: str, headers: list[SliceHeader], extra: dict[str, tuple]) -> str:
    number, desc = extra.get(uid, ("", ""))
    label = short_uid(uid) if uid else "(no SeriesInstanceUID)"
    return f"{label} ({len(headers)} slices, series number {number or '?'}, '{desc}')"


def _pick_series(folder: Path, groups: dict[str, list[SliceHeader]], extra: dict, series_uid: str | None):
    if series_uid is not None:
        for uid in groups:
            if series_uid in (uid, short_uid(uid)):
                return uid
        listing = "; ".join(_describe_series(u, h, extra) for u, h in groups.items())
        raise InputError(f"{folder}: series '{series_uid}' not found; the folder holds: {listing}")
    if len(groups) > 1:
        listing = "; ".join(_describe_series(u, h, extra) for u, h in sorted(groups.items(), key=lambda kv: -len(kv[1])))
        raise InputError(
            f"{folder}: {len(groups)} CT series found: {listing}; pick one with --series-uid HASH (or series_uid=)"
        )
    return next(iter(groups))


def check_geometry(headers: list[SliceHeader], where: str) -> None:
    """InputError when orientation, pixel spacing or size differ within one series (first file vs others)."""
    ref = headers[0]
    for h in headers[1:]:
        what = None
        if np.max(np.abs(np.subtract(h.orientation, ref.orientation))) > _ORIENT_TOL:
            what = f"orientation {h.orientation} vs {ref.orientation}"
        elif np.max(np.abs(np.subtract(h.pixel_spacing_mm, ref.pixel_spacing_mm))) > _SPACING_TOL:
            what = f"pixel spacing {h.pixel_spacing_mm} vs {ref.pixel_spacing_mm} mm"
        elif h.shape != ref.shape:
            what = f"size {h.shape} vs {ref.shape}"
        if what:
            raise InputError(f"{where}: mixed series: {h.path.name} differs from {ref.path.name} in {what}")


def sort_and_check(headers: list[SliceHeader], warnings: list[str]) -> tuple[list[SliceHeader], list, float | None]:
    """Sort by position along the normal, drop duplicate positions, find gaps. Returns (headers, gaps, spacing)."""
    headers = sorted(headers, key=lambda h: (h.position_mm, h.instance_number if h.instance_number is not None else 0))
    kept: list[SliceHeader] = []
    for h in headers:
        if kept and abs(h.position_mm - kept[-1].position_mm) < 1e-3:
            same = h.sop_uid and h.sop_uid == kept[-1].sop_uid
            why = "a copy of the same instance" if same else "a different instance at the same position"
            warnings.append(f"duplicate position {h.position_mm:.2f} mm: {h.path.name} dropped ({why} as {kept[-1].path.name})")
            continue
        kept.append(h)
    steps = np.diff([h.position_mm for h in kept])
    spacing = float(np.median(steps)) if len(steps) else None
    gaps = []
    if spacing:
        for i, step in enumerate(steps):
            if step > GAP_FACTOR * spacing:
                gaps.append((i, i + 1, float(step)))
                missing = int(round(step / spacing)) - 1
                warnings.append(
                    f"gap between slices {i} and {i + 1}: {step:.2f} mm vs median {spacing:.2f} mm "
                    f"(about {missing} slice(s) missing)"
                )
    return kept, gaps, spacing


def scan_series(folder: str | os.PathLike, series_uid: str | None = None) -> CTSeries:
    """Read every header under ``folder`` (recursively) and return the chosen CT series, sorted and checked.

    series_uid: the full SeriesInstanceUID or its :func:`short_uid` hash; needed when the folder holds more
        than one CT series. Raises InputError (see the module table for each case).
    """
    folder = Path(folder)
    if not folder.exists():
        raise InputError(f"{folder}: no such file or folder")
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder (pass the folder holding the series' DICOM files)")
    warnings: list[str] = []
    groups: dict[str, list[SliceHeader]] = {}
    extra: dict[str, tuple] = {}
    skipped_modality: Counter = Counter()
    files = _list_files(folder)
    for path in files:
        ds, why = _read_header(path)
        if ds is None:
            warnings.append(f"{path.name}: skipped, {why}")
            continue
        why_not = not_ct_reason(ds)
        if why_not is not None:
            skipped_modality[str(ds.get("Modality", "") or "") or "none"] += 1
            warnings.append(f"{path.name}: skipped, {why_not}")
            continue
        check_complete(ds, str(path))
        h = header_from_dataset(ds, path)
        groups.setdefault(h.series_uid, []).append(h)
        extra.setdefault(h.series_uid, (ds.get("SeriesNumber", ""), str(ds.get("SeriesDescription", "") or "")))
        del ds  # headers only from here: the pixels are decoded again, one slice at a time, when read
    if not groups:
        found = f" (found modalities {dict(skipped_modality)})" if skipped_modality else ""
        raise InputError(f"{folder}: no CT DICOM files in {len(files)} file(s){found}")
    uid = _pick_series(folder, groups, extra, series_uid)
    if not uid:
        warnings.append("SeriesInstanceUID is empty in these files: all CT files were taken as one series")
    headers = groups[uid]
    check_geometry(headers, str(folder))
    headers, gaps, spacing = sort_and_check(headers, warnings)
    if abs(headers[0].normal[2]) < 0.9:
        warnings.append(f"slices are not axial (normal {tuple(round(v, 3) for v in headers[0].normal)}); "
                        "the detector was trained on axial slices")
    return CTSeries(headers=headers, warnings=warnings, gaps=gaps, spacing_mm=spacing)


def read_series(folder: str | os.PathLike, series_uid: str | None = None) -> tuple[list[CTSlice], CTSeries]:
    """Scan and decode a whole series: (slices in position order, the series with its warnings)."""
    series = scan_series(folder, series_uid)
    return list(series), series
