"""The Gradio app served for real on loopback and driven by gradio_client, as a script or a notebook would."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

gr = pytest.importorskip("gradio")
gradio_client = pytest.importorskip("gradio_client")

from edge.assets import asset  # noqa: E402
from edge.ct.testing import write_series  # noqa: E402


@pytest.fixture(scope="module")
def served(ui_server):
    service, app, _ = ui_server
    client = gradio_client.Client(app.local_url, verbose=False)
    yield client, service
    client.close() if hasattr(client, "close") else None


def test_clip_endpoint_returns_verdict_video_curve_and_report(served):
    client, _ = served
    summary, video, curve, report = client.predict(gradio_client.handle_file(str(asset("demo-normal.mp4"))),
                                                   api_name="/analyze_clip")
    assert summary.startswith("### COMPRESSIBLE")
    video_path = video["video"] if isinstance(video, dict) else video
    assert Path(video_path).suffix == ".webm" and Path(video_path).stat().st_size > 10_000
    assert Path(curve).is_file()
    assert json.loads(Path(report).read_text())["verdict"] == "compressible"


def test_ct_endpoint_returns_candidates_and_key_images(served, tmp_path):
    client, _ = served
    files = write_series(tmp_path / "s", n=10, clot_slices=(4, 5))
    summary, table, gallery, report = client.predict([gradio_client.handle_file(str(p)) for p in files], "",
                                                     api_name="/analyze_ct")
    assert summary.startswith("### 1 DVT candidate")
    rows = table["data"] if isinstance(table, dict) else table
    assert [r[1] for r in rows] == ["4-5"]
    assert len(gallery) == 1
    assert json.loads(Path(report).read_text())["findings"][0]["slice_end"] == 5


def test_api_names_its_parameters(served):
    client, _ = served
    api = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert [p["parameter_name"] for p in api["/analyze_clip"]["parameters"]] == ["clip"]
    assert [p["parameter_name"] for p in api["/analyze_ct"]["parameters"]] == ["files", "series_uid"]


def test_bad_upload_is_a_readable_error_not_a_traceback(served, tmp_path):
    client, _ = served
    junk = tmp_path / "notes.txt"
    junk.write_text("not a slice")
    with pytest.raises(Exception) as info:
        client.predict([gradio_client.handle_file(str(junk))], "", api_name="/analyze_ct")
    message = str(info.value)
    assert message.startswith("upload: no CT DICOM files"), message
    assert "Traceback" not in message and "/tmp" not in message  # no server paths leak to the browser
