"""Fast unit tests of the benchmark's pieces (no model, no timing thresholds)."""

from __future__ import annotations

import json
import time

import numpy as np

from benchmarks.config import Budget
from benchmarks.ct import TimedStream
from benchmarks.models import DEMO_CLIP
from benchmarks.report import dumps, evaluate_targets
from benchmarks.sources import LoopedClipSource, SlowBackend
from benchmarks.timing import time_queries
from edge.capture.slot import NewestFrameSlot
from edge.capture.thread import CaptureThread


def test_time_queries_honours_warmup_and_budget():
    calls = []
    samples, info = time_queries(lambda: calls.append(1), Budget(warmup=7, min_queries=20, min_seconds=0, max_seconds=5))
    assert len(calls) == 27 and len(samples) == 20 == info["queries"] and not info["truncated"]
    samples, info = time_queries(lambda: time.sleep(0.01), Budget(0, 10_000, 0, max_seconds=0.1))
    assert info["truncated"] and 3 <= len(samples) < 50 and min(samples) >= 9.0


def test_dumps_is_strict_json_with_one_line_sample_lists():
    text = dumps({"a": [1.5, 2.0, -3e-5], "b": {"c": float("nan"), "d": ["x", "y"]}, "e": (1, 2)})
    data = json.loads(text)
    assert data == {"a": [1.5, 2.0, -3e-5], "b": {"c": None, "d": ["x", "y"]}, "e": [1, 2]}
    assert '"a": [1.5, 2.0, -3e-05]' in text


def _scenario(name, fps_processed, age_p99, loop_p99=20.0, fps=30.0, delay=0.0):
    return {"name": name, "fps": fps, "fps_processed": fps_processed, "delay_ms": delay,
            "frame_age_ms": {"p99": age_p99}, "loop_ms": {"p99": loop_p99}}


def test_targets_pass_and_fail_on_the_thresholds():
    ok = {"end_to_end": {"scenarios": [_scenario("paced-30fps", 29.9, 60.0), _scenario("unpaced", 41.0, 90.0),
                                       _scenario("slow-newest", 14.0, 100.0, loop_p99=70.0, delay=50.0)]}}
    assert [t["pass"] for t in evaluate_targets(ok)] == [True, True, True, True]
    bad = {"end_to_end": {"scenarios": [_scenario("paced-30fps", 24.0, 140.0), _scenario("unpaced", 25.0, 90.0),
                                        _scenario("slow-newest", 9.0, 900.0, loop_p99=70.0, delay=50.0)]}}
    assert [t["pass"] for t in evaluate_targets(bad)] == [False, False, False, False]
    assert all(t["pass"] is None for t in evaluate_targets({}))


def test_paced_source_through_the_newest_frame_slot_drops_for_a_slow_consumer():
    src = LoopedClipSource(DEMO_CLIP, fps=60.0, n_frames=30, paced=True)
    cap = CaptureThread(src, pace=True)
    assert isinstance(cap.slot, NewestFrameSlot)
    got = []
    t0 = time.monotonic()
    for frame in cap.frames():
        got.append(frame.index)
        time.sleep(0.05)  # 3 frame periods per frame
    src.close()
    assert time.monotonic() - t0 >= 29 / 60.0  # paced: 30 frames at 60 fps take ~0.5 s
    assert got[-1] == 29 and len(got) < 20 and cap.capture_stats().dropped == 30 - len(got)
    assert frame.image.ndim == 2 and frame.meta["decode_ms"] >= 0


def test_slow_backend_and_timed_stream_forward():
    class Fake:
        name, inputs, outputs = "fake", (), ()

        def infer(self, feeds):
            return {"y": feeds["x"] + 1}

    slow = SlowBackend(Fake(), 0.02)
    t0 = time.perf_counter()
    assert slow.infer({"x": np.zeros(2)})["y"].tolist() == [1, 1] and time.perf_counter() - t0 >= 0.02

    class Stream:
        direction = -1

        def __iter__(self):
            return iter([1, 2, 3])

    ts = TimedStream(Stream())
    assert list(ts) == [1, 2, 3] and len(ts.read_ms) == 3 and ts.direction == -1
