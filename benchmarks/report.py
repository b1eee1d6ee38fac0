"""Result outputs: the targets (pass/fail), the console table, the Markdown summary and the JSON file.

Timing thresholds live HERE (in :data:`TARGETS`), recorded with each result, never in the tests: a slow CI
machine should produce a report that says "fail", not a red test suite.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

from edge.notice import NOTICE

DISCLAIMER = f"{NOTICE} Phantom/demo data only; no patient data."


# ------------------------------------------------------------------------------------------------ targets
def _scenario(results: dict, name: str) -> dict | None:
    for s in (results.get("end_to_end") or {}).get("scenarios", []):
        if s["name"] == name:
            return s
    return None


def evaluate_targets(results: dict) -> list[dict]:
    """The issue's targets, each with its threshold, measured value and pass/fail (None = not measured)."""
    out = []

    def add(key, text, value, threshold, ok):
        out.append({"id": key, "target": text, "value": value, "threshold": threshold,
                    "pass": None if value is None else bool(ok)})

    s30, fast, slow = _scenario(results, "paced-30fps"), _scenario(results, "unpaced"), _scenario(results, "slow-newest")
    v = s30["fps_processed"] if s30 else None
    add("us_e2e_30fps", "lite US model end to end keeps up with a 30 fps probe (frames processed/s, newest-frame "
        "slot; >= 97% of 30 allows scheduler jitter)", v, ">= 29.1", v is not None and v >= 29.1)
    v = fast["fps_processed"] if fast else None
    add("us_capacity_30fps", "unpaced frame-loop capacity (decode..render) >= 30 frames/s", v, ">= 30",
        v is not None and v >= 30)
    v = s30["frame_age_ms"]["p99"] if s30 else None
    add("us_age_bounded_30fps", "frame age (verdict update - capture) p99 at 30 fps <= 100 ms (3 frame periods)",
        v, "<= 100 ms", v is not None and v <= 100)
    if slow:
        loop99 = slow["loop_ms"]["p99"]  # None when the scenario processed no frame (a loaded machine)
        bound = None if loop99 is None else round(loop99 + 2 * 1e3 / slow["fps"], 1)
        v = slow["frame_age_ms"]["p99"]
        add("newest_frame_no_backlog", f"slow backend (+{slow['delay_ms']:g} ms/infer) with the newest-frame slot: "
            "frame age p99 <= loop time p99 + 2 frame periods (no backlog)", v,
            "no frame processed" if bound is None else f"<= {bound} ms",
            v is not None and bound is not None and v <= bound)
    else:
        add("newest_frame_no_backlog", "slow backend with the newest-frame slot: bounded frame age", None, "-", False)
    return out


# ------------------------------------------------------------------------------------------------ tables
def _f(v, nd=2) -> str:
    return "-" if v is None else f"{v:.{nd}f}"


def model_table(mo: dict) -> list[list[str]]:
    rows = [["backend", "batch", "p50 ms", "p90 ms", "p99 ms", "mean ms", "items/s", "speed-up", "queries"]]
    for r in mo.get("results", []):
        if r["status"] != "ok":
            rows.append([r["backend"], str(r["batch"]), "skipped", "", "", "", "", "", ""])
            continue
        lat = r["latency_ms"]
        rows.append([r["backend"], str(r["batch"]), _f(lat["p50"]), _f(lat["p90"]), _f(lat["p99"]), _f(lat["mean"]),
                     _f(r["throughput_per_s"], 1), _f((r.get("speedup_vs_baseline") or {}).get("p50")) + "x",
                     str(r["queries"])])
    return rows


def skipped_lines(mo: dict) -> list[str]:
    return [f"{r['backend']} (batch {r['batch']}): {r['reason']}" for r in mo.get("results", []) if r["status"] != "ok"]


def e2e_table(e2e: dict) -> list[list[str]]:
    stages = ("decode", "preprocess", "infer", "postprocess", "track+measure", "render")
    rows = [["scenario", "fps", "dropped", "backlog", "age p50", "age p90", "age p99",
             *[f"{s} p50" for s in stages]]]
    for s in e2e.get("scenarios", []):
        a = s["frame_age_ms"]
        rows.append([s["name"], _f(s["fps_processed"], 1), f"{s['dropped']}/{s['frames_offered']}",
                     str(s["backlog_at_end"]), _f(a["p50"], 1), _f(a["p90"], 1), _f(a["p99"], 1),
                     *[_f(s["stages_ms"][st]["p50"]) for st in stages]])
    return rows


def ct_table(ct: dict) -> list[list[str]]:
    if ct.get("status") != "ok":
        return [["CT", "skipped: " + ct.get("reason", "?")]]
    rows = [["stage", "p50 ms", "p90 ms", "p99 ms", "mean ms", "n"]]
    for name, st in ct["stages_ms"].items():
        if name == "index":
            rows.append(["index (once)", _f(st["total_ms"]), "", "", "", "1"])
        else:
            rows.append([name, _f(st.get("p50")), _f(st.get("p90")), _f(st.get("p99")), _f(st.get("mean")),
                         str(st.get("n", ""))])
    return rows


def _text(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) if i < len(r) else 0 for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def _md(rows: list[list[str]]) -> str:
    head, *body = rows
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(r + [""] * (len(head) - len(r))) + " |" for r in body]
    return "\n".join(lines)


def _targets_rows(targets: list[dict], short: bool = False) -> list[list[str]]:
    mark = {True: "PASS", False: "FAIL", None: "not measured"}
    return [["target", "value", "threshold", "result"]] + [
        [t["id"] if short else t["target"], "-" if t["value"] is None else str(t["value"]), t["threshold"],
         mark[t["pass"]]] for t in targets]


def console_summary(results: dict) -> str:
    parts = []
    if "model_only" in results:
        mo = results["model_only"]
        parts += ["Model only (ms per query, host in -> host out):", _text(model_table(mo))]
        parts += [f"  skipped {line}" for line in skipped_lines(mo)]
    if "end_to_end" in results:
        parts += ["", f"End to end ({results['end_to_end']['backend']}; ms):", _text(e2e_table(results["end_to_end"]))]
    if "ct" in results:
        ct = results["ct"]
        head = f"CT ({ct['slices']} slices: {ct['slices_per_s_with_index']} slices/s)" if ct.get("status") == "ok" else "CT"
        parts += ["", head + ":", _text(ct_table(ct))]
    if "compare" in results:
        model, loop = compare_tables(results["compare"])
        parts += ["", "Interleaved, model only:", _text(model), "", "Interleaved, frame loop at 1080p:", _text(loop)]
    parts += ["", "Targets (thresholds: bench.md / bench.json):", _text(_targets_rows(results["targets"], short=True))]
    return "\n".join(parts)


def _md_header(results: dict) -> list[str]:
    env, cfg = results["environment"], results["config"]
    libs = ", ".join(f"{k} {v}" for k, v in env["libraries"].items() if v)
    during = "".join(f"{m['at']} {m['load_average']}, " for m in env.get("load_during", []))
    model = results.get("model")
    lines = [
        f"# DVT Edge benchmark: {env['device_label']}", "", f"**{DISCLAIMER}**", "",
        f"- Device: {env['cpu']['model']}, {env['cpu']['usable_cores']} usable cores; GPU: {env['gpu']['describe']}",
        f"- OS: {env['os']}; Python {env['python']}; {libs}",
        (f"- Threads: {cfg['threads']} (ONNX Runtime intra-op, torch); load average at start "
         f"{env['load_average_start']}, {during}at end {env.get('load_average_end')} "
         "(includes the benchmark's own threads)"),
    ]
    if env.get("contended"):
        lines.append(f"- **Contended run: {env['contended']}; timings are pessimistic.**")
    elif "contended" in env:
        lines.append("- Quiet run: no other work detected from the load average.")
    lines += [
        "- Model: " + (f"`{model['path']}` ({model['note']})" if model else "(ultrasound sections not run)"),
        (f"- Command: `{results['command']}` ({'quick' if cfg['quick'] else 'full'} preset; "
         f"{results['wall_s']:.0f} s wall)"), "",
    ]
    return lines


def _md_model(mo: dict, b: dict) -> list[str]:
    text = (f"One `infer` per query, input {mo['input_shape']} (a preprocessed demo frame), host arrays in and out. "
            f"{b['warmup']} warm-up queries excluded, then at least {b['min_queries']} queries and "
            f"{b['min_seconds']:g} s per backend (cap {b['max_seconds']:g} s). Speed-up = baseline p50 / p50, "
            f"baseline `{mo['baseline']}` measured in this same run.")
    skipped = [f"- skipped {line}" for line in skipped_lines(mo)]
    return ["## Model only", "", text, "", _md(model_table(mo)), "", *skipped] + ([""] if skipped else [])


def _md_e2e(results: dict) -> list[str]:
    e2e = results["end_to_end"]
    text = (f"Backend `{e2e['backend']}`; the demo clip `{e2e['clip']}` decoded on the capture thread and released "
            "at the scenario's rate -> CaptureThread -> slot/queue -> pipeline (verdict update) -> overlay. "
            f"Frame age = verdict time - capture time. First {results['config']['e2e_warmup_s']:g} s of each "
            "scenario not counted. `decode` runs on the capture thread (overlaps the rest); all other stages are "
            "the frame loop's critical path.")
    lines = ["## End to end", "", text, "", _md(e2e_table(e2e)), ""]
    fifo = _scenario(results, "slow-fifo")
    if fifo and fifo.get("age_growth_ms_per_s") is not None:
        lines += [(f"Lossless FIFO with the slow backend: frame age grows by {fifo['age_growth_ms_per_s']} ms per "
                   f"second of stream; {fifo['backlog_at_end']} frames were still queued when the stream ended. "
                   "The newest-frame slot drops them instead, so the clinician always sees the latest frame."), ""]
    return lines


def _md_ct(ct: dict) -> list[str]:
    if ct.get("status") != "ok":
        return ["## CT", "", f"Skipped: {ct['reason']}", ""]
    st = ct["study"]
    text = (f"Phantom study seed {st['seed']}: {ct['slices']} slices {st['size']}x{st['size']} "
            f"({st['thickness_mm']} mm) as DICOM, through `run_slice_loop` on `{ct['backend']}`: "
            f"**{ct['slices_per_s_with_index']} slices/s** including the header scan "
            f"({ct['slices_per_s']} slices/s after it); {ct['findings']} findings. `read` is the wait for the next "
            "slice (the reader decodes ahead on its own thread); `read_decode` is the reader's full cost per "
            "slice, timed in a separate pass; `index` is the header scan before the first slice.")
    return ["## CT", "", text, "", _md(ct_table(ct)), ""]


def compare_tables(cmp: dict) -> tuple[list[list[str]], list[list[str]]]:
    """(model rows, frame-loop rows) of the interleaved comparison."""
    model = [["backend", "p50 ms", "p90 ms", "ratio to ONNX Runtime (median of rounds)", "rounds min-max", "ran"]]
    for name, r in cmp["model"]["results"].items():
        if r["status"] != "ok":
            model.append([name, "-", "-", "-", "-", f"skipped: {r['reason']}"])
            continue
        q = r.get("ratio_to_onnxruntime") or {}
        model.append([name, _f(r["latency_ms"]["p50"]), _f(r["latency_ms"]["p90"]), _f(q.get("median"), 3),
                      f"{_f(q.get('min'))}-{_f(q.get('max'))}", r["chosen"]])
    loop = [["scenario", "frames/s", "ms per frame", "ratio to the plain loop (median of rounds)", "frames"]]
    for name, r in cmp["frame_loop"]["results"].items():
        q = r.get("ratio_to_plain_loop") or {}
        loop.append([name, _f(r["frames_per_s"], 1), _f(r["ms_per_frame"], 1), _f(q.get("median"), 3),
                     str(r["frames"])])
    return model, loop


def _md_compare(cmp: dict) -> list[str]:
    model, loop = compare_tables(cmp)
    m, fl = cmp["model"], cmp["frame_loop"]
    return ["## Interleaved comparison", "", f"Method: {cmp['method']}.", "",
            (f"Model only: {m['rounds']} rounds of {m['queries_per_turn']} queries per backend; load average "
             f"{m['load_average_start']} before, {m['load_average_end']} after."), "", _md(model), "",
            (f"Frame loop: {fl['clip']}; backend `{fl['backend']}`, {fl['threads']} threads; {fl['rounds']} rounds; "
             f"set-up included; load average {fl['load_average_start']} before, {fl['load_average_end']} after. "
             "`plain-loop` = decode -> grey -> resize -> infer -> argmax; the `us-run` rows are the whole job "
             "(identity, tracking, measurements, verdict, JSON report) with the overlay video at the source size, "
             "at 720 lines, or none."), "", _md(loop), ""]


def markdown_summary(results: dict, png_name: str | None) -> str:
    lines = _md_header(results)
    lines += ["## Targets", "", _md(_targets_rows(results["targets"])), ""]
    if "model_only" in results:
        lines += _md_model(results["model_only"], results["config"]["budget"])
    if "end_to_end" in results:
        lines += _md_e2e(results)
    if "ct" in results:
        lines += _md_ct(results["ct"])
    if "compare" in results:
        lines += _md_compare(results["compare"])
    if png_name:
        lines += [f"![latency distributions and per-stage times]({png_name})", ""]
    lines += [("Raw samples, the environment and the effective config are in `bench.json`. "
               "Methodology: `benchmarks/README.md`."), ""]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ files
_NUMBER_LIST = re.compile(r"\[\s*(-?[0-9][-0-9.eE+,\s]*)\s*\]")


def _clean(obj):
    """NaN/inf -> None (strict JSON), recursively; tuples -> lists."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def dumps(results: dict) -> str:
    """Indented JSON whose numeric lists (raw samples) stay on one line each, so the file stays readable."""
    text = json.dumps(_clean(results), indent=1, allow_nan=False)
    return _NUMBER_LIST.sub(lambda m: "[" + ", ".join(x.strip() for x in m.group(1).split(",")) + "]", text)


def write_outputs(results: dict, out: Path, png_name: str | None) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "bench.json", "markdown": out / "bench.md"}
    from edge.atomic import write_text_atomic

    write_text_atomic(paths["json"], dumps(results) + "\n", "the benchmark results")
    write_text_atomic(paths["markdown"], markdown_summary(results, png_name), "the benchmark summary")
    return paths
