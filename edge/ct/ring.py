"""A ring buffer of k adjacent slices: the detector for slice i sees slices i-h..i+h (h = (k-1)/2).

Slices are pushed in stream order with consecutive indices 0, 1, 2, ... The window centred on slice i is
emitted as soon as slice i+h has been pushed, so the lag is h slices (k=1: none, k=3: one, k=11: five);
:meth:`SliceRing.flush` emits the last h windows when the stream ends. At both ends the missing neighbours
are the edge slice repeated (Kozemzak et al. pad 11-slice chunks the same way), so every window has
exactly k entries and the model input shape never changes.

Memory: at most k slices are held; windows reference the pushed CTSlice objects (no copies), which stay
valid because a CTSlice's array is never written after it is handed over.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from edge.ct.types import CTSlice
from edge.errors import ConfigError

ALLOWED_K = (1, 3, 5, 7, 9, 11)


@dataclass(frozen=True)
class Window:
    """k slices in stream order around ``centre`` (``slices[h] is centre``)."""

    centre: CTSlice
    slices: tuple[CTSlice, ...]


def check_k(k: int) -> int:
    if k not in ALLOWED_K:
        raise ConfigError(f"k={k}: the slice window must be odd, one of {ALLOWED_K} (3 by default)")
    return k


class SliceRing:
    """Holds the last k slices; see the module docstring for emission order and padding."""

    def __init__(self, k: int = 3):
        self.k = check_k(k)
        self.half = (k - 1) // 2
        self._buf: deque[CTSlice] = deque(maxlen=k)
        self._pushed = 0  # slices pushed so far (= index of the next one)
        self._next_centre = 0  # the next centre index to emit

    def _get(self, i: int, last: int) -> CTSlice:
        """Slice i clamped to [0, last] (edge padding); it must still be in the buffer."""
        i = min(max(i, 0), last)
        first = self._pushed - len(self._buf)
        return self._buf[i - first]

    def _window(self, centre: int, last: int) -> Window:
        slices = tuple(self._get(j, last) for j in range(centre - self.half, centre + self.half + 1))
        return Window(slices[self.half], slices)

    def push(self, s: CTSlice) -> list[Window]:
        """Add the next slice (``s.index`` must equal the count pushed so far); returns windows now complete."""
        if s.index != self._pushed:
            raise ValueError(f"slice index {s.index} pushed, expected {self._pushed} (push in stream order)")
        self._buf.append(s)
        self._pushed += 1
        out = []
        last = self._pushed - 1
        while self._next_centre + self.half <= last:
            out.append(self._window(self._next_centre, last))
            self._next_centre += 1
        return out

    def flush(self) -> list[Window]:
        """End of stream: the windows of the last h slices, padded with the last slice. Idempotent."""
        out = []
        last = self._pushed - 1
        while self._next_centre <= last:
            out.append(self._window(self._next_centre, last))
            self._next_centre += 1
        return out
