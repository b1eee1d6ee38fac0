"""Test doubles shipped with the CT runtime: a synthetic DICOM series writer and a deterministic detector.

Shipped (not hidden in tests/) so the tests, the benchmarks and a user without the trained model can
exercise the whole ``ct`` path: reader -> stream -> ring -> detector -> linker -> report.

The synthetic volume: air (-1000 HU) outside an elliptic body of soft tissue (40 HU), a contrast-filled
vein (180 HU) and, on chosen slices, a "clot" disc of ``CLOT_HU`` inside the vein. :class:`ThresholdDetector`
finds connected regions whose HU lies in a band: it stands in for the trained model with known answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from edge.ct.types import CTSlice, Detection

CLOT_HU = 25.0  # inside the 180 HU vein, outside the 40 HU body band used by nothing else


def synthetic_hu(shape=(64, 64), clot: tuple[int, int, int] | None = None) -> np.ndarray:
    """(rows, cols) int16 HU image; ``clot`` = (centre_row, centre_col, radius_px) or None."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.full(shape, -1000, np.int16)
    body = ((yy - h / 2) / (0.42 * h)) ** 2 + ((xx - w / 2) / (0.45 * w)) ** 2 <= 1.0
    img[body] = 40
    vein = (yy - h * 0.55) ** 2 + (xx - w * 0.35) ** 2 <= (0.12 * h) ** 2
    img[vein] = 180
    if clot is not None:
        cy, cx, r = clot
        img[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = int(CLOT_HU)
    return img


def write_slice(path: Path, hu: np.ndarray, *, position_z: float, series_uid: str, instance: int,
                spacing=(0.8, 0.8), thickness=3.0, modality="CT", orientation=(1, 0, 0, 0, 1, 0),
                study_uid: str = "1.2.826.0.1.3680043.8.498.1", sop_uid: str | None = None,
                extra: dict | None = None) -> Path:
    """Write one uncompressed CT slice (stored = HU + 1024, slope 1, intercept -1024) with pydicom.

    extra: more attributes by keyword (e.g. ImageType, SeriesDescription, AccessionNumber), set last."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    sop = sop_uid or generate_uid()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = sop
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = sop
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.Modality = modality
    ds.PatientName = "Synthetic^Phantom"
    ds.PatientID = "SYNTH0001"
    ds.SeriesNumber = 1
    ds.SeriesDescription = "synthetic"
    ds.InstanceNumber = instance
    ds.ImageOrientationPatient = [float(v) for v in orientation]
    ds.ImagePositionPatient = [-25.0, -25.0, float(position_z)]
    ds.PixelSpacing = [float(spacing[0]), float(spacing[1])]
    ds.SliceThickness = float(thickness)
    ds.Rows, ds.Columns = hu.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
    ds.PixelData = (hu.astype(np.int32) + 1024).clip(0, 65535).astype("<u2").tobytes()
    for kw, v in (extra or {}).items():
        setattr(ds, kw, v)
    ds.save_as(path, enforce_file_format=True)
    return path


def write_series(folder: Path, n: int = 12, *, z0: float = -100.0, dz: float = 3.0, shape=(64, 64),
                 clot_slices: Sequence[int] = (), series_uid: str | None = None, names: Sequence[str] | None = None,
                 skip: Sequence[int] = (), spacing=(0.8, 0.8), study_uid: str | None = None,
                 orientation=(1, 0, 0, 0, 1, 0), extra: dict | None = None) -> list[Path]:
    """Write an n-slice synthetic series; slice i sits at z0 + i*dz. Returns the written paths in i order.

    clot_slices: indices with a clot disc (radius 4 px at the vein centre). skip: indices not written (a gap).
    names: file names per index (to test that sorting ignores names); default ``s{i:03d}.dcm``.
    study_uid, orientation, extra: passed to :func:`write_slice` (a study of several series, a reformat,
    a localizer's ImageType, ...).
    """
    from pydicom.uid import generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    uid = series_uid or generate_uid()
    h, w = shape
    clot = (int(h * 0.55), int(w * 0.35), 4)
    paths = []
    for i in range(n):
        if i in skip:
            continue
        name = names[i] if names is not None else f"s{i:03d}.dcm"
        hu = synthetic_hu(shape, clot if i in clot_slices else None)
        kw = {"study_uid": study_uid} if study_uid else {}
        paths.append(write_slice(folder / name, hu, position_z=z0 + i * dz, series_uid=uid, instance=i + 1,
                                 spacing=spacing, orientation=orientation, extra=extra, **kw))
    return paths


@dataclass
class ThresholdDetector:
    """A deterministic stand-in for the model: one box per connected region with lo <= HU <= hi on the centre slice.

    Implements :class:`edge.ct.detector.SliceDetector`. score = min(0.99, 0.5 + area/200) so it depends on the
    image only. ``calls`` records (centre index, window indices) for ring tests.
    """

    lo: float = CLOT_HU - 5
    hi: float = CLOT_HU + 5
    min_area: int = 4
    k: int = 3

    def __post_init__(self):
        self.calls: list[tuple[int, tuple[int, ...]]] = []
        self.rejected: list[tuple[Detection, str]] = []  # no rule here: nothing is ever rejected
        self.timing: dict[str, list[float]] = {}

    def reset(self) -> None:
        self.calls.clear()

    def detect(self, window: list[CTSlice], centre: CTSlice) -> list[Detection]:
        import cv2

        self.calls.append((centre.index, tuple(s.index for s in window)))
        mask = ((centre.hu >= self.lo) & (centre.hu <= self.hi)).astype(np.uint8)
        n, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        out = []
        for j in range(1, n):
            x, y, w, h, area = (int(v) for v in stats[j])
            if area >= self.min_area:
                out.append(Detection(centre.index, (float(x), float(y), float(x + w), float(y + h)),
                                     float(min(0.99, 0.5 + area / 200.0))))
        return out


def send_files(port: int, items, *, calling: str = "TESTSCU", called: str = "DVTEDGE", transfer_syntax=None,
               release: bool = True, host: str = "127.0.0.1"):
    """Send DICOM files or datasets over one association with pynetdicom (a test sender).

    transfer_syntax: propose only this syntax for every SOP class (default: each item's own and the two
    uncompressed ones). Returns the C-STORE status codes, or None when no association was established;
    with ``release=False`` returns (statuses, association) and leaves it open.
    """
    import pydicom
    from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
    from pynetdicom import AE

    datasets = [pydicom.dcmread(x) if not isinstance(x, pydicom.Dataset) else x for x in items]
    ae = AE(ae_title=calling)
    contexts: dict[str, set] = {}
    for ds in datasets:
        own = str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "") or ExplicitVRLittleEndian)
        want = {transfer_syntax} if transfer_syntax else {own, ExplicitVRLittleEndian, ImplicitVRLittleEndian}
        contexts.setdefault(str(ds.SOPClassUID), set()).update(want)
    for sop, syntaxes in contexts.items():
        ae.add_requested_context(sop, sorted(syntaxes))
    assoc = ae.associate(host, port, ae_title=called)
    if not assoc.is_established:
        return None
    statuses = []
    for ds in datasets:
        st = assoc.send_c_store(ds)
        statuses.append(getattr(st, "Status", None))
    if release:
        assoc.release()
        return statuses
    return statuses, assoc


def encode_lossless(src: Path, dst: Path, syntax: str) -> Path:
    """Re-encode ``src`` losslessly: JPEG Lossless SV1 with GDCM, JPEG-LS with pydicom's pyjpegls encoder."""
    import pydicom
    from pydicom import uid

    if syntax == uid.JPEGLosslessSV1:
        import gdcm

        r = gdcm.ImageReader()
        r.SetFileName(str(src))
        if not r.Read():
            raise RuntimeError(f"{src}: GDCM cannot read it")
        change = gdcm.ImageChangeTransferSyntax()
        change.SetTransferSyntax(gdcm.TransferSyntax(gdcm.TransferSyntax.JPEGLosslessProcess14_1))
        change.SetInput(r.GetImage())
        if not change.Change():
            raise RuntimeError(f"{src}: GDCM cannot encode it as JPEG Lossless")
        w = gdcm.ImageWriter()
        w.SetFileName(str(dst))
        w.SetFile(r.GetFile())
        w.SetImage(change.GetOutput())
        if not w.Write():
            raise RuntimeError(f"{dst}: GDCM cannot write it")
    else:
        ds = pydicom.dcmread(src)
        ds.compress(syntax, encoding_plugin="pyjpegls")
        ds.save_as(dst, enforce_file_format=True)
    if str(pydicom.dcmread(dst, stop_before_pixels=True).file_meta.TransferSyntaxUID) != syntax:
        raise RuntimeError(f"{dst}: re-encoding to {syntax} failed")
    return dst
