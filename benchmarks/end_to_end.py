"""End-to-end latency: the whole bedside frame loop, from a paced source to the rendered overlay.

The loop is the runtime's own: :class:`~benchmarks.sources.LoopedClipSource` (decode on the capture thread)
-> :class:`edge.capture.thread.CaptureThread` -> newest-frame slot (or a queue) ->
:meth:`edge.us.pipeline.UltrasoundPipeline.process` (preprocess, infer, postprocess, track, measure: the
verdict update) -> :func:`edge.sinks.overlay.render_overlay` (the "render" stage, into a reused buffer).

Per frame: every stage's time, the frame age ``t_done - t_capture`` (verdict updated; ``t_done`` is stamped
by the pipeline) and ``t_shown - t_capture`` (overlay rendered), the wait in the slot, and index gaps
(= frames the newest-frame slot dropped). The first ``warmup_s`` of each scenario is processed but not
counted. Scenarios:

* ``paced-<fps>``: the demo clip re-timed to 30 / 60 fps, newest-frame slot (the live-probe policy);
* ``slow-newest``: the same at 30 fps with a backend that sleeps ``slow_delay_ms`` per infer: drops rise,
  frame age stays ~ one processing time (no backlog);
* ``slow-fifo``: the same slow backend behind a lossless FIFO (never drops): the backlog, and with it the
  frame age, grows for as long as the stream runs (the contrast);
* ``unpaced``: frames as fast as the loop takes them (lossless bounded queue): the loop's capacity.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from benchmarks.config import BenchConfig
from benchmarks.sources import LoopedClipSource, SlowBackend
from benchmarks.timing import rounded, summary
from edge.capture.slot import BoundedFrameQueue, NewestFrameSlot
from edge.capture.thread import CaptureThread
from edge.sinks.history import CurveHistory
from edge.sinks.overlay import render_overlay
from edge.us.pipeline import UltrasoundPipeline, UsConfig

STAGES = ("decode", "preprocess", "infer", "postprocess", "track", "measure", "render")
#: A FIFO deep enough never to block the producer in these runs: "lossless and unbounded" for the contrast.
FIFO_DEPTH = 100_000


@dataclass(frozen=True)
class Scenario:
    name: str
    fps: float
    seconds: float  # measured span, after the warm-up
    policy: str = "newest-frame"  # "newest-frame" | "lossless-fifo" | "bounded-queue-4" (unpaced)
    paced: bool = True
    delay_ms: float = 0.0


def scenarios(cfg: BenchConfig) -> list[Scenario]:
    out = [Scenario(f"paced-{fps:g}fps", fps, cfg.e2e_seconds) for fps in cfg.e2e_fps]
    out.append(Scenario("slow-newest", 30.0, cfg.slow_seconds, delay_ms=cfg.slow_delay_ms))
    out.append(Scenario("slow-fifo", 30.0, cfg.fifo_seconds, policy="lossless-fifo", delay_ms=cfg.slow_delay_ms))
    out.append(Scenario("unpaced", 30.0, cfg.unpaced_seconds, policy="bounded-queue-4", paced=False))
    return out


def _slot(policy: str):
    if policy == "newest-frame":
        return NewestFrameSlot()
    if policy == "lossless-fifo":
        return BoundedFrameQueue(FIFO_DEPTH)
    return None  # CaptureThread's own choice for an unpaced file: BoundedFrameQueue(4)


def run_scenario(sc: Scenario, backend, spec, clip: Path, warmup_s: float) -> dict:
    """Run one scenario; returns its block (summaries + raw per-frame samples)."""
    be = SlowBackend(backend, sc.delay_ms / 1e3) if sc.delay_ms else backend
    pipeline = UltrasoundPipeline(be, spec, UsConfig())
    total_s = warmup_s + sc.seconds
    n = round(total_s * sc.fps) if sc.paced else None
    source = LoopedClipSource(clip, sc.fps, n_frames=n, paced=sc.paced)
    capture = CaptureThread(source, slot=_slot(sc.policy), pace=sc.paced)
    history, buf, rows = CurveHistory(), None, []
    backlog = 0
    try:
        for frame in capture.frames():
            t_got = time.monotonic()
            res = pipeline.process(frame)
            t0 = time.perf_counter()
            history.append(res)
            buf = render_overlay(res, history, out=buf)
            render_ms = (time.perf_counter() - t0) * 1e3
            t_shown = time.monotonic()
            rows.append((frame.index, frame.t_capture, frame.meta["t_due"], t_got, res.t_done, t_shown,
                         frame.meta["decode_ms"], *(res.stage_ms[s] for s in STAGES[1:6]), render_ms))
            if t_shown >= source.t_start + total_s and (not sc.paced or sc.policy != "newest-frame"):
                backlog = len(capture.slot)  # frames still waiting when the stream ended
                break
    finally:
        capture.stop()
        source.close()
    stats = capture.capture_stats()
    verdict = pipeline.current_verdict(final=True).verdict
    return _summarise(sc, rows, source.t_start, warmup_s, backlog, stats.as_dict(), be.name, verdict)


def _summarise(sc: Scenario, rows, t_start: float, warmup_s: float, backlog: int, capture: dict,
               backend: str, verdict: str) -> dict:
    a = np.asarray(rows, dtype=np.float64).reshape(-1, 7 + len(STAGES) - 1)
    keep = a[:, 1] - t_start >= warmup_s
    m = a[keep]
    idx, t_cap, t_due, t_got, t_done, t_shown = (m[:, i] for i in range(6))
    stages = {s: m[:, 6 + i] for i, s in enumerate(STAGES)}
    stages["track+measure"] = stages["track"] + stages["measure"]
    age = (t_done - t_cap) * 1e3
    shown_age = (t_shown - t_cap) * 1e3
    processed = int(m.shape[0])
    newest = sc.policy == "newest-frame"
    if not processed:
        offered = 0
    elif newest:  # the slot always hands over the stream's last frame: gaps are drops
        offered = int(idx[-1] - idx[0] + 1)
    else:  # queues lose nothing: what was produced since the first counted frame, processed or still queued
        offered = int(capture["frames_captured"] - idx[0])
    span = float(t_shown[-1] - t_shown[0]) if processed > 1 else 0.0
    block = {
        **asdict(sc), "backend": backend, "frames_processed": processed, "frames_offered": offered,
        "dropped": offered - processed if newest else 0,  # queues never drop: what is left is backlog
        "drop_rate": round((offered - processed) / offered, 4) if offered and newest else 0.0,
        "backlog_at_end": backlog,
        "fps_processed": round((processed - 1) / span, 2) if span > 0 else None,
        "frame_age_ms": summary(age),
        "display_age_ms": summary(shown_age),
        "slot_wait_ms": summary((t_got - t_cap) * 1e3),
        "loop_ms": summary((t_shown - t_got) * 1e3),
        "stages_ms": {s: summary(v) for s, v in stages.items()},
        "capture": capture, "warmup_s": warmup_s, "frames_in_warmup": int((~keep).sum()),
        "final_verdict": verdict,
    }
    if sc.paced:
        block["capture_lag_ms"] = summary((t_cap - t_due) * 1e3)  # decode + any lateness of the source
    if sc.policy == "lossless-fifo" and processed > 2:
        block["age_growth_ms_per_s"] = round(float(np.polyfit(t_cap - t_cap[0], age, 1)[0]), 1)
    block["samples"] = {"index": [int(i) for i in idx], "t_capture_s": rounded(t_cap - t_start, 4),
                        "t_done_s": rounded(t_done - t_start, 4),
                        "frame_age_ms": rounded(age), "display_age_ms": rounded(shown_age),
                        **{f"{s}_ms": rounded(v) for s, v in stages.items() if s != "track+measure"}}
    return block


def _ms(v) -> str:
    return "n/a" if v is None else f"{v:.1f} ms"


def scenario_line(name: str, block: dict) -> str:
    """One console line per scenario. A scenario that processed no frame after its warm-up (a loaded
    machine, a slow backend) has no rate or ages: the line says so instead of formatting None."""
    fps, age = block.get("fps_processed"), block.get("frame_age_ms") or {}
    if not block.get("frames_processed"):
        return (f"  {name:<14} no frame processed after the warm-up ({block.get('frames_offered', 0)} offered): "
                "the machine is too loaded or the backend too slow for this scenario; no rate or age measured")
    rate = "   n/a fps processed" if fps is None else f"{fps:6.1f} fps processed"
    return (f"  {name:<14} {rate}, dropped {block['dropped']}/{block['frames_offered']}, "
            f"age p50 {_ms(age.get('p50'))} p99 {_ms(age.get('p99'))}"
            + (f", backlog {block['backlog_at_end']}" if block.get("backlog_at_end") else ""))


def run_end_to_end(cfg: BenchConfig, backend, spec, clip: Path, log=print) -> dict:
    """Every scenario on one backend (created by the caller, reused: no per-scenario session creation)."""
    x = np.zeros([d if isinstance(d, int) else 1 for d in spec.input.shape], dtype=spec.input.dtype)
    for _ in range(10):  # session warm-up before any frame is timed
        backend.infer({spec.input.name: x})
    out = []
    for sc in scenarios(cfg):
        block = run_scenario(sc, backend, spec, clip, cfg.e2e_warmup_s)
        out.append(block)
        log(scenario_line(sc.name, block))
    return {"backend": backend.name, "clip": clip.name, "stages": list(STAGES) + ["track+measure"],
            "scenarios": out}
