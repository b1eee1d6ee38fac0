"""Export a trained ultrasound ResUNet checkpoint to the bundled ONNX artifact, check parity, write its card.

    python -m export.us_model --checkpoint runs/us-lite/resunet-lite.pt --summary runs/us-lite/train_summary.json \
        --out edge/assets/resunet-lite.onnx
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from edge.us.preprocess import crop_resize, find_image_region, normalise
from export.onnx_export import export_onnx
from export.parity import SegParity, segmentation_parity
from training.models.resunet import LABELS, VARIANTS, build_model
from training.phantoms.us_clip import generate_clip

PREPROCESS = {"scale": 1.0 / 255.0, "mean": [0.0], "std": [1.0], "colour": "grey", "region": "auto (edge.us.preprocess.find_image_region)"}
PARITY_MIN_DICE = 0.99


def parity_frames(size_hw: tuple[int, int], seeds=(424_242, 424_243), step: int = 4) -> np.ndarray:
    """Real-looking inputs: every ``step``-th frame of fresh phantom clips (one normal, one DVT),
    preprocessed like the runtime does. Returns (N, 1, H, W) float32."""
    frames = []
    for seed, dvt in zip(seeds, (False, True)):
        clip = generate_clip(seed, dvt=dvt, pressure="adequate")
        region = find_image_region(clip.frames[0])
        for f in clip.frames[::step]:
            frames.append(normalise(crop_resize(f, region, size_hw), PREPROCESS["scale"], 0.0, 1.0)[0])
    return np.stack(frames)


def check_parity(model: torch.nn.Module, onnx_path: Path, inputs: np.ndarray) -> SegParity:
    """PyTorch eager vs ONNX Runtime on ``inputs``: argmax-mask Dice per class."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    with torch.no_grad():
        ref = np.concatenate([model(torch.from_numpy(x[None])).numpy() for x in inputs])
    got = np.concatenate([sess.run(None, {name: x[None]})[0] for x in inputs])
    return segmentation_parity(ref, got, list(LABELS))


def lineage(summary: dict, summary_path: Path) -> list[dict]:
    """The training stages, first to last: follow each run's --init back to the run that made it."""
    stages = [summary]
    seen = {summary_path.resolve()}
    while stages[0].get("init") and not stages[0].get("stages"):
        init = Path(stages[0]["init"])
        found = [c for c in (init.parent / "train_summary.json", init.with_name(f"{init.stem}.train_summary.json"))
                 if c.is_file() and c.resolve() not in seen]
        if not found:
            break
        seen.add(found[0].resolve())
        stages.insert(0, json.loads(found[0].read_text()))
    # a summary kept beside shipped weights carries the stages before it (their run folders are gone)
    return [*stages[0].get("stages", []), *stages]


def stage_command(st: dict) -> str:
    init = f" --init {st['init']}" if st.get("init") else ""
    cmd = (f"python -m training.train_us --variant {st['variant']} --seed {st['seed']} "
            f"--phantom-frames {st['phantom_frames']} --eval-frames {st['eval_frames']} "
            f"--real-repeat {st['real_repeat']} --epochs {st.get('epochs', st['epochs_run'])} --lr {st['lr']} "
            f"--crop {st.get('crop', 128)}{init} --out <dir>")
    if st.get("carotid_images"):
        cmd = cmd.replace(" --out <dir>", f" --carotid-repeat {st['carotid_repeat']} --out <dir>")
    if st.get("wide"):
        cmd = cmd.replace(" --out <dir>", " --wide --out <dir>")
    if st.get("scenes"):
        cmd = cmd.replace(" --out <dir>", f" --scenes {st['scenes']} --out <dir>")
    # a run stopped by --max-minutes depends on the machine's speed: say so rather than hide it
    return cmd + (f" --max-minutes {st['max_minutes']}" if st.get("max_minutes") else "")


def model_card(spec_json: dict, summary: dict, parity: SegParity, stages: list[dict] | None = None) -> str:
    stages = stages or [summary]
    m = summary.get("metrics", {})
    ph, real = m.get("phantom", {}), m.get("real", {})
    lines = [
        f"# Model card: {spec_json['name']}",
        "",
        "**Research software. Not for diagnostic use.**",
        "",
        "## What it does",
        "Segments artery and vein in transverse B-mode ultrasound of the femoral/popliteal region, frame by frame,",
        "for compression-ultrasound DVT assessment (classes: background, artery, vein).",
        "",
        "## Architecture",
        f"ResUNet (Chen et al.): residual U-Net, variant `{summary['variant']}`: {json.dumps(summary['config'])}.",
        f"Input {spec_json['input']['shape']} float32 grey in [0, 1] (screen image region, resized); "
        f"output {spec_json['outputs'][0]['shape']} logits. ONNX opset {spec_json['opset']}, single file, "
        f"{spec_json['artifact']['bytes'] / 1e6:.2f} MB, sha256 `{spec_json['artifact']['sha256'][:16]}...`.",
        "",
        "## Training data",
        "- Synthetic compression-clip frames from `training.phantoms`, full labels (artery, vein): "
        + ", ".join(f"{st['phantom_frames']} (seed {st['seed']})" for st in stages)
        + " in the successive stages below.",
        "- Real B-mode images: usgra-seg by Timm Kandaouroff (CC BY 4.0), Mindray TE7 / L14-6Ns, neck, axilla, elbow,",
        "  femoral groin and popliteal fossa; artery and vein share one label there, so they train through a",
        "  partial-label loss on p(artery)+p(vein). Split by sorted position: i % 5 == 4 test (never trained on,",
        "  never used to choose anything), i % 5 == 2 validation, the rest train."
        if summary.get("real_images") else "- No real images (not found at training time).",
        *(["- Real carotid B-mode: Momot A. (2022), \"Common Carotid Artery Ultrasound Images\", Mendeley Data,",
           "  doi:10.17632/d4xt63mgjm.1 (Mindray UMT-500Plus / L13-3s, transverse neck, expert artery masks). The licence",
           "  was read from the dataset record, not verified here. Only the artery is labelled, so these images train",
           "  p(artery) alone (the unlabelled jugular vein beside it is never taught as background). Split BY",
           "  ACQUISITION (sorted acquisition names, position p: p % 4 == 1 test, p % 4 == 3 validation, else train)."]
          if summary.get("carotid_images") else []),
        *(["- Phantom frames were domain-randomised (`--wide`: `training.phantoms.anatomy.widen`: wall brightness and",
           "  thickness, clot echogenicity from anechoic to isoechoic, speckle, dynamic range, gain, attenuation) and",
           "  augmented for scanner differences (resolution, blur, coarse speckle, TGC, gamma, calipers and text)."]
          if summary.get("wide") else []),
        *(["- Randomised B-mode vessel scenes (`--scenes`: `training.phantoms.vessel_scenes`; "
           + ", ".join(f"{st['scenes']} in stage {i + 1}" for i, st in enumerate(stages) if st.get("scenes"))
           + "): single frames in which only the vessel signs are constant (round thick-walled artery; oval",
           "  thin-walled vein 0.6-3x its area, open, half-pressed or clot-filled from hypo- to near-isoechoic and labelled",
           "  by its outline) over random speckle, gain, TGC, log compression, fat, fascia, nodes and shadows."]
          if any(st.get("scenes") for st in stages) else []),
        "",
        "## Training",
        f"Loss BCE + log-Dice (Chen et al. Eq. 2-3), AdamW with a one-cycle LR, batch {summary['batch']}, random",
        f"{summary.get('crop', 128)}x{summary.get('crop', 128)} crops, {summary['threads']} CPU threads, torch {summary['torch']}. "
        "Stages (each starts from the previous one's best weights):",
        "",
        *[f"{i + 1}. {st['epochs_run']} of {st.get('epochs', st['epochs_run'])} epochs, "
          f"{st['phantom_frames']} phantom frames (seed {st['seed']}), real images x"
          f"{st['real_repeat']}, LR {st['lr']}, {st['train_minutes']} min: `{stage_command(st)}`"
          for i, st in enumerate(stages)],
        "",
        *(["The best epoch of the last stage was chosen on VALIDATION splits only (phantom frames from far seeds,",
            "usgra-seg validation, carotid-momot validation acquisitions). Earlier stages (in git history, before",
            "the validation split existed) picked epochs on the usgra-seg test fifth; this stage started from them."]
          if summary.get("selection") else
          ["The best epoch of each stage was kept by the mean of the phantom artery/vein Dice and the real-image",
           "vessel Dice on the held-out sets, so the held-out real figure below was also used to pick the epoch:",
           "it is mildly optimistic (with 204 real images no separate validation split was kept)."]),
        "",
        "## Metrics",
        "Test figures on data never trained on (held-out real acquisitions, the independent second renderer) are in",
        "`training/results/us-generalisation.md` (`python -m training.evaluate_generalisation`). Below: the training",
        "run's own validation figures (used to choose the epoch).",
        f"- Phantom frames ({summary['eval_frames']}, unseen seeds): artery Dice {ph.get('artery', {}).get('pooled')}, "
        f"vein Dice {ph.get('vein', {}).get('pooled')} (pooled over frames).",
    ]
    if real:
        v = real["vessel"]
        which = "validation split" if summary.get("selection") else "held-out fifth"
        lines.append(f"- Real usgra-seg {which} ({v['images']} images): vessel (artery ∪ vein) Dice "
                     f"{v['mean_per_image']} mean per image, {v['pooled']} pooled.")
    if m.get("carotid"):
        c = m["carotid"]
        lines.append(f"- Real carotid-momot validation acquisitions ({c['artery']['images']} images): artery Dice "
                     f"{c['artery']['mean_per_image']} mean per image, {c['artery']['pooled']} pooled; artery called "
                     f"vein in {c['artery_called_vein']:.1%} of images.")
    lines += [
        f"- Export parity, ONNX Runtime vs PyTorch on {parity.frames} phantom frames: mask Dice "
        + ", ".join(f"{k} {v:.4f}" for k, v in parity.dice_per_class.items())
        + f"; max |logit diff| {parity.max_abs_logit_diff:.2e}.",
        "",
        "## Limits",
        "- The real images carry no compression manoeuvres, and only the carotid set splits artery from vein (neck,",
        "  not groin). Artery-vs-vein identity on real femoral/popliteal scans has NOT been validated. The runtime",
        "  decides identity from pulsation and shape over time (`edge/us/identity.py`), not from this model alone.",
        "- No real DVT examples were available. Verdict accuracy figures come from phantom clips only.",
        "- Not a medical device; not for diagnostic use.",
        "",
    ]
    return "\n".join(lines)


def export_us_model(checkpoint: Path, summary_path: Path, out: Path) -> dict:
    summary = json.loads(summary_path.read_text())
    variant = summary["variant"]
    if out.is_dir() or out.suffix != ".onnx":  # a folder: <variant>.onnx inside it
        out.mkdir(parents=True, exist_ok=True)
        out = out / f"{variant}.onnx"
    model = build_model(variant)
    model.load_state_dict(torch.load(checkpoint, map_location="cpu"))
    model.eval()
    size = VARIANTS[variant].input_size
    example = torch.zeros(1, 1, size, size)
    export_onnx(
        model, example, out, name=variant, task="us-segmentation", input_name="image", output_names=["logits"],
        preprocess=PREPROCESS, labels=list(LABELS),
        extra={"training": {k: summary.get(k) for k in ("variant", "seed", "phantom_frames", "real_images",
                                                          "carotid_images", "wide", "scenes", "selection", "epochs_run",
                                                          "train_minutes", "torch")},
               "metrics": summary["metrics"]},
    )
    parity = check_parity(model, out, parity_frames((size, size)))
    if parity.min_dice < PARITY_MIN_DICE:
        raise SystemExit(f"parity FAILED: {parity.dice_per_class} < {PARITY_MIN_DICE}")
    spec_json = json.loads(out.with_suffix(".json").read_text())
    spec_json["parity"] = {"vs": "pytorch-eager", "dice": parity.dice_per_class, "frames": parity.frames,
                           "max_abs_logit_diff": parity.max_abs_logit_diff}
    from edge.atomic import write_text_atomic

    write_text_atomic(out.with_suffix(".json"), json.dumps(spec_json, indent=2) + "\n", "the model spec")
    write_text_atomic(out.with_suffix(".md"), model_card(spec_json, summary, parity, lineage(summary, summary_path)),
                      "the model card")
    print(f"exported {out} ({spec_json['artifact']['bytes'] / 1e6:.2f} MB); parity Dice {parity.dice_per_class}")
    return spec_json


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m export.us_model", description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--summary", type=Path, required=True, help="train_summary.json written by training.train_us")
    p.add_argument("--out", type=Path, default=Path("edge/assets/resunet-lite.onnx"))
    a = p.parse_args(argv)
    export_us_model(a.checkpoint, a.summary, a.out)


if __name__ == "__main__":
    main()
