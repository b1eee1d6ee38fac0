"""The capture thread: reads a frame source on its own thread so decoding overlaps inference.

    with open_source(spec, pace=pace) as source, CaptureThread(source) as capture:
        for frame in capture.frames():      # ends when the source ends
            ...                             # inference on frame.image
        stats = capture.capture_stats()     # frames_captured, frames_delivered, dropped

Sink policy (:func:`choose_slot`):
    live source (camera, stream)          -> NewestFrameSlot: drop-oldest, the consumer always sees the
                                             newest frame ("newest-frame-only"; latency never builds up)
    paced file / folder / cine (pace=True)-> NewestFrameSlot too: it emulates a live probe
    otherwise (file played as fast as possible) -> BoundedFrameQueue(4): back-pressure, every frame scored

Errors: the first exception the source raises is recorded and re-raised in the consumer by ``frames()``
after the frames delivered before it, as :class:`SourceError` naming the source (a SourceError the source
raised itself is re-raised unchanged).

Ownership: the caller owns the source (opens and closes it); the thread only iterates it. Stop the
thread (``stop()``, leaving ``frames()``, or leaving the ``with`` block) before closing the source;
our sources also tolerate ``close()`` from another thread while a read is in flight.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass
from typing import Iterator

from edge.capture.slot import BoundedFrameQueue, FrameSlot, NewestFrameSlot, SlotClosed
from edge.errors import InputError, SourceError
from edge.sources.base import Frame, FrameSource

#: Queue depth for lossless file playback: enough to hide decode jitter, small enough to bound memory.
FILE_QUEUE_SIZE = 4


@dataclass(frozen=True)
class CaptureStats:
    """Counters of one capture run. frames_captured = frames the source produced and the slot accepted;
    frames_delivered = frames ``frames()`` yielded; dropped = frames the newest-frame slot replaced."""

    frames_captured: int
    frames_delivered: int
    dropped: int

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def choose_slot(source: FrameSource, pace: bool | None = None) -> FrameSlot:
    """The slot the policy above gives ``source``; ``pace`` overrides the source's ``paced`` attribute."""
    paced = bool(getattr(source, "paced", False)) if pace is None else bool(pace)
    if getattr(source, "live", False) or paced:
        return NewestFrameSlot()
    return BoundedFrameQueue(FILE_QUEUE_SIZE)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


class CaptureThread:
    """A daemon thread that iterates ``source`` into ``slot`` (default: :func:`choose_slot`)."""

    def __init__(
        self,
        source: FrameSource,
        slot: FrameSlot | None = None,
        *,
        pace: bool | None = None,
        poll_s: float = 0.25,
    ) -> None:
        self.source = source
        self.slot: FrameSlot = slot if slot is not None else choose_slot(source, pace)
        self.poll_s = poll_s  # consumer wake-up period while waiting (keeps Ctrl-C responsive)
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._captured = 0
        self._delivered = 0
        name = getattr(source, "name", type(source).__name__)
        self._thread = threading.Thread(target=self._run, name=f"capture[{name}]", daemon=True)

    # -- producer side (runs on the thread)
    def _run(self) -> None:
        frames = None
        try:
            frames = iter(self.source)
            for frame in frames:
                if self._stop.is_set() or not self.slot.put(frame):
                    break
                self._captured += 1
        except BaseException as exc:  # noqa: BLE001 - recorded and re-raised in the consumer
            self._error = exc
        finally:
            # Release what the source's iterator holds (e.g. an open file) on this thread, then wake the
            # consumer: the frames already in the slot are still delivered, then SlotClosed ends frames().
            close = getattr(frames, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:  # noqa: BLE001 - shutting down; the first error is what matters
                    pass
            self.slot.close()

    # -- control
    def start(self) -> "CaptureThread":
        """Start the thread (once). Returns self."""
        if not self._thread.is_alive() and self._thread.ident is None:
            self._thread.start()
        return self

    def stop(self, timeout: float | None = 2.0) -> bool:
        """Ask the thread to stop, close the slot (unblocks a producer waiting on a full queue) and wait up
        to ``timeout`` s. Returns True if the thread has ended (it may still be in a blocking read of a
        camera or stream; it exits after that read). Idempotent."""
        self._stop.set()
        self.slot.close()
        if self._thread.ident is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    @property
    def error(self) -> BaseException | None:
        """The first exception the source raised, or None."""
        return self._error

    # -- consumer side
    def frames(self) -> Iterator[Frame]:
        """Yield frames until the source ends (starts the thread if needed). Gaps in ``Frame.index`` are
        frames the newest-frame slot dropped. Leaving the loop early stops the capture. After the last
        frame, a source failure is raised as :class:`SourceError`."""
        self.start()
        try:
            while True:
                try:
                    frame = self.slot.get(timeout=self.poll_s)
                except SlotClosed:
                    break
                if frame is None:
                    continue  # timed out: loop again (lets KeyboardInterrupt through promptly)
                self._delivered += 1
                yield frame
        finally:
            self.stop()
        self.raise_if_failed()

    def raise_if_failed(self) -> None:
        """Re-raise the source's first exception as SourceError naming the source (no-op if none)."""
        exc = self._error
        if exc is None:
            return
        if isinstance(exc, SourceError):
            raise exc
        name = getattr(self.source, "name", type(self.source).__name__)
        if isinstance(exc, InputError):
            raise SourceError(_one_line(exc)) from exc
        raise SourceError(
            _one_line(f"frame source {name} failed while streaming: {type(exc).__name__}: {exc}")
        ) from exc

    def capture_stats(self) -> CaptureStats:
        return CaptureStats(
            frames_captured=self._captured, frames_delivered=self._delivered, dropped=self.slot.dropped
        )

    def __enter__(self) -> "CaptureThread":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"CaptureThread({getattr(self.source, 'name', '?')!r}, slot={self.slot!r}, running={self.running})"
