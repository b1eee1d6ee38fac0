"""The options of the CT export from saved weights, shared by ``dvt-edge export ct-onnx`` and
``python -m export.ct_model`` (kept free of torch so the CLI can register them without loading it)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_checkpoint_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", type=Path, nargs="+", required=True,
                   help="ctdet-k{k}.pt from python -m training.ct.train; two or more: export their mean as one graph "
                        "(each member's summary beside its weights)")
    p.add_argument("--summary", type=Path, default=None,
                   help="its train_summary.json (default: ctdet-k{k}.train_summary.json beside the weights; one "
                        "checkpoint only)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: the first checkpoint's folder)")
