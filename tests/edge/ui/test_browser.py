"""The web UI in a real headless Chromium (Playwright driving the system's browser): what a user clicks.

Shows what the API tests cannot: the page renders from the wheel's own assets with no request leaving this
machine, the browser decodes the overlay video (WebM/VP8), and the live tab streams a camera through the
model. The camera is Chromium's fake capture device playing the bundled normal phantom clip, the way a USB
capture card on the scanner's video output would appear. Skipped where Chromium or Playwright is missing
(``.ci/run`` installs both).
"""

from __future__ import annotations

import re
import shutil

import cv2
import pytest

pytest.importorskip("gradio")
sync_api = pytest.importorskip("playwright.sync_api")

from edge.assets import asset  # noqa: E402
from edge.ct.testing import write_series  # noqa: E402

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on this machine (apt-get install chromium)")


def write_y4m(video, path) -> int:
    """The clip as YUV4MPEG2 (4:2:0), the format Chromium's fake camera plays in a loop."""
    cap = cv2.VideoCapture(str(video))
    n = 0
    with open(path, "wb") as out:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            if n == 0:
                h, w = frame.shape[:2]
                out.write(f"YUV4MPEG2 W{w} H{h} F30:1 Ip A1:1 C420jpeg\n".encode())
            out.write(b"FRAME\n" + cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420).tobytes())
            n += 1
    cap.release()
    return n


@pytest.fixture(scope="module")
def ui(ui_server, tmp_path_factory):
    _, _, host = ui_server
    camera = tmp_path_factory.mktemp("camera") / "normal.y4m"
    assert write_y4m(asset("demo-normal.mp4"), camera) > 100
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-video-capture={camera}"])
        context = browser.new_context(viewport={"width": 1400, "height": 1000}, permissions=["camera"])
        hosts: set[str] = set()
        context.on("request", lambda r: hosts.add(r.url.split("/")[2]))
        yield context, host, hosts
        browser.close()


def test_clip_tab_shows_the_verdict_and_a_video_the_browser_plays(ui):
    context, host, hosts = ui
    page = context.new_page()
    page.goto(f"http://{host}/")
    page.get_by_role("button", name="demo-dvt.mp4").click()  # the bundled example
    page.locator("td.filename", has_text="demo-dvt").wait_for(timeout=30_000)
    page.get_by_role("button", name="Check compressibility").click()
    page.get_by_role("heading", name="NON-COMPRESSIBLE").wait_for(timeout=120_000)
    page.wait_for_function("() => { const v = document.querySelector('video');"
                           " return v && v.readyState >= 2 && v.videoWidth > 0; }", timeout=30_000)
    width, height, src = page.evaluate("() => { const v = document.querySelector('video');"
                                       " return [v.videoWidth, v.videoHeight, v.currentSrc]; }")
    assert (width, height) == (640, 480) and src.endswith(".webm")
    assert hosts == {host}, f"the page fetched from other hosts: {hosts - {host}}"  # offline by design
    page.close()


def test_live_tab_streams_the_camera_through_the_model(ui):
    context, host, _ = ui
    page = context.new_page()
    page.goto(f"http://{host}/")
    page.get_by_role("tab", name="Live probe").click()
    page.get_by_text("Click to Access Webcam").click()
    page.get_by_role("button", name="capture photo").click()  # Gradio's record button starts the stream
    # the fake camera loops a normal compression: the live verdict must reach COMPRESSIBLE
    page.get_by_role("heading", name="COMPRESSIBLE (provisional)", exact=True).wait_for(timeout=60_000)
    assert page.get_by_text(re.compile(r"vein (tracked|collapsed); frame \d+")).count() >= 1
    page.close()  # ends the stream


def test_ct_tab_lists_candidates_with_key_images(ui, tmp_path):
    context, host, _ = ui
    page = context.new_page()
    page.goto(f"http://{host}/")
    page.get_by_role("tab", name="CT venography").click()
    files = write_series(tmp_path / "series", n=10, clot_slices=(3, 4, 5))
    page.locator("input[type=file][multiple]").set_input_files([str(p) for p in files])
    page.locator("td.filename").first.wait_for(timeout=30_000)
    page.get_by_role("button", name="Find DVT candidates").click()
    page.get_by_role("heading", name="1 DVT candidate").wait_for(timeout=60_000)
    assert page.locator("table").filter(has_text="box [x0, y0, x1, y1] px").get_by_text("3-5", exact=True).count() == 1
    page.locator("img[src*='finding-01']").first.wait_for(state="attached", timeout=30_000)
    page.close()
