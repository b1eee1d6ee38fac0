"""Model cards (Markdown) for the CT thrombus detector, written from the sidecar spec."""

from __future__ import annotations

from pathlib import Path

from edge.spec import ModelSpec


def _fmt(v) -> str:
    return f"{v:.3f}" if isinstance(v, float) else "-" if v is None else str(v)


def _metric_rows(m: dict) -> list[str]:
    at = m.get("at_threshold", {})
    best = next((v for k, v in m.items() if k.startswith("at_fppi_")), {})
    return [
        f"| sensitivity (box, IoU >= 0.1) at threshold {_fmt(at.get('threshold'))} | {_fmt(at.get('sensitivity'))} |",
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
    real = tr.get("real_volume")
    lines = [
        f"# {spec.name}: 2.5D CT venography thrombus detector",
        "",
        ("**Research software, not for diagnostic use.** Trained on synthetic phantoms and on ONE real contrast CT crop "
         f"({real}) with synthetic filling defects inserted; no patient with a real thrombus was seen. Its figures say "
         "nothing about performance on patients." if real else
         "**Research software, not for diagnostic use.** Trained and evaluated on synthetic phantoms only; its figures "
         "say nothing about performance on patients."),
        "",
        "## What it is",
        f"- Task: `{spec.task}`; one class (`thrombus`): a filling defect inside a contrast-filled deep vein.",
        f"- Architecture: {arch.get('family', '?')}; {arch.get('params', '?')} parameters; raw heads only "
        "(no sigmoid, no NMS in the graph).",
        f"- Input `{spec.input.name}` {list(spec.input.shape)} float32: k={pre.get('k')} adjacent axial slices "
        f"(ascending position, centre = the slice scored; series ends replicate the edge slice).",
        "- Outputs: " + ", ".join(f"`{o.name}` {list(o.shape)}" for o in spec.outputs) + ".",
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
        *([f"- **Ensemble**: one graph holding the mean of {len(tr['ensemble'])} models' raw heads (the data, loss and "
           "command above are the first member's); members:"]
          + [f"  - seed {m.get('seed')}: `{m.get('command')}`" for m in tr["ensemble"]] if tr.get("ensemble") else []),
        f"- Operating point: {mets.get('operating_point', '?')}.",
        "",
    ]
    for split in ("validation", "test"):
        if split in mets:
            ruled = split == "validation" and "AFTER the plausibility rule" in str(mets.get("operating_point", ""))
            how = "per-slice detections after the plausibility rule, no linking" if ruled else \
                "per-slice detections, no linking"
            what = "validation studies" if split == "validation" else "held-out phantom studies"
            lines += [f"## Metrics: {split} ({what}, {how})", "",
                      "| metric | value |", "|---|---|", *_metric_rows(mets[split]), ""]
            if split == "test" and "test_command" in mets:
                lines += [f"Command: `{mets['test_command']}`", ""]
    plaus = spec.extra.get("plausibility")
    if isinstance(plaus, dict):
        cal = plaus.get("calibration", {})
        lines += [
            "## Plausibility rule (applied by the runtime after decoding)",
            "",
            f"`edge.ct.plausibility.check` on the centre slice's HU: a candidate is rejected when more than "
            f"{plaus.get('max_bone_frac')} of the pixels within {plaus.get('ring_mm')} mm around its box are bone "
            f"(>= {plaus.get('bone_hu')} HU: rib / vertebra, not a vein), when the median HU of its core is outside "
            f"{plaus.get('defect_lo_hu')}..{plaus.get('defect_hi_hu')} HU (not clot density), or when the surround's "
            f"98th percentile is less than {plaus.get('min_contrast_hu')} HU above the core (no filling defect). "
            "Thresholds chosen so the validation true positives keep passing ("
            + (f"phantoms + real {cal['real_validation']['volume']} validation pairs" if cal.get("real_validation")
               else "phantoms only")
            + (f" + {cal['scene_validation']} vessel scenes" if cal.get("scene_validation") else "") + "): "
            f"`{cal.get('command', '?')}`.",
            "",
        ]
        if cal:
            lb, la = cal.get("lesion_before", {}), cal.get("lesion_after", {})
            lines += [f"Validation ({cal.get('studies')} studies, distractors {cal.get('distractors')}): rejected "
                      f"{cal.get('rejected')} of {cal.get('tp_detections')} TP / {cal.get('fp_detections')} FP detections; "
                      f"findings per study {lb.get('findings_per_study')} -> {la.get('findings_per_study')}, false findings "
                      f"per study {lb.get('fp_findings_per_study')} -> {la.get('fp_findings_per_study')}, thrombus "
                      f"sensitivity (findings) {lb.get('thrombus_sensitivity')} -> {la.get('thrombus_sensitivity')}.", ""]
    lumen = spec.extra.get("lumen")
    if isinstance(lumen, dict):
        cal = lumen.get("calibration", {})
        picked, alone = cal.get("picked", {}), cal.get("detector_alone", {})
        state = "ON" if lumen.get("enabled") else "OFF (it did not beat the detector alone on validation)"
        lines += [
            "## Vessel-lumen stage (`edge/ct/lumen.py`, `ct scan --lumen on|off`)",
            "",
            f"Shipped {state}. A dark defect ({lumen.get('defect_lo_hu')}..{lumen.get('defect_hi_hu')} HU) inside a "
            f"bright lumen ({lumen.get('bright_lo_hu')}..{lumen.get('bright_hi_hu')} HU), partial or occlusive, "
            f"vessel {lumen.get('min_diam_mm')}-{lumen.get('max_diam_mm')} mm, fused with the learned heatmap "
            f"(fusion {lumen.get('fusion')}, heat weight {lumen.get('heat_weight')}, threshold "
            f"{lumen.get('score_threshold')}).",
        ]
        if cal:
            lines += [
                f"Chosen on validation only ({cal.get('criterion', '?')}): with the stage thrombus sensitivity "
                f"{_fmt(picked.get('thrombus_sensitivity'))}, {_fmt(picked.get('fp_findings_per_study'))} false findings "
                f"per study; the detector alone {_fmt(alone.get('thrombus_sensitivity'))}, "
                f"{_fmt(alone.get('fp_findings_per_study'))}. `{cal.get('command', '?')}`.",
            ]
        lines.append("")
    test = mets.get("test", {})
    if "lesion" in test:
        w, a, b = test["with_rule"], test["lesion"]["no_rule"], test["lesion"]["with_rule"]
        lines += [
            "## Test with the rule and at lesion level (linked findings, `edge/ct/linking.py`)",
            "",
            "| metric | no rule | with rule |", "|---|---|---|",
            f"| sensitivity / FPPI / precision at the threshold | {test['at_threshold']['sensitivity']:.3f} / "
            f"{test['at_threshold']['fppi']:.3f} / {test['at_threshold']['precision']:.3f} | "
            f"{w['at_threshold']['sensitivity']:.3f} / {w['at_threshold']['fppi']:.3f} / {w['at_threshold']['precision']:.3f} |",
            f"| AP (IoU >= 0.1) | {test['ap_iou0.1']:.3f} | {w['ap_iou0.1']:.3f} |",
            f"| findings per study | {a['findings_per_study']:.2f} | {b['findings_per_study']:.2f} |",
            f"| false findings per study | {a['fp_findings_per_study']:.2f} | {b['fp_findings_per_study']:.2f} |",
            f"| thrombus sensitivity (>= 1 true finding) | {a['thrombus_sensitivity']:.3f} | {b['thrombus_sensitivity']:.3f} |",
            f"| test studies (distractor probability) | {a['studies']} ({test.get('distractors', 0)}) | |",
            "",
        ]
    gen = mets.get("generalisation", {})
    if gen:
        lines += ["## Test sets (lesion level with the runtime rule; `phantom` = the training renderer, in-style; "
                  "`second` = the independent renderer; `real-*` = the held-out real volume)", "",
                  "| set | thrombus sens. (findings) | false findings / study | false findings / clean study | "
                  "slice sens. @ FPPI<=0.25 | command |", "|---|---|---|---|---|---|"]
        for key, g in gen.items():
            lines.append(f"| {key} | {_fmt(g.get('thrombus_sensitivity'))} | {_fmt(g.get('fp_findings_per_study'))} | "
                         f"{_fmt(g.get('fp_findings_per_clean_study'))} | {_fmt(g.get('slice_sens_at_fppi_0.25'))} | "
                         f"`{g.get('command')}` |")
        lines.append("")
    lines += [
        "## Limitations",
        "- Phantom anatomy and lesions are simplified (analytic shapes, Gaussian noise, no metal, no motion, no real",
        "  scanner texture; only the vessel scenes average over the slice thickness). Expect a domain gap on real CT.",
        "  The non-venous distractors (ribs, bowel, organs, nodes, ...; `training.ct.phantom`) and the vessel scenes",
        "  are analytic shapes as well: they narrow the gap to real anatomy, they do not close it.",
        "- The rule's thresholds come from the validation true positives: where those include faint, thick-slice",
        "  defects (vessel scenes) the contrast threshold is low and the rule mostly rejects bone rings and",
        "  non-clot densities. Check it on real positives before relying on it (no real DVT series was available).",
        "- The plausibility rule trusts the HU scale (it is what the DICOM reader's rescale gives); contrast timing",
        "  outside a venous phase (e.g. an arterial-phase study) is outside its assumptions.",
        "- FPPI counts false-positive boxes per slice; grouping slices into findings (and rejecting streaks that run",
        "  too long) is done downstream by `edge/ct/linking.py`.",
        "- Mixing streaks that look like clots on every slice the model sees are only separable by z-extent beyond",
        f"  the k={pre.get('k')} slice window.",
        "",
    ]
    path = Path(path)
    path.write_text("\n".join(lines))
    return path
