"""A small corpus of broken inputs, made on demand: what the readers must refuse or flag, never pass as good.

    truncated_clip(path)        an MJPEG AVI cut in half: decodable, but fewer frames than its header states
    clip(path)                  the same clip whole (the control)
    truncated_cine(path)        an ultrasound DICOM cine whose pixel data stops part-way
    truncated_ct_slice(folder)  a synthetic CT series with one slice cut before its Modality/pixels
    rt_dose(path)               a multi-frame RT Dose object: pixels and frames, but not ultrasound
    garbage(path)               random bytes (any suffix: .mp4, .dcm, .png)
    make_corpus(folder)         all of the above in one folder -> {name: path}

``python -m edge.faults OUT`` writes the corpus to OUT. Shipped in the package (not hidden in tests/) so the
tests can import it under pytest's importlib mode and a user can try the error messages.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

RT_DOSE_SOP = "1.2.840.10008.5.1.4.1.1.481.2"  # RT Dose Storage


def demo_frames(n: int = 40, size: tuple[int, int] | None = (320, 240)) -> list[np.ndarray]:
    """The first ``n`` frames of the bundled normal compression clip (BGR), resized to ``size`` (w, h)."""
    from edge.assets import DEMO_CLIPS, asset

    cap = cv2.VideoCapture(str(asset(DEMO_CLIPS["normal"])))
    frames = []
    try:
        while len(frames) < n:
            ok, f = cap.read()
            if not ok:
                cap.set(cv2.CAP_PROP_POS_FRAMES, 0)  # loop the clip for long requests
                ok, f = cap.read()
                if not ok:
                    break
            frames.append(cv2.resize(f, size, interpolation=cv2.INTER_AREA) if size else f)
    finally:
        cap.release()
    return frames


def clip(path: str | Path, n: int = 40, fps: float = 30.0, size: tuple[int, int] | None = (320, 240)) -> Path:
    """A whole MJPEG AVI of ``n`` demo frames: its header states ``n`` frames, and all ``n`` decode."""
    path = Path(path)
    frames = demo_frames(n, size)
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    if not writer.isOpened():
        raise RuntimeError(f"{path}: OpenCV cannot write MJPEG AVI here")
    for f in frames:
        writer.write(f)
    writer.release()
    return path


def truncate(path: str | Path, keep: float | int) -> Path:
    """Cut a file to ``keep`` bytes (an int) or to that fraction of its size (a float in (0, 1))."""
    path = Path(path)
    data = path.read_bytes()
    n = keep if isinstance(keep, int) else int(len(data) * keep)
    path.write_bytes(data[:n])
    return path


def truncated_clip(path: str | Path, n: int = 40, keep: float = 0.5, fps: float = 30.0) -> Path:
    """An AVI whose header says ``n`` frames but whose data stops after about ``keep`` of them. FFmpeg
    decodes the frames that are there and then reports a normal end of file."""
    return truncate(clip(path, n, fps), keep)


def truncated_cine(path: str | Path, n: int = 8, keep: float = 0.6) -> Path:
    """An ultrasound multi-frame DICOM (NumberOfFrames = n) cut inside its pixel data."""
    from edge.sources.testing import make_dicom

    frames = np.stack([np.full((32, 48), 10 + 20 * i, np.uint8) for i in range(n)])
    return truncate(make_dicom(Path(path), frames), keep)


def truncated_ct_slice(folder: str | Path, n: int = 6, which: int = 2, keep: int = 200) -> tuple[list[Path], Path]:
    """A synthetic CT series of ``n`` slices in ``folder``; slice ``which`` is cut to ``keep`` bytes (200: just
    past the File Meta, before the Modality). Returns (all paths, the truncated one)."""
    from edge.ct.testing import write_series

    paths = write_series(Path(folder), n=n)
    return paths, truncate(paths[which], keep)


def rt_dose(path: str | Path, frames: int = 4, shape: tuple[int, int] = (16, 16)) -> Path:
    """A multi-frame RT Dose object (Modality RTDOSE, 32-bit dose grid): it has pixels and NumberOfFrames,
    so it looks like a cine to a reader that checks only those."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    path = Path(path)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = RT_DOSE_SOP
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = RT_DOSE_SOP
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "RTDOSE"
    ds.PatientName, ds.PatientID = "Synthetic^Dose", "SYNTH-DOSE"
    ds.Rows, ds.Columns = shape
    ds.NumberOfFrames = frames
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 32, 32, 31, 0
    ds.DoseUnits, ds.DoseType, ds.DoseSummationType = "GY", "PHYSICAL", "PLAN"
    ds.DoseGridScaling = 1e-4
    ds.GridFrameOffsetVector = [float(2 * i) for i in range(frames)]
    ds.FrameIncrementPointer = 0x3004000C
    grid = np.arange(frames * shape[0] * shape[1], dtype="<u4").reshape(frames, *shape)
    ds.PixelData = grid.tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def garbage(path: str | Path, size: int = 4096, seed: int = 0) -> Path:
    """``size`` random bytes (no header of any format)."""
    path = Path(path)
    path.write_bytes(np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes())
    return path


def make_corpus(folder: str | Path) -> dict[str, Path]:
    """Every fault above in ``folder`` (CT series in ``folder/ct-truncated``)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    _, ct_cut = truncated_ct_slice(folder / "ct-truncated")
    return {
        "clip": clip(folder / "clip.avi"),
        "truncated_clip": truncated_clip(folder / "truncated-clip.avi"),
        "truncated_cine": truncated_cine(folder / "truncated-cine.dcm"),
        "truncated_ct_folder": folder / "ct-truncated",
        "truncated_ct_slice": ct_cut,
        "rt_dose": rt_dose(folder / "rt-dose.dcm"),
        "garbage_mp4": garbage(folder / "garbage.mp4"),
        "garbage_dcm": garbage(folder / "garbage.dcm", seed=1),
        "garbage_png": garbage(folder / "garbage.png", seed=2),
    }


if __name__ == "__main__":  # pragma: no cover - a convenience for trying the error messages by hand
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "dvt-edge-faults")
    for name, p in make_corpus(out).items():
        print(f"{name}: {p}")
