"""Frame sources: open any supported input from one user string.

    open_source("scan.mp4")              -> VideoFileSource   (any file OpenCV/FFmpeg decodes)
    open_source("cine.dcm")              -> DicomCineSource   (multi-frame DICOM, by its 'DICM' marker)
    open_source("frames/", fps=20)       -> ImageFolderSource (PNG/JPEG/BMP/TIFF, natural order)
    open_source("0"), ("/dev/video0")    -> CameraSource      (live)
    open_source("rtsp://host/stream")    -> StreamSource      (live; rtsp(s), rtmp(s), http(s), udp, rtp, srt, tcp)
    open_source("igtl://host:18944/Dev") -> IgtlSource        (live; OpenIGTLink IMAGE messages, pyigtl)

``pace=True`` makes a file, folder or cine release frames at its recorded rate, emulating a live probe.
``fps`` gives an image folder its rate, a file without timing a fallback rate, and a camera a requested rate.

The decision is a registry of kinds (:data:`SOURCE_KINDS`, kind name -> :class:`SourceKind`), tried in
order; add a kind with :func:`register_source`. ``open_source(spec, kind=...)`` skips the detection.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from edge.errors import InputError
from edge.sources.base import Frame, FrameSource

__all__ = [
    "Frame",
    "FrameSource",
    "SourceKind",
    "SOURCE_KINDS",
    "detect_kind",
    "open_source",
    "register_source",
]

#: ``opener(spec, fps=..., pace=...) -> FrameSource``
Opener = Callable[..., FrameSource]

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")
_DEV_VIDEO = re.compile(r"^/dev/video\d+$")
# Extensions never probed with pydicom(force=True): definitely video containers.
_VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".wmv", ".mpg", ".mpeg", ".ts", ".h264", ".gif"})


@dataclass(frozen=True)
class SourceKind:
    """One kind of input: ``matches(spec)`` says whether a user string is of this kind; ``open`` opens it."""

    matches: Callable[[str], bool]
    open: Opener


def _is_dicom_file(path: Path) -> bool:
    from edge.sources.dicom_cine import has_dicom_preamble

    if has_dicom_preamble(path) or path.suffix.lower() in (".dcm", ".dicom"):
        return True  # a broken .dcm gets the DICOM reader's message, not "not a decodable video"
    if path.suffix.lower() in _VIDEO_SUFFIXES:
        return False
    # No Part 10 preamble (old/raw exports): accept it if pydicom reads it as an image object.
    try:
        from edge.sources.dicom_cine import read_header

        ds = read_header(path)
    except InputError:
        return False
    return "PixelData" in ds or "SOPClassUID" in ds


def _is_file(spec: str) -> bool:
    return Path(spec).is_file()


def _open_dicom(spec: str, *, fps: float | None = None, pace: bool = False) -> FrameSource:
    from edge.sources.dicom_cine import DicomCineSource

    return DicomCineSource(spec, pace=pace, fps=fps)


def _open_video(spec: str, *, fps: float | None = None, pace: bool = False) -> FrameSource:
    from edge.sources.video import VideoFileSource

    return VideoFileSource(spec, fps=fps, pace=pace)


def _open_folder(spec: str, *, fps: float | None = None, pace: bool = False) -> FrameSource:
    from edge.sources.images import ImageFolderSource

    return ImageFolderSource(spec, fps=fps, pace=pace)


def _open_camera(spec: str, *, fps: float | None = None, pace: bool = False) -> FrameSource:
    from edge.sources.video import CameraSource

    return CameraSource(int(spec) if spec.strip().isdigit() else spec, fps=fps)


def _open_stream(spec: str, *, fps: float | None = None, pace: bool = False) -> FrameSource:
    from edge.sources.video import StreamSource

    return StreamSource(spec, fps=fps)


def _open_igtl(spec: str, *, fps: float | None = None, pace: bool = False) -> FrameSource:
    from edge.sources.igtl import IgtlSource

    return IgtlSource(spec)


#: kind -> SourceKind, tried in this order by :func:`detect_kind`. Openers import their module lazily so
#: that opening a camera never imports pydicom.
SOURCE_KINDS: dict[str, SourceKind] = {
    "igtl": SourceKind(lambda s: s.lower().startswith("igtl://"), _open_igtl),  # OpenIGTLink (edge/sources/igtl.py)
    "folder": SourceKind(lambda s: Path(s).is_dir(), _open_folder),
    "dicom": SourceKind(lambda s: _is_file(s) and _is_dicom_file(Path(s)), _open_dicom),
    "video": SourceKind(_is_file, _open_video),
    "camera": SourceKind(lambda s: s.strip().isdigit() or bool(_DEV_VIDEO.match(s)), _open_camera),
    "stream": SourceKind(lambda s: bool(_URL.match(s)), _open_stream),
}


def register_source(kind: str, matches: Callable[[str], bool], opener: Opener, *, first: bool = True) -> None:
    """Add (or replace) a kind of input. ``first=True`` tries it before the built-in kinds, so a specific
    kind (say ``"usb-probe://"``) wins over the generic ones."""
    entry = SourceKind(matches, opener)
    SOURCE_KINDS.pop(kind, None)
    if first:
        items = [(kind, entry), *SOURCE_KINDS.items()]
        SOURCE_KINDS.clear()
        SOURCE_KINDS.update(items)
    else:
        SOURCE_KINDS[kind] = entry


def detect_kind(spec: str) -> str:
    """The kind of input a user string names; InputError if none."""
    for kind, entry in SOURCE_KINDS.items():
        if entry.matches(spec):
            return kind
    raise InputError(
        f"SOURCE not found: '{spec}' is not an existing file or folder, a camera index, or a stream URL"
    )


def open_source(
    spec: str | os.PathLike, *, fps: float | None = None, pace: bool = False, kind: str | None = None
) -> FrameSource:
    """Open the input named by ``spec`` (see the module docstring). The caller owns the returned source
    and closes it (use it as a context manager). Raises :class:`InputError` naming ``spec``."""
    spec = os.fspath(spec)
    if fps is not None and not (fps > 0):
        raise InputError(f"--fps must be > 0, got {fps}")
    if kind is None:
        kind = detect_kind(spec)
    elif kind not in SOURCE_KINDS:
        raise InputError(f"unknown source kind '{kind}'; known kinds: {', '.join(SOURCE_KINDS)}")
    return SOURCE_KINDS[kind].open(spec, fps=fps, pace=pace)
