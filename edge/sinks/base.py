"""The sink seam: where the ultrasound frame loop hands each :class:`FrameResult` for display or storage.

Life cycle of every sink (the frame loop drives it; sinks never call each other)::

    sink = SomeSink(...)                 # cheap: files are opened lazily on the first write
    sink.write(result)                   # once per processed frame, in processing order
    sink.finish(summary)                 # once, after the last frame: the run's final facts
    sink.close()                         # always (idempotent); releases files

``finish`` carries what only the end of a run knows (final verdict, dropped-frame count, backend, model,
effective config) as one :class:`RunSummary`, so ``close()`` keeps the plain no-argument signature that
``with`` blocks and ``contextlib.ExitStack`` expect. A sink closed without ``finish`` (the loop crashed or
was interrupted) still releases its files; sinks that write a report mark it incomplete rather than
inventing a verdict.

Ownership: ``write`` must not keep references to ``result.frame`` or ``result.labels`` past the call
(copy what is needed); sinks never modify a result.

"Sink" means an output only. The frame hand-over between the capture thread and the loop is a *slot*
(:mod:`edge.capture.slot`, ``FrameSlot``): it moves raw frames between threads; a sink consumes processed
results on the loop's own thread.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Protocol, runtime_checkable

from edge.errors import OutputError  # noqa: F401  (re-exported for callers of edge.sinks)
from edge.us.types import FrameResult, Verdict


@dataclass(frozen=True)
class RunSummary:
    """What the frame loop knows only when the run is over; given to every sink by ``finish``.

    verdict: the final :class:`Verdict` (``final=True``) of the run.
    source: display name of the source (``FrameSource.name``): a base name, "camera 0", a URL host;
        never a full path or anything that identifies a patient.
    backend: the inference runtime actually used, e.g. "onnxruntime:CUDAExecutionProvider" or "tensorrt".
    model: the model's name (``ModelSpec.name``) or artifact base name.
    dropped_frames: frames the newest-frame slot discarded (never processed).
    config: the effective, validated configuration of the run (JSON-serialisable; other values are
        written with ``str``).
    model_spec: the model's sidecar spec (``ModelSpec.to_json()``) when known.
    input: what the run knows about its input (``FrameSource.input_facts()``): ``frames_expected`` (the
        container's count, None when unknown), ``frames_read``, ``ended_early`` (bool) and
        ``ended_early_reason``, ``stopped_by`` ("max_frames" when the user's limit ended the read), and for
        streams ``reconnects`` / ``gap_s``. A run whose input ended early is not ``complete``.
    warnings: one line each, for the report, the console and the UI (input ended early, stream gaps).
    video: what the overlay video recorder did (``BackgroundRecorder.stats()``: path, codec, size,
        policy, queue_frames, frames_offered/written/dropped, loop_wait_ms, complete), None when no video was recorded.
    """

    verdict: Verdict
    source: str = ""
    backend: str = ""
    model: str = ""
    dropped_frames: int = 0
    config: dict[str, Any] = field(default_factory=dict)
    model_spec: dict[str, Any] | None = None
    input: dict[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    video: dict[str, Any] | None = None


@runtime_checkable
class ResultSink(Protocol):
    """A consumer of processed frames. See the module docstring for the life cycle and ownership."""

    def write(self, result: FrameResult) -> None: ...

    def finish(self, summary: RunSummary) -> None: ...

    def close(self) -> None: ...

    def __enter__(self) -> "ResultSink": ...

    def __exit__(self, *exc: object) -> None: ...


class SinkBase:
    """Optional mixin: context-manager plumbing and a no-op ``finish`` for sinks that need no summary."""

    def write(self, result: FrameResult) -> None:  # pragma: no cover - subclasses implement
        raise NotImplementedError

    def finish(self, summary: RunSummary) -> None:
        """Default: nothing to do with the summary."""

    def close(self) -> None:
        """Default: nothing to release."""

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SinkGroup(SinkBase):
    """Fan one result out to several sinks, in order. ``close`` closes every sink even if one fails, then
    re-raises the first failure, so a broken recorder cannot leave a report unwritten."""

    def __init__(self, sinks: Iterable[ResultSink]):
        self.sinks: list[ResultSink] = list(sinks)
        self._closed = False

    def write(self, result: FrameResult) -> None:
        for sink in self.sinks:
            sink.write(result)

    def finish(self, summary: RunSummary) -> None:
        self._each(lambda s: s.finish(summary))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._each(lambda s: s.close())

    def _each(self, call) -> None:
        first: BaseException | None = None
        for sink in self.sinks:
            try:
                call(sink)
            except Exception as exc:  # keep going: every sink gets its turn
                first = first or exc
        if first is not None:
            raise first
