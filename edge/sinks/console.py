"""Progress on the terminal (stderr), so stdout stays free for machine-readable output.

Files (``live=False``): one progress line ``frames 120/900 (13%)  42.1 fps  ETA 0:18``.
    On a TTY it is rewritten in place with '\\r' at most ``tty_hz`` times a second; otherwise (a log file,
    CI) a new line is printed each time another ``every_percent`` of the file is done (every
    ``every_frames`` frames when the total is unknown).
Live streams (``live=True``): one line per processed frame, at most ``live_hz`` lines a second::

    frame    123  vein   1423 px  tracked    provisional: COMPRESSIBLE  latency  18.2 ms

``close`` ends the progress line and prints one summary line (frames, time, fps, dropped).
"""

from __future__ import annotations

import sys
import time
from typing import Callable, TextIO

from edge.sinks.base import RunSummary, SinkBase
from edge.sinks.overlay import VERDICT_TEXT
from edge.us.types import FrameResult

# A frame arriving a hair before the period is up still counts as on time, so 30 fps at 10 lines/s
# prints every third frame instead of aliasing to every fourth.
_SLACK_S = 1e-3


def _clock_str(seconds: float | None) -> str:
    if seconds is None or seconds != seconds or seconds == float("inf"):
        return "--:--"
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class ProgressPrinter(SinkBase):
    """A sink that reports progress; see the module docstring for the formats.

    total: frames in the file (``FrameSource.frame_count``), or None when unknown. Progress counts source
    positions (``result.index + 1``), so frames dropped by the newest-frame slot still advance it.
    stream: where to print (default ``sys.stderr``); tty: override the TTY detection of ``stream``.
    clock: monotonic seconds (injectable for tests).
    """

    def __init__(self, *, total: int | None = None, live: bool = False, stream: TextIO | None = None,
                 tty: bool | None = None, tty_hz: float = 5.0, live_hz: float = 10.0,
                 every_percent: float = 10.0, every_frames: int = 100,
                 clock: Callable[[], float] = time.monotonic):
        self.total = total if total and total > 0 else None
        self.live = live
        self.stream = stream if stream is not None else sys.stderr
        self.tty = _isatty(self.stream) if tty is None else tty
        self.tty_period = 1.0 / tty_hz
        self.live_period = 1.0 / live_hz
        self.every_percent = every_percent
        self.every_frames = every_frames
        self.clock = clock
        self.processed = 0
        self.position = 0  # source frames consumed (index + 1 of the newest result)
        self._t_first: float | None = None
        self._pos_first = 0
        self._last_print = -float("inf")
        self._last_step = -1
        self._pending = ""  # the TTY line currently on screen
        self._width = 0
        self._last_line_text = ""
        self._summary: RunSummary | None = None
        self._closed = False

    # -- sink API --------------------------------------------------------------------------------------

    def write(self, result: FrameResult) -> None:
        now = self.clock()
        if self._t_first is None:
            self._t_first, self._pos_first = now, result.index
        self.processed += 1
        self.position = max(self.position, result.index + 1)
        if self.live:
            if now - self._last_print >= self.live_period - _SLACK_S:
                self._last_print = now
                self._emit_line(self.live_line(result))
        elif self.tty:
            if now - self._last_print >= self.tty_period - _SLACK_S:
                self._last_print = now
                self._emit_tty(self.progress_line(now))
        else:
            step = self._step()
            if step > self._last_step:
                self._last_step = step
                self._emit_line(self.progress_line(now))

    def finish(self, summary: RunSummary) -> None:
        self._summary = summary

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        now = self.clock()
        if not self.live and self.processed:
            final = self.progress_line(now)
            if self.tty:
                self._emit_tty(final)
                self.stream.write("\n")
            elif final != self._last_line_text:
                self._emit_line(final)
        self._pending = ""
        self._emit_line(self.summary_line(now))

    # -- formatting (public so callers and tests can reuse it) -----------------------------------------

    def fps(self, now: float) -> float | None:
        """Processed frames per second since the first result (None until measurable)."""
        if self._t_first is None or now - self._t_first <= 0 or self.processed < 2:
            return None
        return (self.processed - 1) / (now - self._t_first)

    def eta(self, now: float) -> float | None:
        """Seconds until the source is consumed, from the rate the source position advances."""
        if self.total is None or self._t_first is None or now - self._t_first <= 0:
            return None
        rate = (self.position - self._pos_first - 1) / (now - self._t_first)
        return None if rate <= 0 else max(0.0, (self.total - self.position) / rate)

    def progress_line(self, now: float) -> str:
        fps = self.fps(now)
        fps_s = "  --.- fps" if fps is None else f"{fps:6.1f} fps"
        if self.total is None:
            return f"frames {self.position}  {fps_s}"
        pct = 100.0 * min(self.position, self.total) / self.total
        return f"frames {self.position}/{self.total} ({pct:3.0f}%)  {fps_s}  ETA {_clock_str(self.eta(now))}"

    @staticmethod
    def live_line(r: FrameResult) -> str:
        area = "     --" if r.track.vein_area_px is None else f"{r.track.vein_area_px:7.0f}"
        v = VERDICT_TEXT.get(r.verdict.verdict, r.verdict.verdict)
        kind = "final" if r.verdict.final else "provisional"
        latency = 1000.0 * (r.t_done - r.t_capture)
        return (f"frame {r.index:6d}  vein {area} px  {r.track.vein_status:<9}  {kind}: {v:<16}  "
                f"latency {latency:6.1f} ms")

    def summary_line(self, now: float) -> str:
        elapsed = 0.0 if self._t_first is None else now - self._t_first
        fps = self.fps(now)
        text = f"processed {self.processed} frames in {elapsed:.1f} s"
        if fps is not None:
            text += f" ({fps:.1f} fps)"
        if self._summary is not None:
            text += f", {self._summary.dropped_frames} dropped"
        return text

    # -- output ----------------------------------------------------------------------------------------

    def _step(self) -> int:
        if self.total is None:
            return self.position // max(1, self.every_frames)
        return int(100.0 * min(self.position, self.total) / self.total // self.every_percent)

    def _emit_tty(self, text: str) -> None:
        pad = max(0, self._width - len(text))  # blank out the tail of a longer previous line
        self.stream.write("\r" + text + " " * pad)
        self.stream.flush()
        self._width = len(text)
        self._pending = text

    def _emit_line(self, text: str) -> None:
        if self._pending:  # never print over a half-written progress line
            self.stream.write("\n")
            self._pending = ""
            self._width = 0
        self.stream.write(text + "\n")
        self.stream.flush()
        self._last_line_text = text


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
