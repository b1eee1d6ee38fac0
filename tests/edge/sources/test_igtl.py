"""OpenIGTLink source (igtl://HOST:PORT[/DEVICE]) against a local sender on 127.0.0.1 that packs IMAGE messages
with pyigtl: frames bit-exact, timestamps, spacing -> mm² in the us report; errors name the URL."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pyigtl = pytest.importorskip("pyigtl", reason="OpenIGTLink needs the [igtl] extra (pyigtl)")

import edge.cli  # noqa: E402
from edge.errors import InputError, SourceError  # noqa: E402
from edge.sources import detect_kind, open_source  # noqa: E402
from edge.sources.igtl import IgtlSource, parse_igtl_url  # noqa: E402

REPO = Path(__file__).resolve().parents[3]


class Sender:
    """A one-client OpenIGTLink image sender on 127.0.0.1 (what PLUS's server does), ``fps`` messages/s."""

    def __init__(self, frames, *, fps=20.0, device="Image_Reference", spacing=(0.1, 0.1), t0=1000.0,
                 other_device_every=0):
        self.frames, self.fps, self.device, self.spacing, self.t0 = frames, fps, device, spacing, t0
        self.other = other_device_every
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.port = self.sock.getsockname()[1]
        self.sent = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.sock.close()
        self.thread.join(5)

    def _run(self):
        self.sock.settimeout(10)
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        m = np.diag([self.spacing[0], self.spacing[1], 1.0, 1.0])
        with conn:
            for i, img in enumerate(self.frames):
                if self.stop.is_set():
                    break
                if self.other and i % self.other == 0:
                    conn.sendall(pyigtl.ImageMessage(np.zeros((1, 4, 4), np.uint8), device_name="Other").pack())
                msg = pyigtl.ImageMessage(img[np.newaxis], ijk_to_world_matrix=m, timestamp=self.t0 + i / self.fps,
                                          device_name=self.device)
                conn.sendall(msg.pack())
                self.sent += 1
                time.sleep(1.0 / self.fps)
            self.stop.wait(30)  # keep the connection open until the test ends


def _clip(n):
    from edge.sources.testing import video_frames

    return video_frames(REPO / "edge" / "assets" / "demo-normal.mp4", n, grey=True)


def _free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_url_parsing_and_kind():
    assert parse_igtl_url("igtl://127.0.0.1:18945/Image_Reference") == ("127.0.0.1", 18945, "Image_Reference")
    assert parse_igtl_url("igtl://scanner") == ("scanner", 18944, None)
    assert detect_kind("igtl://127.0.0.1:18944") == "igtl"
    with pytest.raises(InputError, match="igtl://h:x"):
        parse_igtl_url("igtl://h:x")


def test_frames_are_bit_exact_with_timestamps_and_spacing():
    frames = [np.random.default_rng(i).integers(0, 255, (48, 64), dtype=np.uint8) for i in range(8)]
    with Sender(frames, fps=10, other_device_every=3, spacing=(0.12, 0.1)) as tx:
        with open_source(f"igtl://127.0.0.1:{tx.port}/Image_Reference") as src:
            assert src.live and src.name == f"igtl://127.0.0.1:{tx.port}/Image_Reference"
            assert src.calibration.mm_per_px_x == pytest.approx(0.12) and src.calibration.mm_per_px_y == pytest.approx(0.1)
            got = []
            for f in src:
                got.append(f)
                if len(got) == len(frames):
                    break
    assert [f.index for f in got] == list(range(8))
    for f, ref in zip(got, frames):  # 10 fps is slower than this loop: nothing was skipped
        assert f.image.dtype == np.uint8 and np.array_equal(f.image, ref)
    assert [f.t_media for f in got] == pytest.approx([i / 10 for i in range(8)], abs=1e-3)


def test_us_run_on_an_igtl_stream_reports_mm2(tmp_path, capsys):
    frames = _clip(40) * 3  # 12 s at 10 fps: enough for 25 processed frames even when some are dropped (live)
    with Sender(frames, fps=10, spacing=(0.1, 0.1)) as tx:
        out = tmp_path / "r.json"
        code = edge.cli.main(["us", "run", f"igtl://127.0.0.1:{tx.port}", "--max-frames", "25", "--no-video",
                              "--json", str(out)])
    stdout, err = capsys.readouterr()
    assert code == 0, err
    rep = json.loads(out.read_text())
    assert rep["source"] == f"igtl://127.0.0.1:{tx.port}" and rep["frames"] == 25
    assert rep["calibration"]["mm_per_px"] == [0.1, 0.1] and "OpenIGTLink" in rep["calibration"]["source"]
    assert rep["baseline_vein_area_px"] and rep["baseline_vein_area_mm2"] == pytest.approx(
        rep["baseline_vein_area_px"] * 0.01, abs=0.01)
    assert "mm²" in next(x for x in stdout.splitlines() if x.startswith("vein area:"))


def test_nothing_listening_names_the_url():
    port = _free_port()
    t = time.monotonic()
    with pytest.raises(InputError) as e:
        IgtlSource(f"igtl://127.0.0.1:{port}", open_timeout_s=1.0)
    assert f"igtl://127.0.0.1:{port}: nothing accepts connections" in str(e.value)
    assert time.monotonic() - t < 5


def test_wrong_device_and_a_sender_that_stops():
    frames = [np.full((16, 16), 9, np.uint8)] * 3
    with Sender(frames, fps=50) as tx:
        with pytest.raises(InputError, match=r"no IMAGE message from device 'Nope' within 1 s"):
            IgtlSource(f"igtl://127.0.0.1:{tx.port}/Nope", open_timeout_s=1.0)
    with Sender(frames, fps=50) as tx:
        src = IgtlSource(f"igtl://127.0.0.1:{tx.port}", open_timeout_s=5.0, read_timeout_s=0.5)
        with src, pytest.raises(SourceError, match=f"igtl://127.0.0.1:{tx.port}: no image for 0.5 s"):
            for _ in src:
                pass
        assert src.frames_read >= 1 and src.ended_early
