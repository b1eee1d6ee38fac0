"""Frame sources: video files, image folders, DICOM cines, cameras, streams, and open_source's dispatch.

Everything is generated in tmp_path (cv2.VideoWriter 'mp4v' clips, PNG folders, synthetic DICOM) except
the real ultrasound cine pydicom ships (examples_ybr_color.dcm), skipped when absent.
"""

from __future__ import annotations

import functools
import http.server
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.errors import InputError, SourceError
from edge.sources import SOURCE_KINDS, Frame, FrameSource, detect_kind, open_source, register_source
from edge.sources.dicom_cine import DicomCineSource
from edge.sources.images import ImageFolderSource, natural_key
from edge.sources.video import CameraSource, StreamSource, VideoFileSource, looks_grey, redact_url

pydicom = pytest.importorskip("pydicom")

from edge.sources.testing import PATIENT_ID, make_dicom  # noqa: E402


# --------------------------------------------------------------------------------------------- helpers
def level(i: int) -> int:
    """The flat grey level that encodes frame i (far enough apart to survive lossy mp4v)."""
    return 10 + 20 * i


def write_video(path: Path, n: int = 10, fps: float = 25.0, colour: bool = False, size=(64, 48)) -> Path:
    w, h = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    assert writer.isOpened(), "this OpenCV cannot write mp4v"
    for i in range(n):
        img = np.empty((h, w, 3), np.uint8)
        img[:] = (200, 60, level(i)) if colour else level(i)  # BGR
        writer.write(img)
    writer.release()
    return path


def write_folder(folder: Path, names: list[str], colour: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        img = np.full((16, 20, 3) if colour else (16, 20), level(i), np.uint8)
        if colour:
            img[..., 0] = 200
        assert cv2.imwrite(str(folder / name), img)
    return folder


def real_cine() -> Path:
    path = Path(pydicom.__file__).parent / "data" / "test_files" / "examples_ybr_color.dcm"
    if not path.is_file():
        pytest.skip(f"pydicom's example cine is not installed at {path}")
    return path


def collect(source) -> list[Frame]:
    with source:
        return list(source)


# ------------------------------------------------------------------------------------------ video files
def test_video_grey_frames_order_and_timestamps(tmp_path):
    path = write_video(tmp_path / "grey.mp4", n=10, fps=25.0)
    src = open_source(str(path))
    assert isinstance(src, VideoFileSource) and isinstance(src, FrameSource)
    assert src.name == "grey.mp4" and src.fps == pytest.approx(25.0) and src.frame_count == 10 and not src.live
    frames = collect(src)
    assert [f.index for f in frames] == list(range(10))
    assert all(f.image.ndim == 2 and f.image.dtype == np.uint8 for f in frames), "grey video -> HxW"
    assert frames[0].image.shape == (48, 64)
    # frame order survives decoding: the flat level encodes the index
    assert [round((float(f.image.mean()) - 10) / 20) for f in frames] == list(range(10))
    t = [f.t_media for f in frames]
    assert t[0] == pytest.approx(0.0) and np.allclose(np.diff(t), 0.04, atol=1e-3)
    caps = [f.t_capture for f in frames]
    assert all(b >= a for a, b in zip(caps, caps[1:]))
    assert not np.shares_memory(frames[0].image, frames[1].image), "each frame owns its pixels"


def test_video_colour_is_bgr(tmp_path):
    frames = collect(VideoFileSource(write_video(tmp_path / "colour.mp4", n=4, colour=True)))
    assert len(frames) == 4
    img = frames[2].image
    assert img.shape == (48, 64, 3)
    b, g, r = (float(img[..., c].mean()) for c in range(3))
    assert b == pytest.approx(200, abs=12) and g == pytest.approx(60, abs=12) and r == pytest.approx(level(2), abs=12)


def test_looks_grey_tolerates_codec_rounding():
    grey = np.full((8, 8, 3), 100, np.uint8)
    grey[..., 1] += 3
    assert looks_grey(grey) and looks_grey(grey[..., 0])
    colour = grey.copy()
    colour[::4, ::4, 2] = 200  # a colour pixel on the subsample grid
    assert not looks_grey(colour)


def test_video_pace_yields_at_container_rate(tmp_path):
    path = write_video(tmp_path / "paced.mp4", n=8, fps=25.0)
    src = open_source(str(path), pace=True)
    assert src.paced
    frames = collect(src)
    span = frames[-1].t_capture - frames[0].t_capture
    assert 0.28 * 0.9 <= span <= 0.28 + 0.25, span  # 7 intervals of 40 ms
    # median, not min: after a frame delayed by a loaded machine the pacer catches up to the schedule
    assert float(np.median(np.diff([f.t_capture for f in frames]))) == pytest.approx(0.04, abs=0.015)


def test_video_iterates_once(tmp_path):
    src = VideoFileSource(write_video(tmp_path / "once.mp4", n=2))
    with src:
        list(src)
        with pytest.raises(RuntimeError):
            iter(src)


# -------------------------------------------------------------------------------------------- bad input
def test_missing_path_names_input(tmp_path):
    spec = str(tmp_path / "missing.mp4")
    with pytest.raises(InputError, match="SOURCE not found") as err:
        open_source(spec)
    assert "missing.mp4" in str(err.value)
    with pytest.raises(InputError, match="missing.mp4"):
        VideoFileSource(spec)


def test_text_file_renamed_mp4(tmp_path):
    bad = tmp_path / "notes.mp4"
    bad.write_text("this is not a video\n" * 20)
    with pytest.raises(InputError, match="notes.mp4") as err:
        open_source(str(bad))
    assert "not a decodable video" in str(err.value)


def test_empty_folder(tmp_path):
    empty = tmp_path / "empty_scans"
    empty.mkdir()
    (empty / "readme.txt").write_text("no images here")
    with pytest.raises(InputError, match="empty_scans"):
        open_source(str(empty))


def test_camera_that_does_not_open():
    with pytest.raises(InputError, match="camera 99 did not open"):
        open_source("99")
    with pytest.raises(InputError, match="camera 99 did not open"):
        CameraSource(99)


def test_non_multiframe_dicom(tmp_path):
    single = make_dicom(tmp_path / "still.dcm", multiframe=False)
    with pytest.raises(InputError, match="still.dcm") as err:
        open_source(str(single))
    assert "multi-frame" in str(err.value) and "single-frame" in str(err.value)
    # a DICOM object with no image at all
    no_pixels = tmp_path / "report.dcm"
    ds = pydicom.dcmread(single)
    del ds.PixelData
    ds.save_as(no_pixels)
    with pytest.raises(InputError, match="report.dcm") as err:
        DicomCineSource(no_pixels)
    assert "no pixel data" in str(err.value)


def test_non_dicom_file_given_as_dicom(tmp_path):
    fake = tmp_path / "fake.dcm"
    fake.write_text("not dicom at all")
    with pytest.raises(InputError, match="fake.dcm") as err:
        open_source(str(fake))
    assert "not a readable DICOM" in str(err.value)


def test_unsupported_url_scheme():
    with pytest.raises(InputError, match="unsupported scheme 'ftp'"):
        open_source("ftp://example.org/clip.mp4")


# ---------------------------------------------------------------------------------------- image folders
def test_image_folder_natural_order_and_timing(tmp_path):
    names = ["1.png", "2.png", "10.png", "frame_3.jpg", "Frame_20.bmp", "frame_100.tiff"]
    folder = write_folder(tmp_path / "scan", names)
    (folder / "notes.txt").write_text("ignored")
    src = open_source(str(folder), fps=10.0)
    assert isinstance(src, ImageFolderSource) and src.frame_count == 6 and src.name == "scan"
    frames = collect(src)
    assert [f.meta["file"] for f in frames] == ["1.png", "2.png", "10.png", "frame_3.jpg", "Frame_20.bmp", "frame_100.tiff"]
    assert [f.t_media for f in frames] == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4, 0.5])
    assert all(f.image.shape == (16, 20) and f.image.dtype == np.uint8 for f in frames)
    # the pixel level written for position i comes back at position i (jpg is lossy: tolerance)
    assert [round((float(f.image.mean()) - 10) / 20) for f in frames] == list(range(6))


def test_natural_key():
    assert sorted(["b10", "b2", "a", "B1", "10", "9"], key=natural_key) == ["9", "10", "a", "B1", "b2", "b10"]


def test_image_folder_without_fps_and_colour(tmp_path):
    frames = collect(ImageFolderSource(write_folder(tmp_path / "c", ["a.png", "b.png"], colour=True)))
    assert [f.t_media for f in frames] == [None, None]
    assert frames[0].image.shape == (16, 20, 3) and frames[0].image[0, 0, 0] == 200


def test_unreadable_image_names_file(tmp_path):
    folder = write_folder(tmp_path / "broken", ["1.png"])
    (folder / "2.png").write_bytes(b"\x89PNG garbage")
    src = ImageFolderSource(folder)
    with src, pytest.raises(SourceError, match="2.png"):
        list(src)


def test_image_folder_pace(tmp_path):
    folder = write_folder(tmp_path / "p", [f"{i}.png" for i in range(5)])
    frames = collect(open_source(str(folder), fps=20.0, pace=True))
    span = frames[-1].t_capture - frames[0].t_capture
    assert 0.2 * 0.9 <= span <= 0.2 + 0.25
    with pytest.raises(InputError, match="fps"):
        ImageFolderSource(folder, pace=True)


# ----------------------------------------------------------------------------------------- DICOM cines
def test_real_ultrasound_cine_ybr_jpeg():
    path = real_cine()
    src = open_source(str(path))
    assert isinstance(src, DicomCineSource)
    assert src.frame_count == 30 and src.photometric == "YBR_FULL_422" and src.name == "examples_ybr_color.dcm"
    assert src.fps == pytest.approx(30.0, rel=1e-3) and src.timing == "FrameTime"
    frames = collect(src)
    assert len(frames) == 30 and [f.index for f in frames] == list(range(30))
    assert all(f.image.shape == (240, 320, 3) and f.image.dtype == np.uint8 for f in frames)
    assert np.allclose(np.diff([f.t_media for f in frames]), 0.033333, atol=1e-4)
    # Colour conversion: B-mode is mostly grey, so correctly converted RGB has near-equal channel means;
    # unconverted YBR would put Cb/Cr at ~128 on a dark image.
    img = frames[0].image.astype(np.float64)
    means = img.reshape(-1, 3).mean(axis=0)
    assert means.max() < 60 and means.max() - means.min() < 5, means
    # and it matches pydicom's own RGB conversion, channel-swapped to BGR
    from pydicom.pixels import pixel_array

    rgb = pixel_array(str(path), index=0)
    assert np.array_equal(frames[0].image, rgb[..., ::-1])


def test_synthetic_cine_timing_and_privacy(tmp_path):
    path = make_dicom(tmp_path / "cine.dcm", n=5, frame_time_ms=40.0)
    src = open_source(str(path))
    assert isinstance(src, DicomCineSource) and src.fps == pytest.approx(25.0) and src.timing == "FrameTime"
    frames = collect(src)
    assert [f.t_media for f in frames] == pytest.approx([0.0, 0.04, 0.08, 0.12, 0.16])
    assert [int(f.image[0, 0]) for f in frames] == [level(i) for i in range(5)]
    assert frames[0].image.shape == (8, 12) and frames[0].image.flags.writeable
    text = repr(src) + repr(vars(src)) + src.name + "".join(repr(f.meta) for f in frames)
    assert PATIENT_ID not in text and "Doe" not in text


def test_synthetic_cine_pace_wall_clock(tmp_path):
    path = make_dicom(tmp_path / "paced.dcm", n=6, frame_time_ms=40.0)
    frames = collect(DicomCineSource(path, pace=True))
    gaps = np.diff([f.t_capture for f in frames])
    assert frames[-1].t_capture - frames[0].t_capture == pytest.approx(0.2, abs=0.1)
    assert float(np.median(gaps)) == pytest.approx(0.04, abs=0.015), gaps


def test_cine_frame_time_vector_and_cine_rate(tmp_path):
    vec = collect(DicomCineSource(make_dicom(tmp_path / "v.dcm", n=4, frame_time_ms=None, frame_time_vector=[0, 40, 60, 40])))
    assert [f.t_media for f in vec] == pytest.approx([0.0, 0.04, 0.1, 0.14])
    rate = DicomCineSource(make_dicom(tmp_path / "r.dcm", n=3, frame_time_ms=None, cine_rate=20))
    assert rate.timing == "CineRate" and [f.t_media for f in collect(rate)] == pytest.approx([0.0, 0.05, 0.1])
    untimed = DicomCineSource(make_dicom(tmp_path / "u.dcm", n=2, frame_time_ms=None))
    assert untimed.fps is None and [f.t_media for f in collect(untimed)] == [None, None]
    with pytest.raises(InputError, match="u.dcm"):
        DicomCineSource(tmp_path / "u.dcm", pace=True)
    assert DicomCineSource(tmp_path / "u.dcm", fps=10).fps == 10


def test_cine_rgb_and_ybr_full_to_bgr(tmp_path):
    from pydicom.pixels import convert_color_space

    rgb = np.zeros((3, 6, 8, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 220, 100, 30  # R, G, B
    rgb[1, ..., 1] = 180
    got = collect(DicomCineSource(make_dicom(tmp_path / "rgb.dcm", rgb, photometric="RGB")))
    assert got[0].image.shape == (6, 8, 3) and tuple(got[0].image[0, 0]) == (30, 100, 220)  # BGR
    ybr = np.stack([convert_color_space(f, "RGB", "YBR_FULL") for f in rgb])
    got = collect(DicomCineSource(make_dicom(tmp_path / "ybr.dcm", ybr, photometric="YBR_FULL")))
    assert np.abs(got[1].image.astype(int) - rgb[1][..., ::-1]).max() <= 2


def test_cine_monochrome1_and_16_bit(tmp_path):
    inv = collect(DicomCineSource(make_dicom(tmp_path / "m1.dcm", n=2, photometric="MONOCHROME1")))
    assert int(inv[1].image[0, 0]) == 255 - level(1)
    frames16 = np.stack([np.full((4, 4), level(i) << 8, np.uint16) for i in range(3)])
    deep = collect(DicomCineSource(make_dicom(tmp_path / "m16.dcm", frames16, bits=16)))
    assert deep[2].image.dtype == np.uint8 and int(deep[2].image[0, 0]) == level(2)


def test_cine_missing_decoder_says_what_to_install(tmp_path):
    from pydicom.pixels import get_decoder
    from pydicom.uid import JPEGLSLossless

    if get_decoder(JPEGLSLossless).is_available:
        pytest.skip("a JPEG-LS decoder is installed here, so the missing-decoder message cannot be seen")
    path = make_dicom(tmp_path / "jls.dcm", n=2)
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = JPEGLSLossless
    from pydicom.encaps import encapsulate

    ds.PixelData = encapsulate([b"\xff\xd8fake\xff\xd9", b"\xff\xd8fake\xff\xd9"])
    ds["PixelData"].VR = "OB"
    ds.save_as(path)
    with pytest.raises(InputError, match="jls.dcm") as err:
        DicomCineSource(path)
    assert "pip install pylibjpeg pylibjpeg-libjpeg" in str(err.value)


def test_dicom_detected_without_extension(tmp_path):
    path = make_dicom(tmp_path / "IM0001", n=2)
    assert detect_kind(str(path)) == "dicom"
    assert isinstance(open_source(str(path)), DicomCineSource)


# --------------------------------------------------------------------------------------------- streams
def test_redact_url():
    assert redact_url("rtsp://user:secret@10.0.0.5:554/live?token=abc") == "rtsp://10.0.0.5:554"
    assert redact_url("https://probe.local/stream.m3u8?key=1") == "https://probe.local"
    assert redact_url("udp://@:1234") == "udp://:1234"
    assert redact_url("srt://[::1]:9000?passphrase=x") == "srt://[::1]:9000"


def test_stream_that_does_not_open_hides_credentials():
    t0 = time.monotonic()
    with pytest.raises(InputError) as err:
        open_source("rtsp://user:secret@127.0.0.1:1/scan?token=abc")
    msg = str(err.value)
    assert "rtsp://127.0.0.1:1" in msg and "secret" not in msg and "token" not in msg
    assert time.monotonic() - t0 < 10


def test_http_stream_end_to_end(tmp_path):
    write_video(tmp_path / "clip.mp4", n=6)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(tmp_path)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/clip.mp4?session=xyz"
        src = open_source(url)
        # a recorded file served over HTTP states its frame count: it is read like a file, not as a live feed
        assert isinstance(src, StreamSource) and not src.live and src.frame_count == 6
        assert src.name == f"http://127.0.0.1:{server.server_address[1]}"
        frames = collect(src)
        assert [f.index for f in frames] == list(range(6)) and frames[0].image.ndim == 2
    finally:
        server.shutdown()
        server.server_close()


# ------------------------------------------------------------------------------------------ the registry
def test_detect_kind_and_register(tmp_path):
    assert detect_kind("0") == "camera" and detect_kind("/dev/video2") == "camera"
    assert detect_kind("rtsp://h/x") == "stream" and detect_kind("srt://h:9") == "stream"
    assert detect_kind(str(tmp_path)) == "folder"
    opened = []

    def opener(spec, *, fps=None, pace=False):
        opened.append((spec, fps, pace))
        return "custom"

    before = list(SOURCE_KINDS)
    register_source("probe", lambda s: s.startswith("probe://"), opener)
    try:
        assert open_source("probe://usb1", fps=12, pace=True) == "custom"
        assert opened == [("probe://usb1", 12, True)]
    finally:
        SOURCE_KINDS.pop("probe")
    assert list(SOURCE_KINDS) == before
