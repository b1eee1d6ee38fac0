"""The Gradio front end: ``dvt-edge ui``. Three tabs, each a thin wire to :class:`edge.ui.service.UiService`:

- **Compression clip**: upload a clip (video or DICOM cine) or pick a bundled phantom example -> overlay video,
  vein-area curve, verdict, JSON report.
- **Live probe**: the browser's camera stream (a USB capture card on the ultrasound's video out shows up as a
  camera) -> per-frame overlay and live verdict; "New compression" starts a new baseline.
- **CT venography**: upload the DICOM files of a series (or a .zip, or a NIfTI volume) -> candidates table,
  key images, JSON report.

Gradio is an optional dependency (``pip install 'dvt-edge[ui]'``); nothing else in edge/ imports this module.
Binds to 127.0.0.1 by default: the UI has no authentication, so exposing it is an explicit choice (``--host``).
Offline by design: Gradio's telemetry and version check are switched off, the theme's fonts are the ones in
the Gradio wheel, and no share link is ever made.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from edge.errors import ConfigError, DvtEdgeError
from edge.notice import NOTICE
from edge.ui.service import UiService

API_NAMES = ("analyze_clip", "analyze_ct")  # the endpoints gradio_client can call


def require_gradio():
    # no telemetry and no version check against the internet: a bedside tool makes no calls it was not asked
    # to make (set before gradio is imported; the Blocks below also pass analytics_enabled=False)
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    try:
        import gradio as gr
    except ImportError as exc:
        raise ConfigError(f"the web UI needs Gradio ({exc}); install it with: pip install 'dvt-edge[ui]'") from None
    return gr


def build_app(service: UiService):
    """The Gradio Blocks app for ``service`` (not launched)."""
    gr = require_gradio()
    from edge.assets import DEMO_CLIPS, asset

    def as_ui_error(fn):
        @functools.wraps(fn)  # keeps the parameter names the API page and gradio_client show
        def wrapped(*args):
            try:
                return fn(*args)
            except DvtEdgeError as exc:  # the user's input: say what is wrong, no traceback
                raise gr.Error(str(exc), duration=None) from None
        return wrapped

    @as_ui_error
    def analyze_clip(clip):
        a = service.analyze_clip(clip)
        return (a.summary, str(a.video) if a.video else None, str(a.curve) if a.curve else None,
                str(a.report) if a.report else None)

    @as_ui_error
    def analyze_ct(files, series_uid, progress=gr.Progress()):  # noqa: B008 - Gradio's way to ask for a bar
        if isinstance(files, list):
            files = [getattr(f, "name", f) for f in files]
        a = service.analyze_ct(files, series_uid,
                               progress=lambda n, total: progress((n, total), desc="slices", unit="slices"))
        return a.summary, a.findings, [str(p) for p in a.key_images], str(a.report)

    @as_ui_error
    def live_frame(image, session):
        if image is None:
            return None, "waiting for the camera ...", session
        session = session or service.live_session()
        overlay, status = session.feed(image)
        return overlay, status, session

    def live_reset(session):
        if session is not None:
            session.reset()
        return None, "new compression: hold the probe still for the baseline, then press", session

    # delete_cache: Gradio's copies of uploads and outputs older than a day go, checked hourly
    with gr.Blocks(title="DVT Edge", analytics_enabled=False, delete_cache=(3600, 86400)) as app:
        gr.Markdown(f"# DVT Edge\nCompression ultrasound and CT venography. **{NOTICE}**")
        with gr.Tab("Compression clip"):
            with gr.Row():
                with gr.Column(scale=1):
                    clip = gr.File(label="Ultrasound clip (video or DICOM cine)", type="filepath")
                    gr.Examples([[str(asset(f))] for f in DEMO_CLIPS.values()], inputs=[clip],
                                label="Bundled phantom clips (normal, DVT)")
                    run_clip = gr.Button("Check compressibility", variant="primary")
                    verdict = gr.Markdown()
                with gr.Column(scale=2):
                    video = gr.Video(label="Overlay", show_label=False, autoplay=True, loop=True)
                    curve = gr.Image(label="Vein area over time", show_label=False, type="filepath")
                    report = gr.File(label="Report (JSON)")
            run_clip.click(analyze_clip, [clip], [verdict, video, curve, report], api_name="analyze_clip",
                           concurrency_limit=1)
        with gr.Tab("Live probe"):
            gr.Markdown("Stream from this computer's camera or a USB capture card on the scanner's video output. "
                        "Hold still for a second (baseline), then compress.")
            session = gr.State(None)
            with gr.Row():
                # never mirrored: a flipped image swaps the artery and vein sides the clinician sees
                cam = gr.Image(label="Probe video", sources=["webcam"], type="numpy", streaming=True,
                               webcam_options=gr.WebcamOptions(mirror=False))
                # JPEG: ~1 ms per 640x480 frame here; PNG took ~44 ms
                live_out = gr.Image(label="Overlay", show_label=False, type="numpy", format="jpeg")
            with gr.Row():
                status = gr.Markdown()
                new = gr.Button("New compression")
            cam.stream(live_frame, [cam, session], [live_out, status, session], stream_every=0.05,
                       time_limit=600, concurrency_limit=4, api_visibility="private")
            new.click(live_reset, [session], [live_out, status, session], api_visibility="private")
        with gr.Tab("CT venography"):
            with gr.Row():
                with gr.Column(scale=1):
                    ct_files = gr.File(label="DICOM files of one series, a .zip of them, or a .nii/.nii.gz",
                                       file_count="multiple", type="filepath")
                    series = gr.Textbox(label="Series (only when the upload holds several)",
                                        placeholder="SeriesInstanceUID or its short hash")
                    run_ct = gr.Button("Find DVT candidates", variant="primary")
                    ct_summary = gr.Markdown()
                with gr.Column(scale=2):
                    table = gr.Dataframe(headers=["#", "slices", "peak slice", "score", "box [x0, y0, x1, y1] px",
                                                  "size mm"], label="Candidates", interactive=False)
                    gallery = gr.Gallery(label="Key images", show_label=False, columns=2)
                    ct_report = gr.File(label="Report (JSON)")
            run_ct.click(analyze_ct, [ct_files, series], [ct_summary, table, gallery, ct_report],
                         api_name="analyze_ct", concurrency_limit=1)
    return app


def launch(service: UiService, *, host: str = "127.0.0.1", port: int = 7860, block: bool = True):
    """Build and serve the app; returns the Blocks (its ``local_url`` says where). ``block=False`` returns
    at once (tests, notebooks); ``app.close()`` stops it."""
    gr = require_gradio()
    app = build_app(service)
    app.queue(default_concurrency_limit=1)
    try:
        app.launch(server_name=host, server_port=port, prevent_thread_lock=not block, quiet=not block,
                   allowed_paths=[str(service.workdir), str(Path(__file__).resolve().parents[1] / "assets")],
                   theme=gr.themes.Soft(), show_error=True, footer_links=["api", "gradio"])
    except OSError as exc:
        raise ConfigError(f"cannot serve the UI on {host}:{port} ({exc}); pick another --port") from None
    return app
