"""The overlay video off the frame loop (edge/sinks/background.py): a slow writer does not slow the loop,
drops are counted, the video is complete when the queue keeps up, outputs stay atomic, and the overlay is
drawn once at the output size. No wall-clock thresholds: the slow writer is held on an Event, so "the loop
did not wait" is a fact of the order of events, not of timing."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.errors import OutputError
from edge.sinks import CurveHistory, VideoRecorder
from edge.sinks.background import DROP_POLICY, WAIT_POLICY, BackgroundRecorder
from edge.sinks.overlay import render_overlay
from edge.sinks.testing import compression_sequence, make_result


class GatedWriter(VideoRecorder):
    """A real recorder whose encoder blocks until the test opens the gate: the slowest possible writer."""

    def __init__(self, path, **kw):
        super().__init__(path, fps=30, **kw)
        self.gate = threading.Event()
        self.entered = threading.Event()

    def write_image(self, image):
        self.entered.set()
        self.gate.wait()
        super().write_image(image)


def read_frames(path: Path) -> list[np.ndarray]:
    from edge.sources.testing import video_frames

    return video_frames(path)


def test_slow_writer_never_blocks_the_loop_and_drops_are_counted(tmp_path):
    path = tmp_path / "v.mp4"
    rec = GatedWriter(path)
    bg = BackgroundRecorder(rec, queue_frames=3)
    seq = compression_sequence(n=20)
    bg.write(seq[0])
    assert rec.entered.wait(10)  # the worker holds frame 0 and is stuck in the encoder
    for r in seq[1:]:  # the loop goes on: all 19 writes return while the encoder is still stuck
        bg.write(r)
    assert not rec.gate.is_set() and rec.frames_written == 0
    assert bg.frames_offered == 20
    assert bg.frames_dropped == 20 - 1 - 3  # one in the encoder, three queued, the rest left out
    # every frame still reached the sparkline history, dropped or not
    assert len(rec.history) == 20
    rec.gate.set()
    assert bg.drain(10)
    bg.close()
    stats = bg.stats()
    assert stats["policy"] == DROP_POLICY == "drop-new-when-full"
    assert stats["frames_written"] == 4 and stats["frames_dropped"] == 16 and stats["complete"] is False
    assert len(read_frames(path)) == 4


def test_video_is_complete_when_the_queue_keeps_up(tmp_path):
    path = tmp_path / "v.mp4"
    rec = VideoRecorder(path, fps=30)
    bg = BackgroundRecorder(rec, queue_frames=4)
    seq = compression_sequence(n=15)
    for r in seq:
        bg.write(r)
        assert bg.drain(30)  # a consumer that never outruns the encoder
    bg.close()
    assert bg.stats()["complete"] and bg.frames_dropped == 0 and rec.frames_written == 15
    frames = read_frames(path)
    assert len(frames) == 15
    # the same overlay the synchronous recorder draws (compared on the decoded video: codec noise only)
    ref_hist = CurveHistory()
    for r in seq:
        ref_hist.append(r)
    ref = render_overlay(seq[-1], ref_hist)
    assert np.abs(frames[-1].astype(int) - ref.astype(int)).mean() < 6


def test_output_is_atomic_until_close(tmp_path):
    path = tmp_path / "v.mp4"
    rec = GatedWriter(path)
    bg = BackgroundRecorder(rec)
    for r in compression_sequence(n=5):
        bg.write(r)
    rec.gate.set()
    assert bg.drain(30)
    assert not path.exists()  # still under its hidden temporary name
    assert [p.name for p in tmp_path.iterdir()] == [f".v.mp4.{__import__('os').getpid()}.part.mp4"]
    bg.close()
    assert [p.name for p in tmp_path.iterdir()] == ["v.mp4"]
    assert len(read_frames(path)) == 5


def test_worker_error_reaches_the_loop_naming_the_file(tmp_path):
    bad = tmp_path / "no_such_dir" / "x.mp4"
    bg = BackgroundRecorder(VideoRecorder(bad, fps=30))
    bg.write(make_result())
    bg.drain(30)
    with pytest.raises(OutputError, match="no_such_dir"):
        bg.write(make_result())
    bg.write(make_result())  # raised once; later frames are counted as failed, the loop goes on
    bg.close()
    assert bg.stats()["frames_failed"] >= 2 and bg.stats()["complete"] is False


def test_close_on_interrupt_leaves_a_playable_video_of_the_frames_so_far(tmp_path):
    path = tmp_path / "v.mp4"
    bg = BackgroundRecorder(VideoRecorder(path, fps=30), queue_frames=64)
    for r in compression_sequence(n=10):
        bg.write(r)
    bg.close()  # what the job's ExitStack does on Ctrl-C: queued frames are encoded, the file renamed
    assert len(read_frames(path)) == 10


def test_overlay_drawn_once_at_the_output_size(tmp_path):
    """A 2x source recorded at half height: the frame is reduced first and the overlay drawn at the output
    size, so the picture matches drawing the small frame directly (not a resized big drawing)."""
    small = make_result()
    h, w = small.frame.shape[:2]
    big_frame = cv2.resize(small.frame, (2 * w, 2 * h), interpolation=cv2.INTER_NEAREST)
    x, y, rw, rh = small.region
    big = replace(small, frame=big_frame, region=(2 * x, 2 * y, 2 * rw, 2 * rh))
    rec = VideoRecorder(tmp_path / "v.mp4", fps=30, height=h)
    prepared = rec.prepare(big)
    assert prepared.region == small.region
    img = rec.render(prepared, None)
    assert img.shape == (h, w, 3)
    ref = render_overlay(small, None)
    # identical geometry and text; pixels differ only where INTER_AREA of the upscaled frame rounds
    assert np.mean(np.abs(img.astype(int) - ref.astype(int)) > 8) < 0.002
    rec.close()


def test_wait_policy_records_every_frame_of_a_file_behind_a_slow_writer(tmp_path):
    """Files read losslessly: the loop waits for room, so nothing is left out, and the wait is reported."""
    path = tmp_path / "v.mp4"
    rec = GatedWriter(path)
    bg = BackgroundRecorder(rec, queue_frames=2, policy=WAIT_POLICY)
    seq = compression_sequence(n=10)
    done = threading.Event()

    def loop():
        for r in seq:
            bg.write(r)
        done.set()

    t = threading.Thread(target=loop)
    t.start()
    assert rec.entered.wait(10)
    for _ in range(1000):  # the loop reaches its 4th frame and waits there (no timing is asserted)
        if bg.frames_offered >= 4:
            break
        time.sleep(0.01)
    # the loop is held: one frame in the encoder, two queued, the 4th waiting for room, none dropped
    assert bg.frames_offered == 4 and bg.frames_dropped == 0 and not done.is_set()
    rec.gate.set()
    t.join(30)
    bg.close()
    assert bg.stats()["complete"] and bg.stats()["loop_wait_ms"] > 0
    assert len(read_frames(path)) == 10


def test_unknown_policy_is_refused(tmp_path):
    with pytest.raises(ValueError, match="drop-new-when-full, wait-when-full"):
        BackgroundRecorder(VideoRecorder(tmp_path / "v.mp4", fps=30), policy="drop-old")


@pytest.mark.parametrize("pace,policy", [(False, WAIT_POLICY), (True, DROP_POLICY)])
def test_job_reports_video_block(tmp_path, pace, policy):
    from edge.assets import DEMO_CLIPS, asset, us_model
    from edge.jobs.us import run_us_job

    res = run_us_job(str(asset(DEMO_CLIPS["normal"])), us_model(), backend="onnxruntime", out_dir=tmp_path,
                     max_frames=12, progress=False, video_height=240, pace=pace, log=lambda s: None)
    video = res.report["video"]
    assert video["policy"] == policy
    assert video["frames_offered"] == res.report["frames"]
    assert video["frames_offered"] == video["frames_written"] + video["frames_dropped"]
    if policy == WAIT_POLICY:
        assert video["frames_dropped"] == 0 and video["complete"]
    assert video["size"][1] == 240
    frames = read_frames(res.video)
    assert len(frames) == video["frames_written"] and frames[0].shape[0] == 240
