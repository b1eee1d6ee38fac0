"""Test doubles shipped with the runtime: a synthetic ultrasound DICOM cine writer (numpy + pydicom only).

Lives in the package (not in tests/) so any test can import it under pytest's importlib mode, and so users
can make a cine to try ``dvt-edge us run`` on without real data.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

US_MULTIFRAME_SOP = "1.2.840.10008.5.1.4.1.1.3.1"  # Ultrasound Multi-frame Image Storage
PATIENT_ID = "SECRET-PID-4711"  # planted identifiers: tests check they never reach a name, log or report
PATIENT_NAME = "Doe^Jane"


def make_dicom(
    path: Path,
    frames: np.ndarray | None = None,
    *,
    n: int = 5,
    photometric: str = "MONOCHROME2",
    frame_time_ms: float | None = 40.0,
    frame_time_vector: list[float] | None = None,
    cine_rate: float | None = None,
    multiframe: bool = True,
    bits: int = 8,
    regions: list[dict] | None = None,
) -> Path:
    """A synthetic ultrasound DICOM (ExplicitVRLittleEndian, Part 10 file) with patient identifiers in it,
    so tests can check they never leak. ``frames``: (N,H,W) or (N,H,W,3) pixel values as stored."""
    if frames is None:
        frames = np.stack([np.full((8, 12), 10 + 20 * i, np.uint8) for i in range(n)])  # distinct flat levels
    n = frames.shape[0]
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = US_MULTIFRAME_SOP
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = US_MULTIFRAME_SOP
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "US"
    ds.PatientName = PATIENT_NAME
    ds.PatientID = PATIENT_ID
    ds.Rows, ds.Columns = frames.shape[1], frames.shape[2]
    ds.SamplesPerPixel = 3 if frames.ndim == 4 else 1
    ds.PhotometricInterpretation = photometric
    if frames.ndim == 4:
        ds.PlanarConfiguration = 0
    ds.BitsAllocated = bits
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    if multiframe:
        ds.NumberOfFrames = n
    if frame_time_ms is not None:
        ds.FrameTime = frame_time_ms
        ds.FrameIncrementPointer = 0x00181063
    if frame_time_vector is not None:
        ds.FrameTimeVector = frame_time_vector
        ds.FrameIncrementPointer = 0x00181065
    if cine_rate is not None:
        ds.CineRate = cine_rate
    if regions is not None:  # Sequence of Ultrasound Regions: dicts of keyword -> value (PhysicalDeltaX, ...)
        items = []
        for r in regions:
            item = Dataset()
            for kw, v in r.items():
                setattr(item, kw, v)
            items.append(item)
        ds.SequenceOfUltrasoundRegions = items
    dtype = np.uint8 if bits == 8 else np.uint16
    data = frames.astype(dtype) if multiframe else frames[0].astype(dtype)
    ds.PixelData = data.tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def video_frames(path: str | Path, n: int | None = None, *, grey: bool = False) -> list[np.ndarray]:
    """The first ``n`` frames of a video file (all when None), BGR or 8-bit grey; ValueError when fewer than
    ``n`` (or none) decode. For tests and benchmarks that need a clip's frames in memory."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    frames: list[np.ndarray] = []
    try:
        while n is None or len(frames) < n:
            ok, f = cap.read()
            if not ok:
                break
            frames.append(cv2.cvtColor(f, cv2.COLOR_BGR2GRAY) if grey else f)
    finally:
        cap.release()
    if not frames or (n is not None and len(frames) < n):
        raise ValueError(f"{path}: {len(frames)} frame(s) decoded, {n or 'at least 1'} wanted")
    return frames
