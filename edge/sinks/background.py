"""The overlay video off the frame loop: render + encode on a thread of their own, behind a bounded queue.

On two CPU cores, drawing the overlay on a 1920x1080 frame and encoding it (mp4v) costs 4-24 ms per
frame, as much as the model. Done on the frame loop, that time delays every verdict update. Here the loop
only hands the result over (a reference, no pixel copy: a :class:`FrameResult` owns its frame and nobody
modifies it) and goes on; a worker thread draws and encodes.

Two named policies for a full queue (``queue_frames`` results), mirroring the frame hand-over of
:mod:`edge.capture.thread`:

* :data:`DROP_POLICY` ``"drop-new-when-full"`` (live and paced sources): the incoming frame is left out of
  the video and counted (``frames_dropped``); frames already queued are kept, so the video has a gap
  rather than a burst. The loop never waits, so the verdict path never depends on the speed of the disk or
  the encoder.
* :data:`WAIT_POLICY` ``"wait-when-full"`` (files read losslessly, where every frame is scored and the
  verdict is given at the end): the loop waits for room, so the video is complete. Drawing and encoding
  still overlap the model, so a run costs about max(loop, encoder) instead of their sum; the time the
  loop waited is reported (``loop_wait_ms``).

The sparkline history is appended on the loop for EVERY frame (a few microseconds) and frozen with each
queued frame, so the curve drawn in the video has no holes where video frames were dropped.

When the queue keeps up, every frame is recorded: the video is complete (``frames_dropped == 0``).
``drain()`` waits until the queue is empty (the job calls it after the last frame, to put the final
counts in the report); ``close()`` drains, stops the worker and closes the recorder, which renames its
hidden temporary file onto the final name (atomic, :mod:`edge.atomic`). An error in the worker (a folder
that vanished, a codec that fails) is raised on the loop's thread at the next ``write`` or at ``close``,
naming the file, as the synchronous recorder would.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

from edge.sinks.base import SinkBase
from edge.sinks.recorder import VideoRecorder
from edge.us.types import FrameResult

#: the named full-queue policies (see the module docstring)
DROP_POLICY = "drop-new-when-full"
WAIT_POLICY = "wait-when-full"
POLICIES = (DROP_POLICY, WAIT_POLICY)


class BackgroundRecorder(SinkBase):
    """Wrap ``recorder`` (an :class:`VideoRecorder`, or anything with its ``prepare``/``render``/
    ``write_image``/``close``/``history``) so that its rendering and encoding run on a worker thread.

    ``queue_frames``: how many frames may wait for the encoder (default 8: about a quarter of a second at
    30 fps; 8 x 6 MB at 1080p BGR at most, since queued results keep their frames alive).
    """

    def __init__(self, recorder: VideoRecorder, *, queue_frames: int = 8, policy: str = DROP_POLICY):
        if queue_frames < 1:
            raise ValueError(f"BackgroundRecorder: queue_frames must be >= 1, got {queue_frames}")
        if policy not in POLICIES:
            raise ValueError(f"BackgroundRecorder: policy must be one of {', '.join(POLICIES)}, got {policy!r}")
        self.recorder = recorder
        self.policy = policy
        self.loop_wait_ms = 0.0  # time the loop spent waiting for room (wait policy only)
        self.queue_frames = int(queue_frames)
        self.frames_offered = 0
        self.frames_dropped = 0
        self.frames_failed = 0  # frames left out because the recorder had failed
        self.error: BaseException | None = None
        self._raised = False
        self._queue: deque = deque()
        self._busy = False  # the worker holds an item it has not finished
        self._stop = False
        self._closed = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name=f"video[{getattr(recorder, 'path', '')}]",
                                        daemon=True)
        self._thread.start()

    # -- the loop's side ---------------------------------------------------------------------------

    def write(self, result: FrameResult) -> None:
        """Hand ``result`` to the worker. When the queue is full: drop it from the video (drop policy;
        never waits for the encoder, only for a lock held for a few instructions) or wait for room (wait
        policy)."""
        self._raise_error()
        prepared = self.recorder.prepare(result)
        history = self.recorder.history
        history.append(prepared)  # every frame, so the sparkline has no hole where video frames drop
        with self._cond:
            self.frames_offered += 1
            if self.error is not None:
                self.frames_failed += 1
                return
            if len(self._queue) >= self.queue_frames:
                if self.policy == DROP_POLICY:
                    self.frames_dropped += 1
                    return
                t0 = time.perf_counter()
                self._cond.wait_for(lambda: len(self._queue) < self.queue_frames or self.error is not None
                                    or not self._thread.is_alive())
                self.loop_wait_ms += (time.perf_counter() - t0) * 1e3
                if self.error is not None or not self._thread.is_alive():
                    self.frames_failed += 1
                    return
            self._queue.append((prepared, history.snapshot()))
            self._cond.notify()

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until every queued frame is encoded (or the worker failed); False on ``timeout``."""
        with self._cond:
            return self._cond.wait_for(lambda: (not self._queue and not self._busy) or self.error is not None
                                       or not self._thread.is_alive(), timeout)

    def stats(self) -> dict[str, Any]:
        """What the report says about the video (counts are final after :meth:`drain` or :meth:`close`)."""
        rec = self.recorder
        size = getattr(rec, "size", None)
        return {"path": str(getattr(rec, "path", "")), "codec": getattr(rec, "codec", None),
                "size": list(size) if size else None, "policy": self.policy,
                "queue_frames": self.queue_frames, "frames_offered": self.frames_offered,
                "frames_written": getattr(rec, "frames_written", None), "frames_dropped": self.frames_dropped,
                "frames_failed": self.frames_failed, "loop_wait_ms": round(self.loop_wait_ms, 1), "complete": self.frames_dropped == 0
                and self.frames_failed == 0 and self.error is None,
                "error": None if self.error is None else str(self.error)}

    def close(self) -> None:
        """Encode what is queued, stop the worker, close the recorder (renames its file into place).
        Idempotent. Re-raises a worker error not raised yet."""
        if self._closed:
            return
        self._closed = True
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        while self._thread.is_alive():  # short joins: Ctrl-C / SIGTERM in the main thread stay deliverable
            self._thread.join(0.1)
        try:
            self.recorder.close()
        finally:
            self._raise_error()

    # -- the worker's side -------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._queue or self._stop)
                if not self._queue:  # stopped and drained
                    self._cond.notify_all()
                    return
                prepared, snapshot = self._queue.popleft()
                self._busy = True
                self._cond.notify_all()  # room for a loop waiting under the wait policy
            try:
                self.recorder.write_image(self.recorder.render(prepared, snapshot))
            except BaseException as exc:  # noqa: BLE001 - handed to the loop's thread, never lost
                with self._cond:
                    self.error = exc
                    self.frames_failed += 1 + len(self._queue)
                    self._queue.clear()
                    self._busy = False
                    self._cond.notify_all()
                return
            with self._cond:
                self._busy = False
                self._cond.notify_all()  # drain() waiters, and a loop waiting for room

    def _raise_error(self) -> None:
        if self.error is not None and not self._raised:
            self._raised = True
            raise self.error
