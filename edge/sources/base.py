"""The FrameSource seam: anything that yields ultrasound frames with capture timestamps.

A source is opened from a user string by :func:`edge.sources.open_source` (file, folder, camera index,
device path, stream URL, DICOM cine). Iterating it yields :class:`Frame` objects in capture order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class Frame:
    """One captured frame.

    image: HxW uint8 (grey) or HxWx3 uint8 (BGR, OpenCV order). The consumer owns it once yielded: a source
        never writes into an array it has handed out.
    index: 0-based position in the source's own sequence (counts frames the source produced, so gaps in
        the indices seen downstream are frames dropped by the newest-frame slot).
    t_capture: ``time.monotonic()`` seconds when the source had the frame decoded and ready.
    t_media: presentation time in seconds from the source's own clock (video PTS, DICOM Frame Time x
        index, image folder index / fps), or None when the source has none (live camera).
    """

    image: np.ndarray
    index: int
    t_capture: float
    t_media: float | None = None
    meta: dict = field(default_factory=dict)


@runtime_checkable
class FrameSource(Protocol):
    """A stream of frames. Use as a context manager; iterate once."""

    name: str  # a display name with no patient identifiers (a file's base name, "camera 0", a URL's host)
    fps: float | None  # nominal frame rate when known
    live: bool  # True for cameras and network streams: frames arrive in real time and may be dropped
    frame_count: int | None  # number of frames when known (files), None for live sources
    # Sources built on SourceBase also count ``frames_read``, set ``ended_early`` (why the input stopped short
    # of its own end) and give ``input_facts()`` for the report; the job falls back to counts when absent.

    def __iter__(self) -> Iterator[Frame]: ...

    def close(self) -> None: ...

    def __enter__(self) -> "FrameSource": ...

    def __exit__(self, *exc) -> None: ...


class SourceBase:
    """Plumbing every concrete source shares: iterate once, and close on leaving a ``with`` block.

    Subclasses implement ``_frames()`` (the generator of frames) and ``close()``.
    """

    name: str
    _iterated: bool = False
    #: frames this source produced so far (before any slot dropped them)
    frames_read: int = 0
    #: None, or one line saying why the input ended before its own end (a truncated file, a short read)
    ended_early: str | None = None

    def input_facts(self) -> dict:
        """What the report says about the input: frames expected (the container's count when known) vs
        read, and whether the input ended early and why. Streams add their reconnects."""
        return {"frames_expected": getattr(self, "frame_count", None), "frames_read": int(self.frames_read),
                "ended_early": self.ended_early is not None, "ended_early_reason": self.ended_early}

    def __iter__(self) -> Iterator[Frame]:
        if self._iterated:
            raise RuntimeError(f"{self.name}: a frame source can be iterated only once")
        self._iterated = True
        return self._frames()

    def _frames(self) -> Iterator[Frame]:  # pragma: no cover - subclasses implement
        raise NotImplementedError

    def close(self) -> None:  # pragma: no cover - subclasses implement
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
