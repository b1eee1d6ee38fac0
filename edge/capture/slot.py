"""Hand-over points between the capture thread (one producer) and the inference loop (one consumer).

Two slots with the same interface (:class:`FrameSlot`):

* :class:`NewestFrameSlot` - one slot, drop-oldest. ``put`` never blocks: a frame not yet taken is
  replaced and counted in ``dropped``. The consumer always gets the newest frame, so latency stays one
  frame however slow inference is. For live sources (and paced files, which emulate one).
* :class:`BoundedFrameQueue` - FIFO of ``maxsize`` frames. ``put`` blocks while full (back-pressure on
  the reader), nothing is lost. For files processed losslessly (every frame scored).

Life cycle, identical for both:

    put(frame) -> True      frame accepted (the slot may have dropped an older one)
    put(frame) -> False     the slot is closed: the frame is discarded and the producer should stop
    get(timeout) -> Frame   the next frame (the newest, for the slot)
    get(timeout) -> None    no frame arrived within ``timeout`` seconds (``None`` = wait indefinitely)
    get(...) raises SlotClosed   the slot is closed *and* drained: no frame will ever come

``close()`` (from either side, idempotent) refuses further puts, wakes every waiter, and leaves frames
already in the slot to be drained by ``get``. End of stream is therefore an exception, never a value,
so a timeout (``None``) cannot be confused with the end.

Ownership: a frame put into a slot belongs to the consumer once ``get`` returns it; slots never copy.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Protocol, runtime_checkable

from edge.sources.base import Frame


class SlotClosed(Exception):
    """Raised by ``get`` when the slot is closed and holds no more frames (the stream has ended)."""


@runtime_checkable
class FrameSlot(Protocol):
    def put(self, frame: Frame) -> bool: ...

    def get(self, timeout: float | None = None) -> Frame | None: ...

    def close(self) -> None: ...

    @property
    def closed(self) -> bool: ...

    @property
    def dropped(self) -> int: ...


def _deadline(timeout: float | None) -> float | None:
    return None if timeout is None else time.monotonic() + max(0.0, timeout)


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else deadline - time.monotonic()


class NewestFrameSlot:
    """Single-slot mailbox, drop-oldest ("newest-frame-only"). Thread-safe for one producer and one
    consumer (any number of callers is safe; only the single-slot semantics assume one of each)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._frame: Frame | None = None
        self._closed = False
        self._dropped = 0

    def put(self, frame: Frame) -> bool:
        """Store ``frame``, replacing (and counting as dropped) one not yet taken. Never blocks."""
        with self._cond:
            if self._closed:
                return False
            if self._frame is not None:
                self._dropped += 1
            self._frame = frame
            self._cond.notify()
            return True

    def get(self, timeout: float | None = None) -> Frame | None:
        """The newest frame, waiting up to ``timeout`` s; None on timeout; SlotClosed when closed and empty."""
        deadline = _deadline(timeout)
        with self._cond:
            while self._frame is None:
                if self._closed:
                    raise SlotClosed("frame slot closed")
                remaining = _remaining(deadline)
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(remaining)
            frame, self._frame = self._frame, None
            return frame

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def dropped(self) -> int:
        """Frames replaced before the consumer took them."""
        return self._dropped

    def __len__(self) -> int:
        return 0 if self._frame is None else 1

    def __repr__(self) -> str:
        return f"NewestFrameSlot(pending={len(self)}, dropped={self._dropped}, closed={self._closed})"


class BoundedFrameQueue:
    """FIFO of at most ``maxsize`` frames; ``put`` blocks while full (back-pressure). Loses nothing:
    ``dropped`` is always 0. Thread-safe."""

    def __init__(self, maxsize: int = 4) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize must be >= 1, got {maxsize}")
        self.maxsize = int(maxsize)
        self._items: deque[Frame] = deque()
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._not_full = threading.Condition(self._lock)
        self._closed = False

    def put(self, frame: Frame) -> bool:
        """Append ``frame``, blocking while the queue is full; False (frame discarded) if closed."""
        with self._not_full:
            while len(self._items) >= self.maxsize and not self._closed:
                self._not_full.wait()
            if self._closed:
                return False
            self._items.append(frame)
            self._not_empty.notify()
            return True

    def get(self, timeout: float | None = None) -> Frame | None:
        """The oldest frame, waiting up to ``timeout`` s; None on timeout; SlotClosed when closed and empty."""
        deadline = _deadline(timeout)
        with self._not_empty:
            while not self._items:
                if self._closed:
                    raise SlotClosed("frame queue closed")
                remaining = _remaining(deadline)
                if remaining is not None and remaining <= 0:
                    return None
                self._not_empty.wait(remaining)
            frame = self._items.popleft()
            self._not_full.notify()
            return frame

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._not_empty.notify_all()
            self._not_full.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def dropped(self) -> int:
        return 0

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"BoundedFrameQueue(maxsize={self.maxsize}, pending={len(self)}, closed={self._closed})"
