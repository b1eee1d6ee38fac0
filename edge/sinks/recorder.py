"""Record the rendered overlay to a video file (MP4 or WebM) with OpenCV's VideoWriter.

:class:`VideoRecorder` renders and encodes on the caller's thread. The ultrasound job wraps it in
:class:`edge.sinks.background.BackgroundRecorder`, which does that work on its own thread behind a bounded
queue, so the frame loop (and the verdict) never waits for the video.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from edge.atomic import commit, temp_name
from edge.errors import OutputError
from edge.sinks.base import SinkBase
from edge.sinks.history import CurveHistory
from edge.sinks.overlay import render_overlay
from edge.us.types import FrameResult

#: Codecs tried in order, per file suffix. For .mp4, avc1 (H.264) plays in browsers and most viewers but is
#: missing from the pip OpenCV wheels (no licensed encoder); mp4v (MPEG-4 Part 2) is always there and plays
#: in VLC/ffplay but not in browsers. For .webm, VP8 is in the pip wheels' FFmpeg and plays in every current
#: browser: the web UI records WebM for that reason.
CODECS_BY_SUFFIX = {".mp4": ("avc1", "mp4v"), ".webm": ("VP80",)}

# Once a codec failed to open in this process it will fail again: skip it, so FFmpeg's complaint about the
# missing encoder is printed at most once per process instead of once per recording.
_unavailable: set[str] = set()


class VideoRecorder(SinkBase):
    """A sink that writes ``render_overlay`` of every result to ``path`` (.mp4 or .webm) at a fixed ``fps``.

    The file is opened on the first frame (the video size is that frame's size, rounded up to even numbers
    because 4:2:0 encoders need even sizes; padding is black; later frames of another size are resized).
    ``codec`` is the fourcc that opened (None before the first frame); ``codec_note`` says why a
    fallback was taken, for the run's log. The video plays at ``fps`` whatever the processing rate:
    frames dropped by the newest-frame slot are simply absent, so a live recording runs faster than life
    when frames were dropped.

    ``history``: the :class:`CurveHistory` behind the sparkline; by default the recorder's own. The
    recorder appends every result to it, so pass one only if nothing else appends to it.

    ``height``: the video's height in pixels (the width follows the frame's aspect ratio); None keeps the
    frame's own size. A frame taller than ``height`` is reduced FIRST and the overlay is then drawn once,
    at the output size (:meth:`prepare` + :meth:`render`), never drawn at the source size and resized.

    Raises :class:`OutputError` naming ``path`` when no codec can open it.

    Atomic: frames go to a hidden temporary file beside ``path`` (:func:`edge.atomic.temp_name`), which
    ``close()`` finishes (the container's index is written on release, so the file plays) and renames
    onto ``path``. A run cut short (an error, Ctrl-C, SIGTERM) still closes the recorder and leaves a
    playable video of the frames so far; a recorder that got no frame leaves no file.
    """

    def __init__(self, path: str | Path, fps: float, *, codecs: tuple[str, ...] | None = None,
                 history: CurveHistory | None = None, height: int | None = None):
        if not fps or fps <= 0:
            raise ValueError(f"VideoRecorder({path}): fps must be > 0, got {fps!r}")
        self.path = Path(path)
        if codecs is None:
            suffix = self.path.suffix.lower()
            if suffix not in CODECS_BY_SUFFIX:
                raise OutputError(f"{self.path}: cannot record video to '{suffix or 'no suffix'}'; "
                                  f"name the file .mp4 or .webm")
            codecs = CODECS_BY_SUFFIX[suffix]
        if height is not None and height < 2:
            raise ValueError(f"VideoRecorder({path}): height must be >= 2 pixels, got {height!r}")
        self.fps = float(fps)
        self.height = height
        self._scale: dict[tuple[int, int], float] = {}  # source (h, w) -> output scale (<= 1)
        self.codecs = tuple(codecs)
        self.history = history if history is not None else CurveHistory()
        self.codec: str | None = None
        self.codec_note: str = ""
        self.size: tuple[int, int] | None = None  # (width, height) of the video
        self.frames_written = 0
        self._writer: cv2.VideoWriter | None = None
        self._buf: np.ndarray | None = None  # reused render target
        self._closed = False

    def write(self, result: FrameResult) -> None:
        """Render ``result`` (the recorder's own history is appended first) and encode it."""
        result = self.prepare(result)
        self.history.append(result)
        self.write_image(self.render(result, self.history))

    def scale_for(self, frame_hw: tuple[int, int]) -> float:
        """Output / source scale for frames of ``frame_hw`` (1.0 when no ``height`` or the frame is smaller)."""
        s = self._scale.get(frame_hw)
        if s is None:
            s = 1.0 if self.height is None or frame_hw[0] <= self.height else self.height / frame_hw[0]
            self._scale[frame_hw] = s
        return s

    def prepare(self, result: FrameResult) -> FrameResult:
        """Cheap, on the caller's thread: ``result`` with its region mapped to the output size (the frame
        itself is reduced later, in :meth:`render`). The same object when no reduction is needed."""
        s = self.scale_for(result.frame.shape[:2])
        if s == 1.0:
            return result
        x, y, w, h = result.region
        return replace(result, region=(x * s, y * s, w * s, h * s))

    def render(self, prepared: FrameResult, history) -> np.ndarray:
        """The overlay image of a :meth:`prepare`-d result, drawn once at the output size into a reused
        buffer (valid until the next call). ``history``: a :class:`CurveHistory` or a snapshot of one."""
        frame = prepared.frame
        h, w = frame.shape[:2]
        s = self.scale_for((h, w))
        if s != 1.0:
            size = (max(2, round(w * s)), max(2, round(h * s)))
            frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
            prepared = replace(prepared, frame=frame)
            h, w = frame.shape[:2]
        if self._buf is None or self._buf.shape[:2] != (h, w):
            self._buf = np.empty((h, w, 3), np.uint8)
        return render_overlay(prepared, history, out=self._buf)

    def write_image(self, image: np.ndarray) -> None:
        """Encode an already rendered HxWx3 uint8 BGR image (for callers that render once for several uses)."""
        if self._closed:
            raise OutputError(f"{self.path}: the recorder is closed")
        if self._writer is None:
            self._open(image.shape[1], image.shape[0])
        vw, vh = self.size
        h, w = image.shape[:2]
        if (w, h) != (vw, vh):
            if w <= vw and h <= vh and vw - w <= 1 and vh - h <= 1:  # odd size padded to even
                image = cv2.copyMakeBorder(image, 0, vh - h, 0, vw - w, cv2.BORDER_CONSTANT, value=0)
            else:
                image = cv2.resize(image, (vw, vh), interpolation=cv2.INTER_AREA)
        self._writer.write(image)
        self.frames_written += 1

    def _open(self, width: int, height: int) -> None:
        if not self.path.parent.is_dir():
            raise OutputError(f"{self.path}: cannot record video: folder {self.path.parent} does not exist")
        size = (width + width % 2, height + height % 2)
        tried, failed = [], []
        for cc in self.codecs:
            if cc in _unavailable:
                tried.append(cc)
                continue
            writer = _try_open(temp_name(self.path), cc, self.fps, size)
            if writer is not None:
                self._writer, self.codec, self.size = writer, cc, size
                # only now is the path known to be fine, so the earlier failures were the codecs' own
                _unavailable.update(failed)
                if tried:
                    self.codec_note = (f"recording with {cc}: {', '.join(tried)} "
                                       "not available in this OpenCV build")
                return
            failed.append(cc)
            tried.append(cc)
        temp_name(self.path).unlink(missing_ok=True)
        raise OutputError(f"{self.path}: cannot open a video writer (tried codecs {', '.join(self.codecs)}); "
                          f"check the folder is writable and the name ends in .mp4 or .webm")

    def close(self) -> None:
        """Finish the file (idempotent). A recorder that never got a frame writes no file."""
        if self._closed:
            return
        self._closed = True
        if self._writer is not None:
            self._writer.release()
            self._writer = None
            commit(temp_name(self.path), self.path)
        self._buf = None


def _try_open(path: Path, fourcc: str, fps: float, size: tuple[int, int]) -> cv2.VideoWriter | None:
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)  # a failed try is expected, not news
    try:
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, size)
    finally:
        cv2.utils.logging.setLogLevel(level)
    if writer.isOpened():
        return writer
    writer.release()
    return None
