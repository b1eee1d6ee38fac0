"""Issue 14: CT slices decoded by a pool of threads ahead of inference (``CTSeries.prefetch``), and the JPEG 2000
decoder plugin (``edge.ct.j2k``, imagecodecs). Same findings, same order, same errors as decoding inline; the
pool never runs more than ``depth`` slices ahead of its consumer. No wall-clock thresholds here: the speed is
measured by ``benchmarks/ct_decode.py`` (benchmarks/results/ct-decode.md)."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from edge.ct import dicom_series
from edge.ct.dicom_series import scan_series
from edge.ct.loop import run_slice_loop
from edge.ct.stream import iter_folder
from edge.ct.testing import ThresholdDetector, write_series
from edge.errors import ConfigError, InputError

SAMPLE = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "ct-dicom-sample"


def _j2k_series(folder: Path, n: int = 9, bad: int | None = None, **kw) -> list[Path]:
    """A synthetic series re-encoded as JPEG 2000 Lossless (pylibjpeg-openjpeg); slice ``bad`` gets a codestream
    cut to 40 bytes (its file is complete, so the header pass accepts it: only decoding fails)."""
    pytest.importorskip("openjpeg")
    import pydicom
    from pydicom.encaps import encapsulate, generate_frames
    from pydicom.uid import JPEG2000Lossless

    paths = write_series(folder, n, **kw)
    for i, p in enumerate(paths):
        ds = pydicom.dcmread(p)
        ds.compress(JPEG2000Lossless, encoding_plugin="pylibjpeg")
        if i == bad:
            frame = next(generate_frames(ds.PixelData, number_of_frames=1))
            ds.PixelData = encapsulate([frame[:40]])
        ds.save_as(p, enforce_file_format=True)
    return paths


def _findings(folder: Path, workers: int) -> tuple[list, list, int]:
    res = run_slice_loop(iter_folder(folder, decode_workers=workers), ThresholdDetector())
    return [f.to_json() for f in res.findings], res.warnings, res.slices


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_findings_identical_with_and_without_the_pool(tmp_path, workers):
    write_series(tmp_path / "plain", 24, clot_slices=(5, 6, 7, 15, 16))
    _j2k_series(tmp_path / "j2k", 12, clot_slices=(3, 4, 5))
    for name in ("plain", "j2k"):
        inline = _findings(tmp_path / name, 0)
        assert inline[0], "the phantom must produce findings, or the comparison proves nothing"
        assert _findings(tmp_path / name, workers) == inline


def test_slices_come_out_in_order_when_workers_finish_out_of_order(tmp_path, monkeypatch):
    paths = write_series(tmp_path, 16)
    series = scan_series(tmp_path)
    expected = [s.hu.copy() for s in series]
    real = dicom_series.decode_hu

    def uneven(path, ds=None):  # early slices decode slowest, so later ones finish first
        i = int(Path(path).stem[1:])
        time.sleep(0.002 * (i % 4 == 0) * 5)
        return real(path, ds)

    monkeypatch.setattr(dicom_series, "decode_hu", uneven)
    got = list(series.prefetch(depth=6, workers=4))
    assert [s.index for s in got] == list(range(len(paths)))
    assert all(np.array_equal(a.hu, b) for a, b in zip(got, expected))
    assert [s.meta["file"] for s in got] == [p.name for p in paths]


@pytest.mark.parametrize("workers", [1, 2, 4])
def test_a_bad_slice_in_the_middle_is_reported_as_without_the_pool(tmp_path, workers):
    paths = _j2k_series(tmp_path, 10, bad=5)

    def run(w):
        seen = []
        with pytest.raises(InputError) as err:
            for s in iter_folder(tmp_path, decode_workers=w):
                seen.append(s.index)
        return seen, re.sub(r"0x[0-9a-f]+", "0x", str(err.value))  # pillow names a BytesIO by its address

    inline = run(0)
    assert inline[0] == [0, 1, 2, 3, 4] and paths[5].name in inline[1] and "cannot decode" in inline[1]
    assert run(workers) == inline  # the slices before it, then the same error naming the same file


def test_a_truncated_slice_is_still_named_before_any_decoding(tmp_path):
    paths = write_series(tmp_path, 8)
    data = paths[4].read_bytes()
    paths[4].write_bytes(data[: len(data) - 500])
    with pytest.raises(InputError) as err:
        list(iter_folder(tmp_path, decode_workers=2))
    assert paths[4].name in str(err.value) and "truncated" in str(err.value)


@pytest.mark.parametrize("depth,workers", [(2, 2), (4, 2), (3, 1), (5, 3)])
def test_the_pool_is_bounded_by_depth_with_a_slow_consumer(tmp_path, monkeypatch, depth, workers):
    write_series(tmp_path, 20)
    series = scan_series(tmp_path)
    started: list[int] = []
    lock = threading.Lock()
    real = series.read_slice

    def counting(i):
        with lock:
            started.append(i)
        return real(i)

    monkeypatch.setattr(series, "read_slice", counting)
    ahead = []
    for s in series.prefetch(depth=depth, workers=workers):
        time.sleep(0.01)  # a slow consumer: give the workers every chance to run ahead
        with lock:
            ahead.append(max(started) - s.index)
    assert max(ahead) <= depth  # never more than depth slices past the one the consumer holds
    assert max(ahead) >= 1  # ... but it does decode ahead
    assert sorted(started) == list(range(20))  # each slice decoded once


def test_a_consumer_that_stops_early_does_not_decode_the_rest(tmp_path, monkeypatch):
    write_series(tmp_path, 30)
    series = scan_series(tmp_path)
    started: list[int] = []
    real = series.read_slice
    monkeypatch.setattr(series, "read_slice", lambda i: (started.append(i), real(i))[1])
    it = series.prefetch(depth=3, workers=2)
    assert next(it).index == 0
    it.close()
    assert max(started) <= 4 and len(started) < 30


@pytest.mark.parametrize("bad", [-1, 17, 2.5, "x"])
def test_decode_workers_out_of_range_is_a_config_error(tmp_path, bad):
    write_series(tmp_path, 4)
    with pytest.raises(ConfigError):
        iter_folder(tmp_path, decode_workers=bad)


def test_cli_decode_workers_gives_the_same_report(tmp_path, capsys, threshold_detector):
    import json

    from edge.cli import main

    write_series(tmp_path / "s", 14, clot_slices=(4, 5, 6))
    reports = []
    for w in ("0", "2"):
        out = tmp_path / f"r{w}.json"
        assert main(["ct", "scan", str(tmp_path / "s"), "--json", str(out), "--decode-workers", w]) == 0
        rep = json.loads(out.read_text())
        reports.append((rep["findings"], rep.get("warnings")))
    assert reports[0] == reports[1] and reports[0][0]
    with pytest.raises(SystemExit) as bad:  # argparse's usage error, before anything is read
        main(["ct", "scan", str(tmp_path / "s"), "--decode-workers", "99"])
    assert bad.value.code == 2
    capsys.readouterr()


# ------------------------------------------------------------------ the JPEG 2000 plugin (imagecodecs)


def _decode_with(ds, plugin: str) -> np.ndarray:
    from pydicom.pixels import pixel_array

    return pixel_array(ds, decoding_plugin=plugin)


@pytest.mark.parametrize("signed", [False, True])
def test_imagecodecs_plugin_is_pixel_identical_on_a_synthetic_j2k_series(tmp_path, signed):
    pytest.importorskip("imagecodecs")
    import pydicom

    from edge.ct import j2k

    assert j2k.register() and j2k._active()[0] == j2k.LABEL  # first in pydicom's order
    paths = write_series(tmp_path, 3, clot_slices=(1,))
    if signed:  # stored values are HU themselves (PixelRepresentation 1), as many scanners write them
        for p in paths:
            ds = pydicom.dcmread(p)
            hu = ds.pixel_array.astype(np.int32) - 1024
            ds.PixelRepresentation, ds.RescaleIntercept = 1, 0
            ds.PixelData = hu.astype("<i2").tobytes()
            ds.save_as(p, enforce_file_format=True)
    ref = [dicom_series.decode_hu(p) for p in paths]
    for p in paths:
        ds = pydicom.dcmread(p)
        ds.compress(pydicom.uid.JPEG2000Lossless, encoding_plugin="pylibjpeg")
        ds.save_as(p, enforce_file_format=True)
    for p, r in zip(paths, ref):
        ds = pydicom.dcmread(p)
        a, b = _decode_with(ds, "imagecodecs"), _decode_with(ds, "pylibjpeg")
        assert a.dtype == b.dtype and np.array_equal(a, b)
        assert np.array_equal(dicom_series.decode_hu(p), r)  # the default order (imagecodecs first) gives the HU


@pytest.mark.skipif(not SAMPLE.is_dir(), reason="../shared/data/ct-dicom-sample (real JPEG 2000 series) is absent")
def test_imagecodecs_plugin_is_pixel_identical_on_the_real_sample():
    pytest.importorskip("imagecodecs")
    import pydicom

    from edge.ct import j2k

    j2k.register()
    files = sorted(p for p in SAMPLE.iterdir() if p.is_file())
    assert files
    for p in files:
        ds = pydicom.dcmread(p)
        ref = _decode_with(ds, "pylibjpeg")
        for plugin in ("imagecodecs", "gdcm"):
            try:
                got = _decode_with(ds, plugin)
            except (ValueError, RuntimeError) as exc:
                if plugin == "gdcm" and "not available" in str(exc):
                    continue
                raise
            assert got.dtype == ref.dtype and np.array_equal(got, ref), (p.name, plugin)


def test_plugin_falls_through_to_pydicoms_own_when_it_cannot_decode(monkeypatch, tmp_path):
    pytest.importorskip("imagecodecs")
    import imagecodecs

    from edge.ct import j2k

    j2k.register()
    paths = _j2k_series(tmp_path, 2)
    ref = dicom_series.decode_hu(paths[0])

    def broken(*a, **k):
        raise imagecodecs.Jpeg2kError("simulated")

    monkeypatch.setattr(imagecodecs, "jpeg2k_decode", broken)
    assert np.array_equal(dicom_series.decode_hu(paths[0]), ref)
