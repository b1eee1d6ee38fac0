"""A multi-frame ultrasound DICOM cine loop (pydicom 3), played frame by frame.

Pixels:
    MONOCHROME2 -> ``HxW uint8``; MONOCHROME1 -> ``HxW uint8`` inverted (so bright = echogenic);
    RGB, YBR_FULL, YBR_FULL_422, YBR_ICT/RCT -> ``HxWx3 uint8`` BGR (pydicom converts YBR to RGB, then the
    channels are swapped to OpenCV order); PALETTE COLOR -> the LUT applied, BGR.
    Unlike the video sources the Photometric Interpretation is trusted (no grey detection): a colour
    cine stays colour even when its first frame is grey, since a Doppler box may appear later.
    More than 8 bits stored -> the top 8 bits.
Compressed transfer syntaxes decode through pydicom's plugins: JPEG baseline/extended and JPEG 2000 with
    Pillow (installed with the runtime); JPEG lossless and JPEG-LS need ``pylibjpeg pylibjpeg-libjpeg``, and
    faster JPEG 2000 ``pylibjpeg-openjpeg``; the error says which. MPEG/H.264-encapsulated cines are not
    supported (pydicom has no video decoder).
Timing (t_media in seconds from the first frame), first found wins:
    FrameTimeVector (0018,1065) (cumulative ms increments), FrameTime (0018,1063) ms per frame (the one
    named by FrameIncrementPointer first when both are present), CineRate (0018,0040) or
    RecommendedDisplayFrameRate (0008,2144) frames/s, then the ``fps`` argument; else t_media is None.
    ``timing`` names which one was used.
pace=True: frames are released at the recorded times (sleep until ``t_start + t_media``), emulating a live
    device; the capture thread then uses the newest-frame slot.
Privacy: ``name`` is the file's base name; no patient, study or device identifier is kept on the source
    or put in ``Frame.meta``.
Memory: frames are decoded one at a time from the file (``pydicom.pixels.iter_pixels``), so a long cine
    costs one frame of memory, not the whole loop. Each yielded array is freshly allocated and writeable.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from edge.dicom_codecs import decodability, install_hint, transfer_syntax
from edge.errors import InputError, SourceError
from edge.sources.base import Frame, SourceBase
from edge.sources.video import Pacer

SUPPORTED_PHOTOMETRIC = (
    "MONOCHROME1", "MONOCHROME2", "RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT", "PALETTE COLOR",
)

# FrameIncrementPointer values (tags) that name a timing attribute.
_TAG_FRAME_TIME = 0x00181063
_TAG_FRAME_TIME_VECTOR = 0x00181065


def _pydicom():
    # Imported lazily so `import edge.sources` stays cheap for camera/video-only use.
    import pydicom
    from pydicom.errors import InvalidDicomError

    return pydicom, InvalidDicomError


def has_dicom_preamble(path: str | os.PathLike) -> bool:
    """True if the file has the DICOM Part 10 marker 'DICM' at byte 128."""
    try:
        with open(path, "rb") as fh:
            fh.seek(128)
            return fh.read(4) == b"DICM"
    except OSError:
        return False


def read_header(path: str | os.PathLike, *, force_ok: bool = True):
    """Read a DICOM data set without loading pixel data into memory (large values are deferred: read on
    access from the file). Files without the Part 10 preamble are read with ``force=True`` and accepted
    only if they look like an image object. Raises :class:`InputError` naming the file."""
    pydicom, InvalidDicomError = _pydicom()
    path = Path(path)
    not_dicom = f"'{path.name}' is not a readable DICOM file"
    try:
        return pydicom.dcmread(path, defer_size="64 KB")
    except InvalidDicomError as exc:
        if not force_ok:
            raise InputError(f"{not_dicom}: no DICOM header ('DICM' marker)") from exc
        try:
            ds = pydicom.dcmread(path, defer_size="64 KB", force=True)
        except Exception as exc2:  # noqa: BLE001 - garbage bytes raise anything
            raise InputError(f"{not_dicom}: no DICOM header ('DICM' marker)") from exc2
        if "SOPClassUID" not in ds and "PixelData" not in ds:
            raise InputError(f"{not_dicom}: no DICOM header ('DICM' marker)") from exc
        return ds
    except OSError as exc:
        raise InputError(f"{not_dicom}: {exc.strerror or exc}") from exc
    except Exception as exc:  # noqa: BLE001 - pydicom raises assorted errors on truncated/corrupt files
        raise InputError(f"{not_dicom}: {type(exc).__name__}: {exc}; the file may be truncated or corrupt") from exc


def _floats(value) -> list[float]:
    if value is None:
        return []
    try:
        return [float(v) for v in value] if not isinstance(value, (str, bytes)) and hasattr(value, "__iter__") else [float(value)]
    except (TypeError, ValueError):
        return []


def frame_times(ds, n_frames: int, fps: float | None = None) -> tuple[np.ndarray | None, float | None, str]:
    """Per-frame media times (seconds, from 0), the nominal fps, and the name of the timing source."""
    pointers = {int(t) for t in _tags(ds.get("FrameIncrementPointer"))}
    order = ["FrameTimeVector", "FrameTime"]
    if _TAG_FRAME_TIME in pointers and _TAG_FRAME_TIME_VECTOR not in pointers:
        order.reverse()
    for key in order:
        if key == "FrameTimeVector":
            vec = _floats(ds.get("FrameTimeVector"))
            if len(vec) == n_frames and all(np.isfinite(vec)) and min(vec[1:], default=0.0) >= 0 and sum(vec[1:]) > 0:
                t = np.cumsum(np.asarray(vec, dtype=np.float64)) / 1000.0
                t -= t[0]  # the first increment should be 0; start the clock at the first frame regardless
                span = t[-1] - t[0]
                return t, ((n_frames - 1) / span if span > 0 else None), "FrameTimeVector"
        else:
            ft = _floats(ds.get("FrameTime"))
            if ft and np.isfinite(ft[0]) and ft[0] > 0:
                return np.arange(n_frames) * (ft[0] / 1000.0), 1000.0 / ft[0], "FrameTime"
    for key in ("CineRate", "RecommendedDisplayFrameRate"):
        rate = _floats(ds.get(key))
        if rate and np.isfinite(rate[0]) and rate[0] > 0:
            return np.arange(n_frames) / rate[0], float(rate[0]), key
    if fps:
        return np.arange(n_frames) / float(fps), float(fps), "fps argument"
    return None, None, "none"


def _tags(value) -> list[int]:
    if value is None:
        return []
    if isinstance(value, int):
        return [value]
    try:
        return [int(v) for v in value]
    except TypeError:
        return []


def _check_decoder(ds, name: str) -> None:
    """Fail at open, not mid-stream, when the transfer syntax cannot be decoded here."""
    tsyntax = transfer_syntax(ds)
    if tsyntax is None:
        return  # implicit little endian assumed by pydicom
    d = decodability(tsyntax)
    if not d.known:
        raise InputError(
            f"DICOM '{name}': its pixel data is encoded as '{tsyntax.name}', which cannot be decoded here "
            "(MPEG/H.264 cines are not supported); export the cine from the scanner as JPEG or uncompressed"
        )
    if not d.ok:
        raise InputError(
            f"DICOM '{name}': no decoder for '{tsyntax.name}' is installed; run `pip install {install_hint(tsyntax)}` "
            f"(pydicom's options: {'; '.join(d.options)})"
        )


#: SOP classes whose pixels can be an ultrasound cine: the ultrasound image classes (current and retired) and
#: the secondary-capture classes scanners and converters export cines as.
ULTRASOUND_SOP_CLASSES = frozenset({
    "1.2.840.10008.5.1.4.1.1.3.1",  # Ultrasound Multi-frame Image Storage
    "1.2.840.10008.5.1.4.1.1.3",  # Ultrasound Multi-frame Image Storage (retired)
    "1.2.840.10008.5.1.4.1.1.6.1",  # Ultrasound Image Storage
    "1.2.840.10008.5.1.4.1.1.6",  # Ultrasound Image Storage (retired)
    "1.2.840.10008.5.1.4.1.1.6.2",  # Enhanced US Volume Storage
    "1.2.840.10008.5.1.4.1.1.7",  # Secondary Capture Image Storage
    "1.2.840.10008.5.1.4.1.1.7.1", "1.2.840.10008.5.1.4.1.1.7.2",  # Multi-frame SC (single bit, grey byte)
    "1.2.840.10008.5.1.4.1.1.7.3", "1.2.840.10008.5.1.4.1.1.7.4",  # Multi-frame SC (grey word, true colour)
})
#: Modalities accepted when the SOP class is missing or not one of the above: US, and "other" (OT) exports.
ULTRASOUND_MODALITIES = frozenset({"US", "OT", ""})


def check_ultrasound(ds, name: str) -> None:
    """InputError when a data set is not an ultrasound picture: its SOP class is a non-ultrasound image
    class (RT Dose, CT, MR, ...) or, for other classes, its Modality is not US/OT."""
    sop = str(ds.get("SOPClassUID", "") or "")
    if not sop and getattr(ds, "file_meta", None) is not None:
        sop = str(ds.file_meta.get("MediaStorageSOPClassUID", "") or "")
    modality = str(ds.get("Modality", "") or "").strip().upper()
    if sop in ULTRASOUND_SOP_CLASSES or (not sop and modality in ULTRASOUND_MODALITIES):
        return
    if sop and modality in ("US", "") and not sop.startswith("1.2.840.10008.5.1.4.1.1."):
        return  # a private SOP class labelled ultrasound
    try:
        from pydicom.uid import UID

        sop_name = UID(sop).name if sop else "no SOP class"
    except Exception:  # noqa: BLE001 - a malformed UID string
        sop_name = sop
    raise InputError(
        f"DICOM '{name}' is not an ultrasound cine: it is {sop_name} (Modality {modality or 'missing'}); "
        "pass an ultrasound multi-frame (cine) export of the compression scan"
    )


class DicomCineSource(SourceBase):
    """See the module docstring. live=False; frame_count = NumberOfFrames."""

    live = False

    def __init__(self, path: str | os.PathLike, pace: bool = False, *, fps: float | None = None) -> None:
        path = Path(path)
        self.path = path
        self.name = path.name  # base name only: no patient identifiers
        self.live = False
        self.paced = bool(pace)
        if not path.is_file():
            raise InputError(f"DICOM file not found: '{path}' does not exist or is not a file")
        ds = read_header(path)
        check_ultrasound(ds, self.name)
        not_cine = f"DICOM '{self.name}' is not a multi-frame image (cine)"
        if "PixelData" not in ds:
            sop = getattr(ds.get("SOPClassUID"), "name", None) or "unknown SOP class"
            raise InputError(f"{not_cine}: it holds no pixel data ({sop}); pass an ultrasound cine loop")
        if "NumberOfFrames" not in ds:
            raise InputError(
                f"{not_cine}: it is a single-frame image (no NumberOfFrames); export the cine loop, "
                "or put still images in a folder"
            )
        try:
            n = int(ds.NumberOfFrames)
        except (TypeError, ValueError) as exc:
            raise InputError(f"{not_cine}: NumberOfFrames is '{ds.NumberOfFrames}'") from exc
        if n < 1 or "Rows" not in ds or "Columns" not in ds:
            raise InputError(f"{not_cine}: NumberOfFrames={n}, Rows/Columns {'present' if 'Rows' in ds else 'missing'}")
        self.photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()
        if self.photometric not in SUPPORTED_PHOTOMETRIC:
            raise InputError(
                f"DICOM '{self.name}': Photometric Interpretation '{self.photometric}' is not supported; "
                f"expected one of {', '.join(SUPPORTED_PHOTOMETRIC)}"
            )
        _check_decoder(ds, self.name)
        self.frame_count = n
        self.rows, self.columns = int(ds.Rows), int(ds.Columns)
        self.bits_stored = int(ds.get("BitsStored", ds.get("BitsAllocated", 8)) or 8)
        self.signed = int(ds.get("PixelRepresentation", 0) or 0) == 1
        tsyntax = transfer_syntax(ds)
        self.transfer_syntax = tsyntax.name if tsyntax is not None else "Implicit VR Little Endian"
        self.modality = str(ds.get("Modality", ""))  # e.g. "US"; not an identifier
        self._times, self.fps, self.timing = frame_times(ds, n, fps)
        from edge.sources.calibration import from_dataset

        self.calibration = from_dataset(ds)  # pixel size for mm² in reports (None without usable regions)
        if self.paced and self._times is None:
            raise InputError(
                f"DICOM '{self.name}' has no frame timing (FrameTime, FrameTimeVector, CineRate); "
                "pass --fps to pace it"
            )
        self.grey = self.photometric.startswith("MONOCHROME")
        # PALETTE COLOR needs the LUT elements; keep only that data set (no identifiers are exposed).
        self._lut_ds = ds if self.photometric == "PALETTE COLOR" else None
        self._lock = threading.Lock()
        self._pixels: Iterator[np.ndarray] | None = None
        self._closed = False
        # Decode frame 0 now so a corrupt or undecodable file fails at open with InputError.
        self._first: np.ndarray | None = None
        self._first = self._next_raw(0, opening=True)
        if self._first is None:
            raise InputError(f"DICOM '{self.name}': NumberOfFrames is {n} but no frame could be read")

    # -- decoding
    def _next_raw(self, index: int, *, opening: bool = False) -> np.ndarray | None:
        from pydicom.pixels import iter_pixels

        err = InputError if opening else SourceError
        with self._lock:
            if self._closed:
                return None
            try:
                if self._pixels is None:
                    self._pixels = iter_pixels(self.path)  # reads one frame at a time from the file
                return next(self._pixels)
            except StopIteration:
                return None
            except Exception as exc:  # noqa: BLE001 - decoder plugins raise assorted errors
                raise err(
                    f"DICOM '{self.name}': frame {index} of {self.frame_count} could not be decoded "
                    f"({type(exc).__name__}: {exc}); the file is truncated or corrupt: export or copy it again"
                ) from exc

    def _to_uint8(self, arr: np.ndarray) -> np.ndarray:
        if self.photometric == "PALETTE COLOR":
            from pydicom.pixels import apply_color_lut

            arr = apply_color_lut(arr, self._lut_ds)
            if arr.dtype != np.uint8:  # 16-bit LUT entries
                arr = (arr.astype(np.uint32) >> 8).astype(np.uint8)
        elif arr.dtype != np.uint8:
            bits = max(self.bits_stored, 8)
            a = arr.astype(np.int64)
            if self.signed:
                a = a + (1 << (bits - 1))  # two's complement range -> 0 .. 2**bits-1
            arr = np.clip(a >> (bits - 8), 0, 255).astype(np.uint8)
        if self.photometric == "MONOCHROME1":
            arr = 255 - arr  # MONOCHROME1: 0 is white
        if arr.ndim == 3 and arr.shape[2] >= 3:
            return cv2.cvtColor(np.ascontiguousarray(arr[..., :3]), cv2.COLOR_RGB2BGR)  # new array
        if arr.ndim == 3:
            arr = arr[..., 0]
        # The consumer owns and may write the frame: never hand out a read-only view of a file buffer.
        return arr if arr.flags.writeable and arr.flags.owndata else arr.copy()

    # -- FrameSource

    def _frames(self) -> Iterator[Frame]:
        pacer = Pacer() if self.paced else None
        for index in range(self.frame_count):
            if index == 0 and self._first is not None:
                raw, self._first = self._first, None
            else:
                raw = self._next_raw(index)
            if raw is None:
                if self._closed:
                    return
                raise SourceError(
                    f"DICOM '{self.name}': NumberOfFrames is {self.frame_count} but the pixel data ends "
                    f"after {index} frames; the file is truncated"
                )
            t_media = float(self._times[index]) if self._times is not None else None
            image = self._to_uint8(raw)
            if pacer is not None:
                pacer.wait(t_media)
            self.frames_read += 1
            yield Frame(image=image, index=index, t_capture=time.monotonic(), t_media=t_media)

    def close(self) -> None:
        """Stop decoding and close the file. Idempotent; safe from another thread."""
        with self._lock:
            self._closed = True
            if self._pixels is not None:
                self._pixels.close()  # closes the file handle iter_pixels holds
                self._pixels = None
        self._first = None


    def __repr__(self) -> str:
        return (
            f"DicomCineSource({self.name!r}, frames={self.frame_count}, {self.rows}x{self.columns} "
            f"{self.photometric}, fps={self.fps}, timing={self.timing})"
        )
