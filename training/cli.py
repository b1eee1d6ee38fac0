"""``dvt-edge train ...``: training commands, plugged into the CLI through the dvt_edge.commands entry point.

Registration must not import torch: a bedside install has no torch, and ``dvt-edge --help`` must still
work there. The training modules are imported when a train command runs.
"""

from __future__ import annotations

import argparse
import importlib.util


def register(sub: argparse._SubParsersAction) -> None:
    if importlib.util.find_spec("torch") is None:
        raise ImportError("torch is not installed (pip install 'dvt-edge[train]')")
    from training import evaluate_verdicts, train_us

    p = sub.add_parser("train", help="train models (needs the [train] extra: torch)")
    tsub = p.add_subparsers(dest="train_command", metavar="MODEL", required=True)
    us = tsub.add_parser("us", help="train the ultrasound ResUNet on phantoms + real images")
    train_us.add_arguments(us)
    us.set_defaults(func=lambda a: train_us.train(a) and 0)
    ev = tsub.add_parser("us-eval", help="evaluate verdicts on fresh phantom clips no model saw")
    evaluate_verdicts.add_arguments(ev)
    ev.set_defaults(func=evaluate_verdicts.run)
