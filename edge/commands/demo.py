"""``dvt-edge demo``: the bundled model on the bundled phantom clips (one normal, one with DVT)."""

from __future__ import annotations

import argparse
from pathlib import Path

from edge.assets import DEMO_CLIPS, asset, us_model
from edge.backends.select import BACKEND_NAMES
from edge.commands.us import print_verdict
from edge.jobs.us import run_us_job
from edge.notice import NOTICE


def run(args: argparse.Namespace) -> int:
    model = us_model()
    clips = DEMO_CLIPS if args.clip == "both" else {args.clip: DEMO_CLIPS[args.clip]}
    for name, file in clips.items():
        clip = asset(file)
        print(f"\n== demo clip '{name}' ({clip.name}: a synthetic phantom of a femoral compression) ==")
        res = run_us_job(str(clip), model, backend=args.backend, out_dir=args.out, stem=f"demo-{name}",
                         pace=args.pace, threads=args.threads)
        print_verdict(res.report)
        print(f"video: {res.video}\ncurve: {res.curve}\nreport: {res.json}")
    print(f"\n{NOTICE}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the bundled model on the bundled compression clips")
    p.add_argument("--out", type=Path, default=Path("dvt-edge-demo"), help="output folder (default: dvt-edge-demo)")
    p.add_argument("--clip", choices=("both", *DEMO_CLIPS), default="both")
    p.add_argument("--backend", default="auto", choices=BACKEND_NAMES)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--pace", action="store_true", help="play the clip at its frame rate, like a live probe")
    p.set_defaults(func=run)
