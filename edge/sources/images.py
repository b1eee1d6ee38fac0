"""A folder of still images played as a sequence: exported ultrasound frames, labelled data sets.

Files: every ``.png .jpg .jpeg .bmp .tif .tiff`` (any case) directly in the folder (not sub-folders),
in natural order (``2.png`` before ``10.png``; case-insensitive). Hidden files are skipped.

Pixels: like the video sources, the first image decides the format of the whole sequence: ``HxW uint8``
when it is grey (single channel, or three equal channels), else ``HxWx3 uint8`` BGR; later images are
converted to that format. Alpha is dropped, 16-bit images keep their top 8 bits. Images may differ in
size (each frame carries its own shape).

Timing: ``t_media = index / fps`` seconds when ``fps`` is given, else None. ``pace=True`` (needs fps)
releases frames at that rate, emulating a live probe.

``Frame.meta["file"]`` is the image's base name, so results can be matched back to labels.
Each image is read when it is reached, so a folder of any size costs one image of memory.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from edge.errors import InputError, SourceError
from edge.sources.base import Frame, SourceBase
from edge.sources.video import Pacer, conform, looks_grey, to_uint8

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"})

_DIGITS = re.compile(r"(\d+)")


def natural_key(name: str) -> tuple:
    """Sort key: digit runs compare as numbers, text case-insensitively (``img2`` < ``img10`` < ``IMG11``)."""
    parts = _DIGITS.split(name)
    # Tuples of (kind, value) so a digit run never compares against text (str vs int TypeError).
    # The exact name is only the final tie-break (so "Frame_20" vs "frame_3" is decided by 20 vs 3).
    return tuple((0, int(p)) if p.isdigit() else (1, p.casefold()) for p in parts if p) + ((2, name),)


def list_images(folder: Path) -> list[Path]:
    """The image files directly in ``folder``, in natural order."""
    files = [
        p for p in folder.iterdir()
        if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file()
    ]
    return sorted(files, key=lambda p: natural_key(p.name))


def read_image(path: Path) -> np.ndarray:
    """Decode one image file to uint8 HxW or HxWx3 BGR. Raises SourceError naming the file."""
    try:
        # np.fromfile + imdecode instead of imread: imread cannot open non-ASCII paths on Windows.
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError as exc:
        raise SourceError(f"image '{path.name}' could not be read: {exc.strerror or exc}; check its permissions") from exc
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise SourceError(
            f"image '{path.name}' in '{path.parent.name}' is not a decodable PNG/JPEG/BMP/TIFF; "
            "remove or re-export it"
        )
    return to_uint8(image)


class ImageFolderSource(SourceBase):
    """See the module docstring. live=False; frame_count = number of image files."""

    live = False

    def __init__(self, path: str | os.PathLike, fps: float | None = None, *, pace: bool = False) -> None:
        folder = Path(path)
        self.path = folder
        self.name = folder.name or str(folder)
        self.live = False
        if not folder.is_dir():
            raise InputError(f"image folder not found: '{folder}' does not exist or is not a folder")
        if fps is not None and not (fps > 0):
            raise InputError(f"image folder '{self.name}': fps must be > 0, got {fps}")
        self.fps = float(fps) if fps else None
        if pace and self.fps is None:
            raise InputError(f"image folder '{self.name}': pacing needs a frame rate; pass --fps")
        self.paced = bool(pace)
        try:
            self.files = list_images(folder)
        except OSError as exc:
            raise InputError(f"image folder '{folder}' could not be listed: {exc.strerror or exc}") from exc
        if not self.files:
            raise InputError(
                f"image folder '{folder}' has no images: it holds no "
                + "/".join(sorted(s[1:].upper() for s in IMAGE_SUFFIXES))
                + " files"
            )
        self.frame_count = len(self.files)
        # The first image decides grey vs BGR for the whole sequence (consistent shapes downstream).
        self._first: np.ndarray | None = read_image(self.files[0])
        self.grey = looks_grey(self._first)
        self._closed = False


    def _frames(self) -> Iterator[Frame]:
        pacer = Pacer() if self.paced else None
        for index, path in enumerate(self.files):
            if self._closed:
                return
            if index == 0 and self._first is not None:
                image, self._first = self._first, None
            else:
                image = read_image(path)
            t_media = index / self.fps if self.fps else None
            if pacer is not None:
                pacer.wait(t_media)
            self.frames_read += 1
            yield Frame(
                image=conform(image, self.grey),
                index=index,
                t_capture=time.monotonic(),
                t_media=t_media,
                meta={"file": path.name},
            )

    def close(self) -> None:
        self._closed = True
        self._first = None


    def __repr__(self) -> str:
        return f"ImageFolderSource({self.name!r}, frames={self.frame_count}, fps={self.fps})"
