"""Command line: write compression-ultrasound phantom clips (mp4 + masks + label) to a folder.

    python -m training.phantoms --out DIR --normal N --dvt N [--seed S] [--low-pressure-fraction F]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from .us_clip import generate_clip, write_clip


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m training.phantoms",
        description="Write synthetic compression-ultrasound clips of the femoral groin (DVT phantom): "
                    "<stem>.mp4, <stem>.masks.npz and <stem>.json per clip. Clip i uses seed S + i; "
                    "keep S >= 900000 for evaluation data (training uses seeds below 900000).")
    p.add_argument("--out", type=Path, required=True, help="output folder (created if missing)")
    p.add_argument("--normal", type=int, default=0, help="number of normal (compressible) clips")
    p.add_argument("--dvt", type=int, default=0, help="number of DVT (non-compressible) clips")
    p.add_argument("--seed", type=int, default=0, help="seed of the first clip (default 0)")
    p.add_argument("--low-pressure-fraction", type=float, default=None, metavar="F",
                   help="fraction of clips scanned with low probe pressure (expected verdict indeterminate); "
                        "default: random per clip, 15%%")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.normal < 0 or args.dvt < 0:
        print("--normal and --dvt must be >= 0", file=sys.stderr)
        return 2
    if args.low_pressure_fraction is not None and not 0.0 <= args.low_pressure_fraction <= 1.0:
        print("--low-pressure-fraction must be in [0, 1]", file=sys.stderr)
        return 2
    rng = np.random.default_rng(args.seed)
    kinds = [False] * args.normal + [True] * args.dvt
    for i, dvt in enumerate(kinds):
        seed = args.seed + i
        pressure = None
        if args.low_pressure_fraction is not None:
            pressure = "low" if rng.random() < args.low_pressure_fraction else "adequate"
        clip = generate_clip(seed, dvt=dvt, pressure=pressure)
        stem = f"{'dvt' if dvt else 'normal'}_{seed:07d}"
        paths = write_clip(clip, args.out, stem)
        L = clip.label
        print(f"{paths['video']}  dvt={L['dvt']} pressure={L['pressure']} expected={L['expected_verdict']} "
              f"frames={L['n_frames']} fps={L['fps']:g} compressibility={L['true_compressibility']:.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
