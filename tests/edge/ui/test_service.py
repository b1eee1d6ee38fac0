"""The jobs behind the web UI, without Gradio: clip, live frames, CT uploads (staging, zip safety, errors)."""

from __future__ import annotations

import json
import zipfile

import cv2
import numpy as np
import pytest

from edge.assets import asset
from edge.ct.testing import write_series
from edge.errors import InputError
from edge.ui.service import UiService, stage_ct_upload


@pytest.fixture
def service(tmp_path, threshold_detector):
    s = UiService(workdir=tmp_path / "ui", threads=1)
    yield s
    s.close()


def _frames(path):
    cap = cv2.VideoCapture(str(path))
    fourcc = int(cap.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little").decode(errors="replace")
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n, fourcc


def test_clip_gives_the_verdict_a_browser_video_curve_and_report(service):
    a = service.analyze_clip(str(asset("demo-dvt.mp4")))
    assert a.verdict == "non_compressible"
    assert a.summary.startswith("### NON-COMPRESSIBLE") and "Not for diagnostic use" in a.summary
    n, fourcc = _frames(a.video)
    report = json.loads(a.report.read_text())
    assert a.video.suffix == ".webm" and fourcc == "VP80" and n == report["frames"] > 100
    assert a.curve.is_file() and cv2.imread(str(a.curve)) is not None
    assert report["verdict"] == "non_compressible" and report["complete"] is True
    assert a.video.parent.parent == service.workdir  # outputs stay under the UI's folder


def test_no_clip_is_a_clear_error(service):
    with pytest.raises(InputError, match="no clip: upload a video"):
        service.analyze_clip(None)


def test_unreadable_clip_names_the_file(service, tmp_path):
    bad = tmp_path / "notavideo.mp4"
    bad.write_bytes(b"\0" * 100)
    with pytest.raises(InputError, match="notavideo.mp4"):
        service.analyze_clip(str(bad))


def test_live_session_follows_a_compression_frame_by_frame(service):
    live = service.live_session()
    cap = cv2.VideoCapture(str(asset("demo-normal.mp4")))
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    statuses, n, bgr = [], 0, None
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        bgr = frame
        overlay, status = live.feed(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), t=n / fps)
        statuses.append(status)
        n += 1
    cap.release()
    assert overlay.shape == bgr.shape and overlay.dtype == np.uint8
    assert not np.array_equal(overlay, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))  # it drew the overlay
    assert statuses[0].startswith("### INDETERMINATE")  # no compression seen yet
    assert statuses[-1].startswith("### COMPRESSIBLE (provisional)")
    live.reset()
    assert live.frames == 0
    _, status = live.feed(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), t=0.0)
    assert status.startswith("### INDETERMINATE")  # a new baseline, not the old curve
    # a second tab gets its own session on the same backend
    other = service.live_session()
    assert other.pipeline is not live.pipeline and other.pipeline.backend is live.pipeline.backend


def test_live_session_refuses_a_missing_frame(service):
    with pytest.raises(InputError, match="is the camera on"):
        service.live_session().feed(None)


# -- CT --------------------------------------------------------------------------------------------------


def test_ct_upload_of_dicom_files_finds_the_clot(service, tmp_path):
    paths = write_series(tmp_path / "series", n=12, clot_slices=(5, 6, 7))
    a = service.analyze_ct([str(p) for p in paths])
    assert a.summary.startswith("### 1 DVT candidate")
    assert len(a.findings) == 1 and a.findings[0][1] == "5-7"
    assert len(a.key_images) == 1 and cv2.imread(str(a.key_images[0])) is not None
    report = json.loads(a.report.read_text())
    assert report["slices"] == 12 and report["findings"][0]["slice_start"] == 5
    assert not (a.report.parent.parent / "input").exists()  # the uploaded copy is removed


def test_ct_progress_counts_slices_and_keeps_the_report(service, tmp_path):
    paths = write_series(tmp_path / "series", n=9, clot_slices=(4,))
    ticks = []
    a = service.analyze_ct([str(p) for p in paths], progress=lambda n, total: ticks.append((n, total)))
    assert ticks == [(n, 9) for n in range(1, 10)]
    assert [r[1] for r in a.findings] == ["4-4"]  # the wrapped stream still gives direction and warnings


def test_ct_upload_as_zip_with_a_folder_inside(service, tmp_path):
    paths = write_series(tmp_path / "series", n=10, clot_slices=(2, 3))
    z = tmp_path / "series.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for p in paths:
            zf.write(p, f"export/CT/{p.name}")
        zf.writestr("__MACOSX/export/._s000.dcm", b"resource fork")
    a = service.analyze_ct(str(z))
    assert [r[1] for r in a.findings] == ["2-3"]


def test_ct_without_candidates_says_so(service, tmp_path):
    a = service.analyze_ct([str(p) for p in write_series(tmp_path / "s", n=8)])
    assert a.summary.startswith("### No DVT candidate") and a.findings == [] and a.key_images == []


def test_ct_gap_is_reported_not_hidden(service, tmp_path):
    a = service.analyze_ct([str(p) for p in write_series(tmp_path / "s", n=10, skip=(4,))])
    assert "gap" in a.summary.lower() or "missing" in a.summary.lower()


def test_ct_two_series_in_one_upload_is_an_error(service, tmp_path):
    files = write_series(tmp_path / "a", n=6) + write_series(tmp_path / "b", n=6, z0=0.0)
    with pytest.raises(InputError, match="series"):
        service.analyze_ct([str(p) for p in files])


def test_stage_refuses_empty_zip_slip_and_mixed_uploads(tmp_path):
    with pytest.raises(InputError, match="no CT files"):
        stage_ct_upload([], tmp_path / "d0")
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("../../outside.dcm", b"x")
    with pytest.raises(InputError, match="outside the archive"):
        stage_ct_upload(str(evil), tmp_path / "d1")
    assert not (tmp_path / "outside.dcm").exists()
    notzip = tmp_path / "broken.zip"
    notzip.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(InputError, match="broken.zip: not a readable .zip"):
        stage_ct_upload(str(notzip), tmp_path / "d2")
    nii = tmp_path / "vol.nii.gz"
    nii.write_bytes(b"\0")
    other = tmp_path / "x.dcm"
    other.write_bytes(b"\0")
    with pytest.raises(InputError, match="NIfTI volume .* together with other files"):
        stage_ct_upload([str(nii), str(other)], tmp_path / "d3")
    assert stage_ct_upload([str(nii)], tmp_path / "d4") == nii  # one volume is read in place


def test_old_job_folders_are_pruned(service, monkeypatch):
    import edge.ui.service as svc

    monkeypatch.setattr(svc, "KEEP_JOBS", 3)
    made = [service._job_dir("ct") for _ in range(5)]
    assert sorted(p.name for p in service.workdir.iterdir()) == sorted(p.name for p in made[-3:])


def test_stage_keeps_files_with_equal_names_from_different_folders(tmp_path):
    a = write_series(tmp_path / "a", n=3)
    b = write_series(tmp_path / "b", n=3, z0=-91.0)  # same file names s000..s002
    out = stage_ct_upload([str(p) for p in a + b], tmp_path / "staged")
    assert len(list(out.iterdir())) == 6


def test_ui_without_gradio_says_what_to_install(monkeypatch, capsys):
    import sys

    from edge.cli import main

    monkeypatch.setitem(sys.modules, "gradio", None)  # import gradio -> ImportError
    assert main(["ui", "--port", "0"]) != 0
    err = capsys.readouterr().err
    assert "pip install 'dvt-edge[ui]'" in err and "Traceback" not in err
