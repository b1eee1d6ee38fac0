"""Write the two bundled demo clips (edge/assets/demo-normal.mp4, demo-dvt.mp4) from fixed phantom seeds.

    python -m training.phantoms.demo_assets [--out edge/assets]

Seeds 990_001/990_002 lie outside the training (< 900_000) and evaluation (900_000 + i) seeds.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from training.phantoms.us_clip import generate_clip, write_clip

DEMOS = {"normal": (990_001, False), "dvt": (990_002, True)}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m training.phantoms.demo_assets", description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[2] / "edge" / "assets")
    a = p.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    for name, (seed, dvt) in DEMOS.items():
        clip = generate_clip(seed, dvt=dvt, pressure="adequate", fps=30.0, screen_size=(640, 480))
        paths = write_clip(clip, a.out, f"demo-{name}")
        paths["masks"].unlink()  # the runtime ships no ground truth; the label JSON says what the clip is
        label = json.loads(paths["label"].read_text()) if "label" in paths else clip.label
        print(f"{paths['video']}: {clip.frames.shape[0]} frames, expected {label['expected_verdict']}, "
              f"true compressibility {label['true_compressibility']:.2f}, {paths['video'].stat().st_size / 1e3:.0f} kB")


if __name__ == "__main__":
    main()
