"""The ultrasound job and its frame loop, called directly (not through the CLI): what they return, and that
every resource they open is released on every way out."""

import threading
from pathlib import Path

import numpy as np
import pytest

from edge.assets import asset, us_model
from edge.sources.base import Frame
from edge.spec import load_spec
from edge.us.pipeline import UltrasoundPipeline

DEMO = asset("demo-normal.mp4")


class SpyBackend:
    """A backend that records close() and fails its ``fail_at``-th inference (None: never)."""

    name = "spy"

    def __init__(self, spec, fail_at: int | None = None):
        self.spec, self.fail_at, self.calls, self.closed = spec, fail_at, 0, False

    def infer(self, feeds):
        self.calls += 1
        if self.fail_at is not None and self.calls >= self.fail_at:
            raise RuntimeError("inference failed (test)")
        h, w = self.spec.input_hw
        logits = np.zeros((1, 3, h, w), np.float32)
        logits[0, 0] = 1.0
        return {self.spec.outputs[0].name: logits}

    def close(self):
        self.closed = True


class RecordingSource:
    """A finite source of grey frames that records, when it is closed, whether its capture thread still runs."""

    fps, live, frame_count = 30.0, False, 50

    def __init__(self):
        self.name = "recording-source"
        self.capture_alive_at_close: bool | None = None

    def __iter__(self):
        for i in range(self.frame_count):
            yield Frame(image=np.full((120, 160), 40, np.uint8), index=i, t_capture=float(i), t_media=i / 30.0)

    def close(self):
        self.capture_alive_at_close = any(t.name == f"capture[{self.name}]" and t.is_alive()
                                          for t in threading.enumerate())

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def test_the_job_closes_its_backend_when_the_loop_fails(monkeypatch, tmp_path):
    """A failing stage (or Ctrl-C) must not leak the backend: under TensorRT it holds device buffers and a
    CUDA stream."""
    import edge.jobs.us as job

    spec = load_spec(us_model())
    spy = SpyBackend(spec, fail_at=3)
    monkeypatch.setattr(job, "open_backend", lambda model, backend, threads=None, **kw: (spy, job.Choice("spy", "test")))
    with pytest.raises(RuntimeError, match="inference failed"):
        job.run_us_job(str(DEMO), us_model(), out_dir=tmp_path, progress=False, log=lambda m: None)
    assert spy.closed


def test_the_job_closes_its_backend_when_it_succeeds(monkeypatch, tmp_path):
    import edge.jobs.us as job

    spy = SpyBackend(load_spec(us_model()))
    monkeypatch.setattr(job, "open_backend", lambda model, backend, threads=None, **kw: (spy, job.Choice("spy", "test")))
    out = job.run_us_job(str(DEMO), us_model(), out_dir=tmp_path, progress=False, video=False, max_frames=5,
                         log=lambda m: None)
    assert spy.closed and out.loop.frames == 5 and out.report["frames"] == 5
    assert Path(out.json).is_file()


def test_the_capture_thread_stops_before_the_source_is_closed_when_a_stage_fails():
    from edge.jobs.us import run_frame_loop

    spec = load_spec(us_model())
    source = RecordingSource()
    with pytest.raises(RuntimeError, match="inference failed"):
        with source:
            run_frame_loop(source, UltrasoundPipeline(SpyBackend(spec, fail_at=2), spec))
    assert source.capture_alive_at_close is False


def test_the_frame_loop_counts_and_calls_back_every_frame():
    from edge.jobs.us import run_frame_loop

    spec = load_spec(us_model())
    seen: list[int] = []
    with RecordingSource() as source:
        res = run_frame_loop(source, UltrasoundPipeline(SpyBackend(spec), spec), [lambda r: seen.append(r.index)],
                             max_frames=20)
    assert res.frames == 20 and seen == list(range(20))
    assert res.verdict.verdict == "indeterminate"  # no vessel was ever segmented
