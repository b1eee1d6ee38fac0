"""``dvt-edge train ...``: training commands, plugged into the CLI through the dvt_edge.commands entry point."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train models (needs the [train] extra: torch)")
    tsub = p.add_subparsers(dest="train_command", metavar="MODEL", required=True)
    us = tsub.add_parser("us", help="train the ultrasound ResUNet on phantoms + real images")
    from training import train_us

    train_us.add_arguments(us)
    us.set_defaults(func=lambda a: train_us.train(a) and 0)
    ev = tsub.add_parser("us-eval", help="evaluate verdicts on fresh phantom clips no model saw")
    from training import evaluate_verdicts

    evaluate_verdicts.add_arguments(ev)
    ev.set_defaults(func=evaluate_verdicts.run)
