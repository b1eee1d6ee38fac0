"""``dvt-edge export ...``: model export commands, plugged in through the dvt_edge.commands entry point."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export trained models to ONNX / TensorRT (needs the [train] extra)")
    esub = p.add_subparsers(dest="export_command", metavar="WHAT", required=True)
    us = esub.add_parser("us-onnx", help="export a trained ultrasound checkpoint to ONNX with parity check and card")
    us.add_argument("--checkpoint", type=Path, required=True)
    us.add_argument("--summary", type=Path, required=True, help="train_summary.json from 'dvt-edge train us'")
    us.add_argument("--out", type=Path, default=Path("edge/assets/resunet-lite.onnx"))

    def _us(a: argparse.Namespace) -> int:
        from export.us_model import export_us_model

        export_us_model(a.checkpoint, a.summary, a.out)
        return 0

    us.set_defaults(func=_us)
