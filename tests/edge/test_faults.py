"""Broken and cut-short inputs (edge/faults.py corpus), atomic outputs, SIGTERM, argument checks before work,
stream reconnects (issue 12). Each case failed before its fix."""

from __future__ import annotations

import functools
import http.server
import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge import faults
from edge.cli import main
from edge.errors import InputError, SourceError
from edge.sources import open_source

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return faults.make_corpus(tmp_path_factory.mktemp("faults"))


def _report(path: Path) -> dict:
    return json.loads(path.read_text())


def _no_part_files(folder: Path) -> bool:
    return not any(".part" in p.name for p in folder.rglob("*"))


# ------------------------------------------------------------------------------------- truncated input
def test_truncated_clip_says_so_in_json_console_and_ui(corpus, tmp_path, capsys):
    from edge.ui.service import us_summary

    code = main(["us", "run", str(corpus["truncated_clip"]), "--out", str(tmp_path), "--threads", "1"])
    out, err = capsys.readouterr()
    rep = _report(tmp_path / "us.json")
    assert code == 3, "a truncated input must not exit 0"
    assert rep["complete"] is False
    assert rep["input"]["frames_expected"] == 40 and rep["input"]["frames_read"] < 30
    assert rep["input"]["ended_early"] is True and "truncated" in rep["input"]["ended_early_reason"]
    assert rep["warnings"] and "ended early" in rep["warnings"][0]
    assert "WARNING: input ended early" in out and "INCOMPLETE" in out and "ended early" in err
    assert "INCOMPLETE" in us_summary(rep) and "ended early" in us_summary(rep)
    assert _no_part_files(tmp_path)


def test_whole_clip_is_complete_with_its_frame_count(corpus, tmp_path, capsys):
    assert main(["us", "run", str(corpus["clip"]), "--json", str(tmp_path / "r.json"), "--threads", "1"]) == 0
    rep = _report(tmp_path / "r.json")
    assert rep["complete"] is True and rep["warnings"] == []
    assert rep["input"] == {"frames_expected": 40, "frames_read": 40, "ended_early": False,
                            "ended_early_reason": None, "stopped_by": None}


def test_file_served_over_http_is_read_whole_not_as_a_live_feed(corpus, tmp_path, capsys):
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    folder = corpus["clip"].parent
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/{corpus['clip'].name}"
        code = main(["us", "run", url, "--json", str(tmp_path / "r.json"), "--threads", "1"])
    finally:
        server.shutdown()
        server.server_close()
    rep = _report(tmp_path / "r.json")
    assert code == 0 and rep["frames"] == 40 and rep["dropped_frames"] == 0, "every frame of the file is processed"
    assert rep["input"]["frames_read"] == rep["input"]["frames_expected"] == 40 and rep["complete"] is True
    assert not rep["reason"].startswith("too short")
    assert rep["t_media"][1] == pytest.approx(1 / 30, abs=1e-3), "the file's clock, not the wall clock"


def test_truncated_cine_is_an_error_and_the_report_says_why(corpus, tmp_path, capsys):
    # a previous run's outputs in the same folder must not survive to look like this run's
    for name in ("us.mp4", "us_curve.png", "us.json"):
        (tmp_path / name).write_bytes(b"previous run")
    code = main(["us", "run", str(corpus["truncated_cine"]), "--out", str(tmp_path), "--threads", "1"])
    err = capsys.readouterr().err
    assert code == 3 and "truncated-cine.dcm" in err and "truncated" in err
    rep = _report(tmp_path / "us.json")
    assert rep["complete"] is False and "truncated" in rep["error"] and rep["verdict"] == "indeterminate"
    assert not (tmp_path / "us_curve.png").exists()
    video = tmp_path / "us.mp4"
    if video.exists():  # a playable video of the frames before the cut, or none
        cap = cv2.VideoCapture(str(video))
        assert cap.read()[0], "the video left behind plays"
    assert _no_part_files(tmp_path)


def test_truncated_ct_slice_is_an_error_naming_the_file(corpus, capsys):
    from edge.ct.dicom_series import scan_series

    folder, cut = corpus["truncated_ct_folder"], corpus["truncated_ct_slice"]
    with pytest.raises(InputError) as err:
        scan_series(folder)
    assert cut.name in str(err.value) and "truncated" in str(err.value) and "Modality" not in str(err.value)
    assert main(["ct", "scan", str(folder)]) == 3
    assert cut.name in capsys.readouterr().err


def test_truncated_ct_slice_in_a_live_stream_is_a_named_warning(corpus):
    import pydicom

    from edge.ct.stream import stream_datasets

    cut = corpus["truncated_ct_slice"]
    stream = stream_datasets([(cut.name, pydicom.dcmread(cut))])
    assert list(stream) == []
    assert any(cut.name in w and "truncated" in w for w in stream.warnings), stream.warnings
    assert not any("Modality" in w for w in stream.warnings)


def test_rt_dose_is_refused_as_an_ultrasound_cine(corpus, capsys):
    with pytest.raises(InputError, match="not an ultrasound cine.*RT Dose"):
        open_source(corpus["rt_dose"])
    assert main(["us", "run", str(corpus["rt_dose"]), "--no-video"]) == 3
    assert "rt-dose.dcm" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["garbage_mp4", "garbage_dcm"])
def test_garbage_is_refused_naming_the_file(corpus, name):
    with pytest.raises(InputError) as err:
        open_source(corpus[name])
    assert corpus[name].name in str(err.value)


# ----------------------------------------------------------------------------------------------- SIGTERM
def test_sigterm_leaves_an_incomplete_report_and_a_playable_video_or_none(tmp_path):
    long_clip = faults.clip(tmp_path / "long.avi", n=600)  # 20 s paced: still running when the signal comes
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "edge.cli", "us", "run", str(long_clip), "--pace", "--out", str(out),
                             "--threads", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not any(out.glob(".us.mp4.*.part.mp4")):
            time.sleep(0.2)  # the temporary video appears with the first processed frame
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "terminated" in err and "Traceback" not in err
    rep = _report(out / "us.json")
    assert rep["complete"] is False and "SIGTERM" in rep["error"] and rep["verdict"] == "indeterminate"
    video = out / "us.mp4"
    if video.exists():
        assert cv2.VideoCapture(str(video)).read()[0]
    assert _no_part_files(out)


def test_recorder_writes_under_a_temporary_name_until_closed(tmp_path):
    from edge.sinks.recorder import VideoRecorder

    rec = VideoRecorder(tmp_path / "v.mp4", 30.0)
    for _ in range(3):
        rec.write_image(np.zeros((32, 48, 3), np.uint8))
    assert not (tmp_path / "v.mp4").exists() and any(tmp_path.glob(".v.mp4.*.part.mp4"))
    rec.close()
    assert (tmp_path / "v.mp4").exists() and _no_part_files(tmp_path)
    assert int(cv2.VideoCapture(str(tmp_path / "v.mp4")).get(cv2.CAP_PROP_FRAME_COUNT)) == 3


# ------------------------------------------------------------------------ arguments checked before work
def _one_line_error(err: str, *needles: str) -> None:
    lines = [ln for ln in err.strip().splitlines() if ln]
    assert len(lines) == 1 and lines[0].startswith("dvt-edge: error:"), err
    assert "Traceback" not in err and all(n in lines[0] for n in needles), err


def test_us_run_crop_outside_the_frame(corpus, tmp_path, capsys):
    code = main(["us", "run", str(corpus["clip"]), "--crop", "200,100,200,200", "--out", str(tmp_path / "o")])
    assert code == 6
    _one_line_error(capsys.readouterr().err, "--crop 200,100,200,200", "320x240")
    assert not any((tmp_path / "o").glob("*"))


def test_us_segment_crop_outside_the_frame_and_shared_names(tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    img = np.full((60, 80), 40, np.uint8)
    for d in (a, b):
        cv2.imwrite(str(d / "scan.png"), img)
    out = tmp_path / "labels"
    assert main(["us", "segment", str(a / "scan.png"), "--crop", "10,10,100,20", "--out", str(out)]) == 6
    _one_line_error(capsys.readouterr().err, "--crop", "80x60")
    assert main(["us", "segment", str(a / "scan.png"), str(b / "scan.png"), "--out", str(out)]) == 6
    _one_line_error(capsys.readouterr().err, str(a / "scan.png"), str(b / "scan.png"))
    assert not out.exists() or not any(out.iterdir()), "nothing written, nothing overwritten"


def test_out_naming_an_existing_file(corpus, tmp_path, capsys):
    f = tmp_path / "taken"
    f.write_text("x")
    assert main(["us", "run", str(corpus["clip"]), "--out", str(f)]) == 7
    _one_line_error(capsys.readouterr().err, f"--out {f}", "existing file")
    assert main(["us", "segment", str(tmp_path / "taken"), "--out", str(f)]) == 7
    _one_line_error(capsys.readouterr().err, f"--out {f}")
    assert main(["ct", "scan", str(corpus["truncated_ct_folder"]), "--out", str(f)]) == 7
    _one_line_error(capsys.readouterr().err, f"--out {f}", "existing file")
    assert f.read_text() == "x"


def test_ct_scan_json_into_a_missing_folder_fails_before_the_scan(corpus, tmp_path, capsys, monkeypatch):
    import edge.jobs.ct

    monkeypatch.setattr(edge.jobs.ct, "open_input", lambda *a, **k: pytest.fail("the scan started"))
    target = tmp_path / "missing" / "r.json"
    assert main(["ct", "scan", str(corpus["truncated_ct_folder"]), "--json", str(target)]) == 7
    _one_line_error(capsys.readouterr().err, f"--json {target}", "does not exist")


@pytest.mark.parametrize("value", ["-1", "1.5", "abc"])
def test_score_threshold_outside_0_1_is_refused(value, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["ct", "scan", "somewhere", "--score-threshold", value])
    assert exc.value.code == 2
    assert "--score-threshold" in capsys.readouterr().err


def test_export_fp16_without_the_export_extra_says_what_to_install(tmp_path, monkeypatch, capsys):
    model = tmp_path / "m.onnx"
    model.write_bytes(b"x")
    monkeypatch.setitem(sys.modules, "onnxconverter_common", None)  # as if not installed
    assert main(["export", "fp16", str(model)]) == 2
    _one_line_error(capsys.readouterr().err, "[export]", "pip install 'dvt-edge[export]'")


def test_debug_is_accepted_after_the_command(tmp_path):
    with pytest.raises(InputError):  # --debug re-raises instead of argparse's "unrecognized arguments"
        main(["us", "run", str(tmp_path / "nothing.mp4"), "--debug"])


# ---------------------------------------------------------------------------------------- reconnecting
class FakeCapture:
    """Delivers ``n`` frames then fails a read (sender died); ``n`` None: never opens."""

    def __init__(self, n, delay_s=0.0):
        self.n, self.i, self.released, self.delay_s = n, 0, False, delay_s

    def isOpened(self):
        return self.n is not None

    def get(self, prop):
        return 25.0 if prop == cv2.CAP_PROP_FPS else 0.0

    def read(self):
        if self.n is None or self.i >= self.n or self.released:
            return False, None
        self.i += 1
        time.sleep(self.delay_s)  # a live sender's frame period
        return True, np.full((8, 8, 3), self.i, np.uint8)

    def release(self):
        self.released = True


def _stream(monkeypatch, captures, **kw):
    from edge.sources.video import StreamSource

    queue = list(captures)
    monkeypatch.setattr(StreamSource, "_open_capture", lambda self: queue.pop(0) if queue else FakeCapture(None))
    return StreamSource("udp://127.0.0.1:5000", reconnect_backoff_s=(0.01,), **kw)


def test_stream_reconnects_and_reports_the_gap(monkeypatch):
    from edge.jobs.us import input_warnings

    src = _stream(monkeypatch, [FakeCapture(5), FakeCapture(None), FakeCapture(4)])
    frames = []
    with pytest.raises(SourceError):  # after the second outage the sender never comes back
        for f in src:
            frames.append(f)
    assert [f.index for f in frames] == list(range(9)), "the stream goes on after the sender came back"
    facts = src.input_facts()
    assert [r["after_frame"] for r in facts["reconnects"]] == [5] and facts["reconnects"][0]["attempts"] == 2
    assert facts["gap_s"] >= 0 and facts["frames_read"] == 9
    assert any("stream gap" in w for w in input_warnings({**facts, "stopped_by": None}))


def test_stream_gives_up_after_bounded_attempts(monkeypatch):
    src = _stream(monkeypatch, [FakeCapture(3)], reconnect_attempts=3)
    got = []
    with pytest.raises(SourceError, match="3 reconnect attempt"):
        for f in src:
            got.append(f.index)
    assert got == [0, 1, 2] and "udp://127.0.0.1:5000" in src.name


# ------------------------------------------------------------------------------------------- frictions
def test_too_short_message_does_not_contradict_itself():
    from edge.us.verdict import too_short_reason

    msg = too_short_reason(0.97, 1.0)
    assert "0.97 s" in msg and "1 s needed" in msg and "1.0 s of frames" not in msg


def test_bench_line_for_a_scenario_with_no_frames():
    from benchmarks.end_to_end import scenario_line
    from benchmarks.report import evaluate_targets

    block = {"frames_processed": 0, "frames_offered": 12, "fps_processed": None, "dropped": 12,
             "frame_age_ms": {"p50": None, "p99": None}, "backlog_at_end": 0}
    assert "no frame processed" in scenario_line("paced-30fps", block)
    slow = {"name": "slow-newest", "fps": 30.0, "fps_processed": None, "delay_ms": 50.0,
            "frame_age_ms": {"p99": None}, "loop_ms": {"p99": None}}
    targets = evaluate_targets({"end_to_end": {"scenarios": [slow]}})
    assert {t["id"]: t["pass"] for t in targets}["newest_frame_no_backlog"] in (None, False)


def test_gitignore_covers_the_demo_output():
    assert "/dvt-edge-demo/" in (REPO / ".gitignore").read_text().split()


def test_ct_report_says_whether_the_series_is_complete_and_what_was_skipped(tmp_path):
    from edge.ct.loop import run_slice_loop
    from edge.ct.testing import ThresholdDetector, write_series
    from edge.jobs.ct import finish_report, open_input

    def report_of(folder):
        stream, kind = open_input(folder)
        warned = []
        rep = finish_report(run_slice_loop(stream, ThresholdDetector(), k=3), kind, None, None, None, None,
                            log=lambda m: None, warn=warned.append)
        return rep, warned

    write_series(tmp_path / "whole", n=8)
    (tmp_path / "whole" / "README.txt").write_text("not a slice")
    rep, warned = report_of(tmp_path / "whole")
    assert rep["complete"] is True and rep["input"]["slices_read"] == 8 and rep["input"]["gaps"] == []
    assert any("README.txt" in w and "not a DICOM" in w for w in rep["input"]["skipped"])
    assert not any("INCOMPLETE" in w for w in warned)

    write_series(tmp_path / "gap", n=8, skip=(4, 5))
    rep, warned = report_of(tmp_path / "gap")
    assert rep["complete"] is False and rep["input"]["gaps"] and "missing" in rep["input"]["gaps"][0]
    assert any("INCOMPLETE" in w for w in warned)


def test_train_us_without_torch_says_what_to_install(monkeypatch, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "torch" else real(n, *a))
    assert main(["train", "us", "--out", "x"]) == 2  # not argparse's "unrecognized arguments: us"
    _one_line_error(capsys.readouterr().err, "dvt-edge train", "pip install 'dvt-edge[train]'")


_UDP_SENDER = """
import sys, time, cv2, numpy as np
port, n = int(sys.argv[1]), int(sys.argv[2])
w = cv2.VideoWriter(f"udp://127.0.0.1:{port}.ts", cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*"PIM1"), 25.0, (160, 120))
if not w.isOpened():
    sys.exit(3)
for i in range(n):
    w.write(np.full((120, 160, 3), (i * 7) % 255, np.uint8))
    time.sleep(0.04)
w.release()
"""


def test_udp_stream_whose_sender_dies_and_comes_back_reconnects(tmp_path, free_port):
    """A real MPEG-TS/UDP stream on loopback: the sender stops for longer than the read timeout and starts
    again; the source reconnects and goes on (before: the run ended at the first timeout)."""
    from edge.sources.video import StreamSource

    sender = tmp_path / "send.py"
    sender.write_text(_UDP_SENDER)
    port = free_port()  # a free TCP port number; UDP on loopback is free there too in practice
    codes = []

    def senders():
        for pause in (0.3, 4.0):  # the second pause is longer than the 1.5 s read timeout
            time.sleep(pause)
            codes.append(subprocess.run([sys.executable, str(sender), str(port), "50"], timeout=60).returncode)

    threading.Thread(target=senders, daemon=True).start()
    src, deadline = None, time.monotonic() + 20
    while src is None and time.monotonic() < deadline and not codes:  # the sender's Python may start slowly
        try:
            src = StreamSource(f"udp://127.0.0.1:{port}", timeout_s=1.5, reconnect_attempts=8,
                               reconnect_backoff_s=(0.2,))
        except InputError:
            pass
    if src is None:
        pytest.skip(f"no MPEG-TS over UDP from this OpenCV build (sender exit codes {codes})")
    n = 0
    with src:
        for _ in src:
            n += 1
            if src.reconnects and n >= 60:  # frames from the second sender arrived after a reconnect
                break
    assert codes[:1] == [0] and src.reconnects, (n, codes)
    assert src.reconnects[0]["gap_s"] > 1.0 and 1 <= src.reconnects[0]["after_frame"] <= 50


@pytest.mark.parametrize("args, name", [(["--threads", "0"], "--threads"), (["--max-frames", "-3"], "--max-frames"),
                                        (["--stem", "../elsewhere"], "--stem")])
def test_us_run_numbers_and_names_are_checked_by_the_parser(args, name, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["us", "run", "clip.mp4", *args])
    assert exc.value.code == 2 and name in capsys.readouterr().err


@pytest.mark.parametrize("keep", [150, 300, 600])
def test_watched_folder_names_a_truncated_slice_as_truncated(tmp_path, keep):
    import shutil

    from edge.ct.stream import watch_folder
    from edge.ct.testing import write_series

    paths = write_series(tmp_path / "src", 4)
    dst = tmp_path / "dst"
    dst.mkdir()
    for p in paths:
        shutil.copy(p, dst / p.name)
    faults.truncate(dst / paths[2].name, keep)
    stream = watch_folder(dst, idle_timeout_s=30, expected_count=4, poll_s=0.05, stable_s=0.1)
    assert len(list(stream)) == 3
    named = [w for w in stream.warnings if paths[2].name in w]
    assert named and all("truncated" in w and "Modality" not in w for w in named), stream.warnings


def test_stream_gap_is_in_the_report_and_on_the_console(monkeypatch, tmp_path, capsys):
    from edge.sources.video import StreamSource

    queue = [FakeCapture(5, 0.04), FakeCapture(None), FakeCapture(400, 0.04)]
    monkeypatch.setattr(StreamSource, "_open_capture", lambda self: queue.pop(0) if queue else FakeCapture(None))
    monkeypatch.setattr(StreamSource, "RECONNECT_BACKOFF_S", (0.01,))
    code = main(["us", "run", "udp://127.0.0.1:5000", "--json", str(tmp_path / "r.json"), "--max-frames", "12",
                 "--threads", "1"])
    rep = _report(tmp_path / "r.json")
    assert code == 0 and rep["complete"] is True and rep["input"]["stopped_by"] == "max_frames"
    assert [r["after_frame"] for r in rep["input"]["reconnects"]] == [5] and rep["input"]["gap_s"] >= 0
    assert any("stream gap" in w for w in rep["warnings"]) and "WARNING: stream gap" in capsys.readouterr().out
