"""``dvt-edge ui``: the Gradio front end for both jobs (needs ``pip install 'dvt-edge[ui]'``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from edge.backends.select import BACKEND_NAMES
from edge.notice import NOTICE


def run(args: argparse.Namespace) -> int:
    from edge.ui.app import launch, require_gradio
    from edge.ui.service import UiService

    require_gradio()  # say what to install before making any folder
    service = UiService(us_model=args.model, ct_model=args.ct_model, backend=args.backend, threads=args.threads,
                        workdir=args.workdir)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: serving on {args.host}: the UI has no login; anyone who can reach this port can use it")
    print(f"DVT Edge UI on http://{'localhost' if args.host == '127.0.0.1' else args.host}:{args.port} "
          f"(Ctrl+C stops it); outputs under {service.workdir} - {NOTICE}", flush=True)
    try:
        launch(service, host=args.host, port=args.port, block=True)
    finally:
        service.close()
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ui", help="web front end for both jobs (needs: pip install 'dvt-edge[ui]')",
                       description="Serve the DVT Edge web UI (Gradio). " + NOTICE)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this computer only)")
    p.add_argument("--port", type=int, default=7860, help="TCP port (default 7860)")
    p.add_argument("--backend", default="auto", choices=BACKEND_NAMES, help="inference runtime (default auto)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for ONNX Runtime")
    p.add_argument("--model", type=Path, default=None, help="ultrasound model .onnx (default: the packaged one)")
    p.add_argument("--ct-model", type=Path, default=None, help="CT detector .onnx (default: the packaged ctdet-k3)")
    p.add_argument("--workdir", type=Path, default=None, help="folder for outputs (default: a new temp folder)")
    p.set_defaults(func=run)
