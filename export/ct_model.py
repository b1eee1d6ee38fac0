"""Export the 2.5D CT thrombus detector to ONNX with its sidecar spec and model card (not for diagnostic use).

    python -m export.ct_model train --out DIR --k 3 --seed 1 --studies 48 --epochs 8   # train, then export
    python -m export.ct_model --checkpoint DIR/ctdet-k3.pt --out DIR                  # export saved weights
    python -m export.ct_model --checkpoint A/ctdet-k3.pt B/ctdet-k3.pt --out DIR     # their mean, one graph
    dvt-edge export ct-onnx --checkpoint DIR/ctdet-k3.pt --out DIR                     # the same

``train`` takes the options of ``python -m training.ct.train`` and writes what that command wrote before the
export moved here: ``DIR/ctdet-k{k}.onnx`` (opset 17, via :mod:`export.onnx_export`), its spec ``ctdet-k{k}.json``
(preprocess, decode parameters, provenance, validation metrics) and the card ``ctdet-k{k}.md``. The checkpoint
form reads ``ctdet-k{k}.pt`` and ``ctdet-k{k}.train_summary.json`` saved by ``python -m training.ct.train``.
The card is rendered by :mod:`training.ct.card`, which the calibration and evaluation commands also use to
rewrite it after they update the spec.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from edge.spec import ModelSpec
from export.ct_args import add_checkpoint_arguments
from export.onnx_export import export_onnx
from training.ct.card import write_model_card
from training.ct.detector import CTDet, MeanDetector
from training.ct.train import parse_args, train


def export_ct_model(model: CTDet, summary: dict, out: str | Path) -> ModelSpec:
    """``out/<name>.onnx`` + ``.json`` spec + ``.md`` card from a trained model and its training summary."""
    out, name = Path(out), summary["name"]
    out.mkdir(parents=True, exist_ok=True)
    example = torch.from_numpy(np.zeros((1, summary["k"], summary["input_size"], summary["input_size"]), np.float32))
    spec = export_onnx(model, example, out / f"{name}.onnx", name=name, task="ct-thrombus-detection",
                       input_name="image", output_names=list(summary["outputs"]), preprocess=summary["preprocess"],
                       labels=["thrombus"], extra=summary["extra"])
    write_model_card(spec, out / f"{name}.md")
    return spec


def load_checkpoint(checkpoint: str | Path, summary_path: str | Path | None = None) -> tuple[CTDet, dict]:
    """The model and summary saved by ``python -m training.ct.train`` (summary default: beside the weights)."""
    checkpoint = Path(checkpoint)
    summary_path = Path(summary_path) if summary_path else checkpoint.with_suffix(".train_summary.json")
    summary = json.loads(summary_path.read_text())
    arch = summary["extra"]["training"]["architecture"]
    model = CTDet(summary["k"], arch["width"], arch["head"])
    model.load_state_dict(torch.load(checkpoint, map_location="cpu"))
    model.eval()
    return model, summary


def train_and_export(argv: list[str], command: str | None = None) -> Path:
    """``python -m export.ct_model train ...``: train as ``training.ct.train`` does, then export. ``command``: what
    the spec records as the command (default: a call-like record of ``argv``)."""
    t_start = time.perf_counter()
    args = parse_args(argv, prog="python -m export.ct_model train", call="export.ct_model.train_and_export")
    if command:
        args.command = command
    model, summary = train(args)
    out = Path(args.out)
    export_ct_model(model, summary, out)
    name = summary["name"]
    print(f"wrote {out / (name + '.onnx')} (+ .json, .md) in {time.perf_counter() - t_start:.0f} s total", flush=True)
    return out / f"{name}.onnx"


def load_ensemble(checkpoints: list[Path]) -> tuple[MeanDetector, dict]:
    """The mean of several checkpoints of one shape (:class:`MeanDetector`); the summary is the first member's,
    with every member's command, seed and validation metrics under ``extra["training"]["ensemble"]``."""
    loaded = [load_checkpoint(c) for c in checkpoints]
    first = loaded[0][1]
    for c, (_, s) in zip(checkpoints, loaded):
        if (s["k"], s["input_size"]) != (first["k"], first["input_size"]):
            raise SystemExit(f"{c}: k={s['k']}, input {s['input_size']} differs from {checkpoints[0]} "
                             f"(k={first['k']}, input {first['input_size']}): members must share one input shape")
    summary = json.loads(json.dumps(first))
    tr = summary["extra"]["training"]
    tr["ensemble"] = [{"checkpoint": str(c), "seed": s["extra"]["training"].get("seed"),
                       "command": s["extra"]["training"].get("command"),
                       "validation": s["extra"].get("metrics", {}).get("validation")} for c, (_, s) in zip(checkpoints, loaded)]
    tr["architecture"] = {**tr.get("architecture", {}),
                          "family": f"mean of {len(loaded)} x " + str(tr.get("architecture", {}).get("family", "CTDet")),
                          "params": sum(int(p.numel()) for m, _ in loaded for p in m.parameters())}
    return MeanDetector([m for m, _ in loaded]).eval(), summary


def export_checkpoint(checkpoint: Path | list[Path], summary: Path | None, out: Path | None) -> Path:
    """Export one checkpoint, or the mean of several (a list of two or more) as one graph."""
    checkpoints = [Path(c) for c in checkpoint] if isinstance(checkpoint, (list, tuple)) else [Path(checkpoint)]
    if len(checkpoints) > 1:
        if summary:
            raise SystemExit("--summary applies to one checkpoint; an ensemble reads each member's own summary")
        model, summ = load_ensemble(checkpoints)
    else:
        model, summ = load_checkpoint(checkpoints[0], summary)
    out = Path(out) if out else checkpoints[0].parent
    export_ct_model(model, summ, out)
    print(f"wrote {out / (summ['name'] + '.onnx')} (+ .json, .md)", flush=True)
    return out / f"{summ['name']}.onnx"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if args[:1] == ["train"]:
        train_and_export(args[1:], "python -m export.ct_model " + " ".join(args) if argv is None else None)
        return 0
    p = argparse.ArgumentParser(prog="python -m export.ct_model", description=__doc__.split("\n")[0],
                                epilog="train, then export: python -m export.ct_model train --out DIR ... (the "
                                       "options of python -m training.ct.train; train --help lists them)")
    add_checkpoint_arguments(p)
    a = p.parse_args(args)
    export_checkpoint(a.checkpoint, a.summary, a.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
