"""OpenCV-backed frame sources: video files, cameras / capture cards, and network streams.

Pixel format (all three sources): OpenCV decodes to BGR. The *first* frame decides the format for the
whole source, so every frame of one source has the same shape:

* grey video (the three channels of the first frame equal within :data:`GREY_TOLERANCE` grey levels,
  checked on a 1-in-4 subsample) -> ``HxW uint8``;
* otherwise -> ``HxWx3 uint8`` BGR.

Most B-mode ultrasound is grey but is recorded into colour containers (YUV 4:2:0), whose decode differs
between channels by a few levels of rounding; carrying three identical planes would triple the
preprocessing cost for nothing. A clip whose first frame is grey but which later turns colour (a Doppler
box switched on mid-clip) is still delivered grey: pass such clips as colour by re-encoding or use the
DICOM cine, which trusts its Photometric Interpretation instead.

Ownership: ``cv2.VideoCapture.read()`` allocates a new array per call, so a yielded image is never
written again by the source.

Thread safety: ``read()`` and ``release()`` of one capture are serialised by a lock, so ``close()`` may be
called from another thread (the consumer) while the capture thread is blocked in ``read()``; it waits
for that read (at most one frame period for a camera, the read timeout for a stream).

This module also holds two helpers shared by the other sources: :func:`looks_grey` / :func:`to_uint8`
(pixel normalisation) and :class:`Pacer` (replay at the recorded rate).
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit

import cv2
import numpy as np

from edge.errors import InputError, SourceError
from edge.sources.base import Frame, SourceBase

log = logging.getLogger(__name__)

#: Largest per-pixel difference (grey levels) between channels still treated as a grey picture; codec
#: YUV->BGR rounding of a grey frame differs by up to ~3 levels.
GREY_TOLERANCE = 8

#: URL schemes handed to OpenCV's FFmpeg backend.
STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "udp", "rtp", "srt", "tcp")


# ----------------------------------------------------------------------------------------------- helpers
def looks_grey(image: np.ndarray, tolerance: int = GREY_TOLERANCE) -> bool:
    """True if ``image`` is 2-D, or HxWx3 whose channels agree within ``tolerance`` (on a 1-in-4 subsample,
    so the check costs ~1/16 of a full pass)."""
    if image.ndim == 2:
        return True
    if image.ndim != 3 or image.shape[2] < 3:
        return False
    sub = image[::4, ::4, :3].astype(np.int16)
    return bool(
        np.abs(sub[..., 0] - sub[..., 1]).max(initial=0) <= tolerance
        and np.abs(sub[..., 2] - sub[..., 1]).max(initial=0) <= tolerance
    )


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Normalise a decoded image to uint8 HxW or HxWx3 BGR: drop alpha, map 16-bit by its top 8 bits, clip
    floats assumed in [0, 1] (max <= 1) or [0, 255]."""
    if image.ndim == 3 and image.shape[2] == 4:
        image = np.ascontiguousarray(image[:, :, :3])  # drop alpha (cvtColor refuses 32-bit integer images)
    elif image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:
        return (image >> 8).astype(np.uint8)
    if np.issubdtype(image.dtype, np.floating):
        scale = 255.0 if float(np.nanmax(image, initial=0.0)) <= 1.0 else 1.0
        return np.clip(np.nan_to_num(image) * scale, 0, 255).astype(np.uint8)
    return np.clip(image, 0, 255).astype(np.uint8)


def conform(image: np.ndarray, grey: bool) -> np.ndarray:
    """Return ``image`` (uint8) as HxW when ``grey`` else HxWx3 BGR, converting only when needed."""
    if grey:
        return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else image


class Pacer:
    """Sleeps so that media time ``t_media`` is released at wall time ``t0 + t_media`` (``t0`` = first call).

    A consumer slower than the recorded rate is never "caught up" by skipping: frames simply come late
    (dropping is the newest-frame slot's job, see :mod:`edge.capture.thread`).
    """

    def __init__(self) -> None:
        self._t0: float | None = None
        self._media0 = 0.0

    def wait(self, t_media: float | None) -> None:
        if t_media is None:
            return
        now = time.monotonic()
        if self._t0 is None:
            self._t0, self._media0 = now, t_media
            return
        delay = self._t0 + (t_media - self._media0) - now
        if delay > 0:
            time.sleep(delay)


def redact_url(url: str) -> str:
    """``scheme://host[:port]`` of a URL: no credentials, path, query or fragment (they may hold tokens or
    patient/study identifiers)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:  # malformed port etc.: show only the scheme
        return f"{url.split(':', 1)[0].lower()}://?"
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    return f"{parts.scheme.lower()}://{host}" + (f":{port}" if port else "")


# ------------------------------------------------------------------------------------------- base class
class _OpenCVSource(SourceBase):
    """Shared machinery of the three OpenCV sources (not public: use the subclasses)."""

    name: str
    fps: float | None
    live: bool
    frame_count: int | None
    paced: bool = False  # True when frames are released at the recorded rate (emulates a live device)

    def __init__(self) -> None:
        self._cap: cv2.VideoCapture | None = None
        self._lock = threading.Lock()
        self._first: np.ndarray | None = None  # frame read at open (validates the source, decides grey)
        self.grey = False
        self._t_last: float | None = None  # monotonic time of the last frame read
        self.width: int | None = None
        self.height: int | None = None

    # -- subclass hooks
    def _t_media(self, index: int, prev: float | None) -> float | None:
        return None

    def _on_read_failure(self, index: int) -> bool:
        """Called when ``read()`` returns no frame: return False to end the stream normally (setting
        ``ended_early`` when it ended before its own end), True when the capture was reopened and reading
        goes on (streams), raise to fail."""
        return False

    # -- shared
    def _start(self, cap: cv2.VideoCapture, fail_message: str) -> None:
        """Adopt an opened capture: read the first frame (a source that opens but cannot decode fails here,
        at open, not later in the pipeline) and decide grey vs BGR."""
        self._cap = cap
        ok, first = cap.read()
        if not ok or first is None:
            self.close()
            raise InputError(fail_message)
        self._first = first
        self.grey = looks_grey(first)
        self.height, self.width = first.shape[:2]

    def _convert(self, image: np.ndarray) -> np.ndarray:
        image = to_uint8(image)
        return conform(image, self.grey)


    def _frames(self) -> Iterator[Frame]:
        pacer = Pacer() if self.paced else None
        index = 0
        prev_t: float | None = None
        while True:
            # read and the position query under the lock: close() from another thread must not release
            # the capture in the middle of either
            with self._lock:
                if self._cap is None:  # closed (possibly from another thread)
                    return
                if self._first is not None:  # read at open (or at a reconnect)
                    ok, image, self._first = True, self._first, None
                else:
                    try:
                        ok, image = self._cap.read()
                    except cv2.error as exc:
                        msg = " ".join(str(exc).split())
                        raise SourceError(f"{self.name}: decoding frame {index} failed: {msg}") from exc
                t_media = self._t_media(index, prev_t) if ok and image is not None else None
            if not ok or image is None:
                if self._on_read_failure(index):
                    continue
                return
            prev_t = t_media if t_media is not None else prev_t
            if pacer is not None:
                pacer.wait(t_media)
            self.frames_read += 1
            self._t_last = time.monotonic()
            yield Frame(image=self._convert(image), index=index, t_capture=time.monotonic(), t_media=t_media)
            index += 1

    def close(self) -> None:
        """Release the device/file. Idempotent; safe from another thread (waits for an in-flight read)."""
        with self._lock:
            if self._cap is not None:
                self._cap.release()
                self._cap = None
        self._first = None


    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, fps={self.fps}, live={self.live}, grey={self.grey})"


def _positive(value: float) -> float | None:
    return float(value) if value and value > 0 and np.isfinite(value) else None


#: A file "ended early" when it delivered fewer frames than its container says by more than this (1 frame,
#: or 1% of the count for long files): some formats store an estimate (duration x rate), off by a frame.
def short_read(read: int, expected: int | None) -> bool:
    return bool(expected) and read < expected - max(1, int(0.01 * expected))


def _container_t_media(source: "_OpenCVSource", index: int, prev: float | None) -> float | None:
    """Presentation time of the frame just read: the container's clock (``CAP_PROP_POS_MSEC``) while it
    advances, else ``index / fps``; never decreasing."""
    pos_ms = source._cap.get(cv2.CAP_PROP_POS_MSEC) if source._cap is not None else 0.0
    t = pos_ms / 1000.0 if pos_ms and np.isfinite(pos_ms) else (0.0 if index == 0 else None)
    # The container's clock is used while it advances; formats that report no PTS (or a constant)
    # fall back to the nominal rate.
    if t is None or (prev is not None and t <= prev):
        if source.fps is None:
            return None if prev is None else prev
        t = index / source.fps
    return t if prev is None else max(t, prev)


# ------------------------------------------------------------------------------------------ video files
class VideoFileSource(_OpenCVSource):
    """A video file (mp4, avi, mov, mkv, ... anything the FFmpeg in OpenCV decodes).

    fps: the container's frame rate (``fps`` argument only when the container has none).
    frame_count: the container's count (an estimate for some formats; iteration stops at the real end).
    t_media: seconds; the frame's presentation time (``CAP_PROP_POS_MSEC``) while that increases, else
        ``index / fps``; never decreasing.
    pace: release frames at the recorded rate (sleep until ``t_start + t_media``), so a file emulates a
        live probe; the capture thread then uses the newest-frame slot.
    """

    live = False

    def __init__(self, path: str | os.PathLike, *, fps: float | None = None, pace: bool = False) -> None:
        super().__init__()
        path = Path(path)
        self.path = path
        self.name = path.name
        self.live = False
        self.paced = bool(pace)
        if not path.is_file():
            raise InputError(f"video file not found: '{path}' does not exist or is not a file")
        cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
        if not cap.isOpened():
            cap = cv2.VideoCapture(str(path))  # any other backend that may know the format
        not_video = (
            f"'{path.name}' is not a decodable video: OpenCV/FFmpeg could not read a frame from it; "
            "check it is a complete video file (mp4, avi, mov, mkv) or pass a DICOM cine or image folder"
        )
        if not cap.isOpened():
            raise InputError(not_video)
        self.fps = _positive(cap.get(cv2.CAP_PROP_FPS)) or (float(fps) if fps else None)
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.frame_count = count if count > 0 else None
        self._start(cap, not_video)

    def _on_read_failure(self, index: int) -> bool:
        # End of file. FFmpeg also reports a corrupt tail as the end: a read short of the container's
        # frame count is recorded (``ended_early``), and the report, console and UI say so.
        if self._cap is not None and short_read(index, self.frame_count):
            self.ended_early = (f"'{self.name}' ended after {index} of {self.frame_count} frames (the container's "
                                "count): the file is truncated or damaged; the result covers only the frames read")
            log.warning("%s", self.ended_early)
        return False

    def _t_media(self, index: int, prev: float | None) -> float | None:
        return _container_t_media(self, index, prev)


# ---------------------------------------------------------------------------------------------- cameras
class CameraSource(_OpenCVSource):
    """A camera / USB video-grabber / ultrasound scanner's video output, by index (``0`` or ``"0"``) or by
    device path (``/dev/video0``).

    live=True; frame_count=None; t_media=None (the device clock is not exposed reliably).
    width/height/fps: optional requests to the driver; not all drivers honour them (the granted values
    are in ``self.width``, ``self.height``, ``self.fps``).
    A device that stops delivering frames (unplugged) raises :class:`SourceError` during iteration.
    """

    live = True

    def __init__(
        self,
        index_or_device: int | str,
        *,
        width: int | None = None,
        height: int | None = None,
        fps: float | None = None,
        backend: int = cv2.CAP_ANY,
    ) -> None:
        super().__init__()
        self.live = True
        self.frame_count = None
        device: int | str = index_or_device
        if isinstance(device, str) and device.strip().isdigit():
            device = int(device.strip())
        self.device = device
        self.name = f"camera {device}"
        if isinstance(device, str):
            # /dev/videoN is V4L2 device N; OpenCV's V4L2 backend opens indices most reliably.
            m = re.fullmatch(r"/dev/video(\d+)", device)
            if m and backend == cv2.CAP_ANY and os.name == "posix":
                cap = cv2.VideoCapture(int(m.group(1)), cv2.CAP_V4L2)
            else:
                cap = cv2.VideoCapture(device, backend)
        else:
            cap = cv2.VideoCapture(device, backend)
        hint = (
            "check the probe / video grabber is connected and not in use by another program, "
            "or try another index (on Linux: v4l2-ctl --list-devices)"
        )
        if not cap.isOpened():
            raise InputError(f"{self.name} did not open: no device there, or it is busy; {hint}")
        # Requests go before the first read; drivers silently pick the nearest mode they support.
        if width:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, int(width))
        if height:
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, int(height))
        if fps:
            cap.set(cv2.CAP_PROP_FPS, float(fps))
        # Keep the driver queue short where supported: a deep queue adds latency to every frame.
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        self.fps = _positive(cap.get(cv2.CAP_PROP_FPS)) or (float(fps) if fps else None)
        self._start(cap, f"{self.name} did not open: it opened but delivered no frame; {hint}")
        if (width and self.width != int(width)) or (height and self.height != int(height)):
            log.warning("%s: requested %sx%s, driver gives %sx%s", self.name, width, height, self.width, self.height)

    def _on_read_failure(self, index: int) -> bool:
        if self._cap is None:  # closed on purpose
            return False
        raise SourceError(
            f"{self.name} stopped delivering frames after {index} frames (unplugged or driver error); "
            "reconnect it and restart"
        )


# ---------------------------------------------------------------------------------------------- streams
class StreamSource(_OpenCVSource):
    """A network stream through OpenCV's FFmpeg backend: ``rtsp://``, ``rtsps://``, ``rtmp://``, ``http(s)://``,
    ``udp://``, ``rtp://``, ``srt://``, ``tcp://``.

    name: ``scheme://host[:port]`` only (credentials, path and query are never shown or logged).
    live: True for a stream; False for a recorded file served over the network (the container states a
        frame count, e.g. an MP4/AVI over HTTP). Such a file is read like a local file: every frame, in
        order, with the container's clock, and a read short of its count is reported as ``ended_early``.
    t_media: None for a live stream (timestamps restart or jump on reconnects and differ between senders,
        so, as for a camera, the capture clock ``t_capture`` is the one to use); the container's clock for a
        served file.
    timeout_s: open and read timeout (``CAP_PROP_OPEN_TIMEOUT_MSEC`` / ``CAP_PROP_READ_TIMEOUT_MSEC``).
    Reconnects: when a live stream goes silent longer than ``timeout_s`` or is cut, it is reopened up to
        ``reconnect_attempts`` times, waiting ``reconnect_backoff_s[i]`` (the last value repeats) before
        attempt i; a frame that comes back resets the count. Each outage is recorded in ``reconnects``
        (after which frame, seconds without frames) and reported; when every attempt fails the stream
        raises :class:`SourceError`. ``reconnect_attempts=0`` turns reconnecting off.
    RTSP over TCP instead of UDP: set ``OPENCV_FFMPEG_CAPTURE_OPTIONS="rtsp_transport;tcp"``.
    """

    live = True
    RECONNECT_ATTEMPTS = 5
    RECONNECT_BACKOFF_S = (0.5, 1.0, 2.0, 4.0, 8.0)

    def __init__(self, url: str, *, timeout_s: float = 10.0, fps: float | None = None,
                 reconnect_attempts: int | None = None, reconnect_backoff_s: tuple[float, ...] | None = None) -> None:
        super().__init__()
        self.live = True
        self.url = url  # kept for reconnecting; never put in messages
        self.name = redact_url(url)
        scheme = url.split("://", 1)[0].lower() if "://" in url else ""
        if scheme not in STREAM_SCHEMES:
            raise InputError(
                f"stream '{self.name}': unsupported scheme '{scheme}'; use one of "
                + ", ".join(f"{s}://" for s in STREAM_SCHEMES)
            )
        self.timeout_s = timeout_s
        self.reconnect_attempts = self.RECONNECT_ATTEMPTS if reconnect_attempts is None else max(0, int(reconnect_attempts))
        self.reconnect_backoff_s = tuple(reconnect_backoff_s or self.RECONNECT_BACKOFF_S)
        self.reconnects: list[dict] = []  # {"after_frame", "gap_s", "attempts"} per outage survived
        self._closing = threading.Event()
        self._hint = (f"check the address, credentials and network, and that the stream is running "
                      f"(timeout {timeout_s:g} s)")
        cap = self._open_capture()
        if not cap.isOpened():
            raise InputError(f"stream {self.name} did not open: {self._hint}")
        self.fps = _positive(cap.get(cv2.CAP_PROP_FPS)) or (float(fps) if fps else None)
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.frame_count = count if count > 0 else None
        # A container with a frame count is a recorded file served over the network, not a live feed:
        # read it losslessly (a newest-frame slot would keep a handful of its frames and drop the rest).
        self.live = self.frame_count is None
        self._start(cap, f"stream {self.name} did not open: it connected but delivered no frame; {self._hint}")

    def _open_capture(self) -> cv2.VideoCapture:
        ms = int(max(self.timeout_s, 0.1) * 1000)
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms]
        try:
            return cv2.VideoCapture(self.url, cv2.CAP_FFMPEG, params)
        except cv2.error:  # a build without the timeout properties: open with FFmpeg's defaults
            return cv2.VideoCapture(self.url, cv2.CAP_FFMPEG)

    def _t_media(self, index: int, prev: float | None) -> float | None:
        return None if self.live else _container_t_media(self, index, prev)

    def _on_read_failure(self, index: int) -> bool:
        if self._cap is None or self._closing.is_set():
            return False  # closed on purpose
        if not self.live:  # a served file: its end, or a short read of it
            if short_read(index, self.frame_count):
                self.ended_early = (f"stream {self.name} ended after {index} of {self.frame_count} frames (the "
                                    "container's count): the transfer was cut or the file is truncated")
                log.warning("%s", self.ended_early)
            return False
        return self._reconnect(index)

    def _reconnect(self, index: int) -> bool:
        """Reopen the stream with back-off; True once a frame came back, SourceError when all attempts fail."""
        t_lost = time.monotonic()
        with self._lock:
            if self._cap is not None:
                self._cap.release()
        for attempt in range(1, self.reconnect_attempts + 1):
            wait = self.reconnect_backoff_s[min(attempt - 1, len(self.reconnect_backoff_s) - 1)]
            log.warning("stream %s: no frame after frame %d; reconnecting (attempt %d of %d) in %.1f s",
                        self.name, index, attempt, self.reconnect_attempts, wait)
            if self._closing.wait(wait):
                return False
            cap = self._open_capture()
            ok, first = (cap.read() if cap.isOpened() else (False, None))
            with self._lock:
                if self._closing.is_set():
                    cap.release()
                    return False
                if ok and first is not None:
                    self._cap, self._first = cap, first
                    gap = round(time.monotonic() - (self._t_last or t_lost), 3)  # since the last frame
                    self.reconnects.append({"after_frame": index, "gap_s": gap, "attempts": attempt})
                    log.warning("stream %s: reconnected after %.1f s without frames", self.name, gap)
                    return True
                cap.release()
        with self._lock:
            self._cap = None
        raise SourceError(
            f"stream {self.name} stopped after {index} frames (connection cut or no frame for "
            f"{self.timeout_s:g} s) and did not come back after {self.reconnect_attempts} reconnect attempt(s) "
            f"over {time.monotonic() - t_lost:.0f} s; check the sender and network, then restart"
        )

    def close(self) -> None:
        self._closing.set()
        super().close()

    def input_facts(self) -> dict:
        facts = super().input_facts()
        facts["reconnects"] = list(self.reconnects)
        facts["gap_s"] = round(sum(r["gap_s"] for r in self.reconnects), 3)
        return facts
