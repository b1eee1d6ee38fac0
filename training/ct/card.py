"""Model cards (Markdown) for the CT thrombus detector, written from the sidecar spec."""

from __future__ import annotations

from pathlib import Path

from edge.spec import ModelSpec


def _fmt(v) -> str:
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def _metric_rows(m: dict) -> list[str]:
    at = m.get("at_threshold", {})
    best = next((v for k, v in m.items() if k.startswith("at_fppi_")), {})
    return [
        f"| sensitivity (box, IoU >= 0.1) at the spec threshold {_fmt(at.get('threshold'))} | {_fmt(at.get('sensitivity'))} |",
        f"| FPPI (false-positive boxes per slice) at that threshold | {_fmt(at.get('fppi'))} |",
        f"| precision at that threshold | {_fmt(at.get('precision'))} |",
        f"| thrombus-level sensitivity (>= 1 slice hit) | {_fmt(at.get('thrombus_sensitivity'))} |",
        f"| best sensitivity with FPPI <= 0.25 | {_fmt(best.get('sensitivity'))} (FPPI {_fmt(best.get('fppi'))}) |",
        f"| AP (IoU >= 0.1) | {_fmt(m.get('ap_iou0.1'))} |",
        f"| slice-level AUROC / AP | {_fmt(m.get('slice_auroc'))} / {_fmt(m.get('slice_ap'))} |",
        f"| slices / GT boxes / thrombi | {m.get('n_slices')} / {m.get('n_gt_boxes')} / {m.get('n_thrombi')} |",
    ]


def write_model_card(spec: ModelSpec, path: str | Path) -> Path:
    """Render ``path`` (Markdown) from ``spec``: what the model is, how it was made, how well it did."""
    pre, dec = spec.preprocess, spec.extra.get("decode", {})
    tr, mets = spec.extra.get("training", {}), spec.extra.get("metrics", {})
    arch = tr.get("architecture", {})
    lines = [
        f"# {spec.name}: 2.5D CT venography thrombus detector",
        "",
        "**Research software, not for diagnostic use.** Trained and evaluated on synthetic phantoms only; its figures",
        "say nothing about performance on patients.",
        "",
        "## What it is",
        f"- Task: `{spec.task}`; one class (`thrombus`): a filling defect inside a contrast-filled deep vein.",
        f"- Architecture: {arch.get('family', '?')}; {arch.get('params', '?')} parameters; raw heads only "
        "(no sigmoid, no NMS in the graph).",
        f"- Input `{spec.input.name}` {list(spec.input.shape)} float32: k={pre.get('k')} adjacent axial slices "
        f"(ascending position, centre = the slice scored; series ends replicate the edge slice).",
        f"- Outputs: " + ", ".join(f"`{o.name}` {list(o.shape)}" for o in spec.outputs) + ".",
        f"- Preprocessing (`edge.ct.decode.prepare_input`): window W{pre.get('window_width_hu'):g}/L{pre.get('window_level_hu'):g} "
        f"-> [0, 1]; resample to {pre.get('target_spacing_mm')} mm pixels; centre crop/pad to {pre.get('size')} px.",
        f"  Hwang/Seo et al. resample to 0.695 mm; this model uses {pre.get('target_spacing_mm')} mm so a "
        f"{pre.get('size')} px input covers {pre.get('size', 0) * pre.get('target_spacing_mm', 0):.0f} mm "
        "(both legs) within the CPU budget (<= 50 ms per slice on 2 cores). Both are configurable at training time.",
        f"- Decoding (`edge.ct.decode.decode_detections`): sigmoid, 3x3 peak picking, top-{dec.get('top_k')}, "
        f"score >= {dec.get('score_threshold')} (operating point), NMS IoU {dec.get('nms_iou')}, boxes mapped back "
        "to the original pixel grid.",
        "",
        "## How it was made",
        f"- Data: {tr.get('data', '?')}; training study seeds {tr.get('train_study_seeds')}, validation "
        f"{tr.get('val_study_seeds')}.",
        f"- Loss: {tr.get('loss', '?')}. Optimiser: {tr.get('optimizer', '?')}, lr {tr.get('lr')}, "
        f"{tr.get('epochs')} x {tr.get('steps_per_epoch')} steps of {tr.get('batch')} crops of {tr.get('crop')} px.",
        f"- Command: `{tr.get('command', '?')}` ({tr.get('threads')} CPU threads; data {tr.get('data_s')} s, "
        f"training {tr.get('train_s')} s).",
        f"- Operating point: {mets.get('operating_point', '?')}.",
        "",
    ]
    for split in ("validation", "test"):
        if split in mets:
            lines += [f"## Metrics: {split} (held-out phantom studies, per-slice detections, no linking)", "",
                      "| metric | value |", "|---|---|", *_metric_rows(mets[split]), ""]
            if split == "test" and "test_command" in mets:
                lines += [f"Command: `{mets['test_command']}`", ""]
    lines += [
        "## Limitations",
        "- Phantom anatomy and lesions are simplified (analytic shapes, Gaussian noise, no partial-volume along z,",
        "  no metal, no motion, no real scanner texture). Expect a domain gap on real CT.",
        "- FPPI counts false-positive boxes per slice; grouping slices into findings (and rejecting streaks that run",
        "  too long) is done downstream by `edge/ct/linking.py`.",
        "- Mixing streaks that look like clots on every slice the model sees are only separable by z-extent beyond",
        f"  the k={pre.get('k')} slice window.",
        "",
    ]
    path = Path(path)
    path.write_text("\n".join(lines))
    return path
