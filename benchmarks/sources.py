"""Test doubles for the end-to-end benchmark: a paced looping clip and a deliberately slow backend.

:class:`LoopedClipSource` emulates a live probe at any frame rate from the demo clip: it decodes the clip
with OpenCV on the capture thread (so decode cost is real and overlaps inference, as in the runtime), loops
it for as many frames as asked, and releases frame ``i`` at ``t0 + i / fps`` (an absolute schedule: a late
frame does not push the later ones back). ``paced=True`` makes :func:`edge.capture.thread.choose_slot` give
it the newest-frame slot, exactly like ``open_source(clip, pace=True)``; ``paced=False`` plays it as fast as
decoding allows (the lossless bounded queue).

Per frame it records in ``Frame.meta``: ``decode_ms`` (read + pixel conversion) and ``t_due`` (the
scheduled release, monotonic seconds). ``t_capture`` follows the Frame contract: the moment the decoded
frame was ready.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import cv2

from edge.errors import InputError
from edge.sources.base import Frame
from edge.sources.video import conform, looks_grey, to_uint8


class LoopedClipSource:
    """Frames of ``path`` looped to ``n_frames`` (None = forever), paced at ``fps`` when ``paced``."""

    live = False

    def __init__(self, path: str | Path, fps: float, *, n_frames: int | None = None, paced: bool = True):
        self.path = Path(path)
        self.name = f"{self.path.name} looped @ {fps:g} fps" + ("" if paced else " (unpaced)")
        self.fps = float(fps)
        self.frame_count = n_frames
        self.paced = paced
        self._cap = cv2.VideoCapture(str(self.path))
        ok, first = self._cap.read()
        if not ok:
            raise InputError(f"{self.path.name}: cannot decode a frame for the benchmark source")
        self.grey = looks_grey(first)
        self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
        self.t_start: float | None = None  # monotonic time frame 0 was due

    def __iter__(self) -> Iterator[Frame]:
        period = 1.0 / self.fps
        i = 0
        self.t_start = time.monotonic()
        while self.frame_count is None or i < self.frame_count:
            due = self.t_start + i * period
            if self.paced:
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            t0 = time.perf_counter()
            ok, img = self._cap.read()
            if not ok:  # end of the clip: rewind (the seek is part of this frame's decode time)
                self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                ok, img = self._cap.read()
                if not ok:
                    raise InputError(f"{self.path.name}: decoding failed after rewinding")
            img = conform(to_uint8(img), self.grey)
            decode_ms = (time.perf_counter() - t0) * 1e3
            yield Frame(image=img, index=i, t_capture=time.monotonic(), t_media=i * period,
                        meta={"decode_ms": decode_ms, "t_due": due})
            i += 1

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def __enter__(self) -> LoopedClipSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class SlowBackend:
    """Wraps a Backend and adds ``delay_s`` of sleep to every ``infer``: a model too slow for the frame rate.

    Sleeping (not spinning) keeps the CPU free, so the test isolates the queueing policy from CPU contention.
    """

    def __init__(self, inner, delay_s: float):
        self.inner, self.delay_s = inner, float(delay_s)
        self.name = f"{inner.name} + {delay_s * 1e3:g} ms sleep"
        self.inputs, self.outputs = inner.inputs, inner.outputs

    def infer(self, feeds):
        time.sleep(self.delay_s)
        return self.inner.infer(feeds)

    def close(self) -> None:
        pass  # the inner backend belongs to the caller
