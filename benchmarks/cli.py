"""``dvt-edge bench``: model-only, end-to-end and CT latency in one run; console table + JSON + Markdown + PNG.

    dvt-edge bench --quick --out /tmp/bench          # CI smoke run: < 1 min on two CPU cores
    dvt-edge bench --out benchmarks/results/cpu-2core  # the full run the README quotes (~5.5 min here)
    dvt-edge bench --only model --backends pytorch-eager onnxruntime-cpu --threads 4

Plugged into ``dvt-edge`` through the ``dvt_edge.commands`` entry point (pyproject.toml), so the torch-free
runtime never imports this package.
"""

from __future__ import annotations

import argparse
import json
import shlex
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from benchmarks.config import (
    DEFAULT_SECTIONS,
    MODEL_BACKENDS,
    SECTIONS,
    BenchConfig,
    Budget,
    quick_config,
)
from benchmarks.env import (
    collect_environment,
    default_device_label,
    load_average,
    usable_cores,
)

SCHEMA = "dvt-edge/bench@1"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "bench", help="latency benchmarks: per backend, per stage, percentiles (needs the [bench] extra)",
        description="Model-only latency per backend, end-to-end frame-loop latency from a paced source, and CT "
        "slices/s, in one run. Writes bench.json (raw samples, environment, config), bench.md and bench.png.")
    p.add_argument("--quick", action="store_true", help="few iterations (CI smoke run, < 1 min on 2 CPU cores)")
    p.add_argument("--out", type=Path, default=None,
                   help="output folder (default: bench-results/<device label>)")
    p.add_argument("--threads", type=int, default=None, help="ONNX Runtime intra-op and torch threads "
                   "(default: the usable CPU cores)")
    p.add_argument("--backends", nargs="+", choices=MODEL_BACKENDS, default=list(MODEL_BACKENDS),
                   metavar="NAME", help=f"model-only backends (default: all of {', '.join(MODEL_BACKENDS)})")
    p.add_argument("--only", nargs="+", choices=SECTIONS, default=list(DEFAULT_SECTIONS), metavar="SECTION",
                   help="sections to run: model, e2e, ct, compare (default: model e2e ct; compare = interleaved "
                   "ONNX Runtime vs OpenVINO ratios and the 1080p plain loop vs us run)")
    p.add_argument("--model", type=Path, default=None, help="ultrasound ONNX model (default: the bundled one)")
    p.add_argument("--checkpoint", type=Path, default=None, help="PyTorch weights for the eager baseline")
    p.add_argument("--ct-model", type=Path, default=None, help="CT detector ONNX (default: the bundled one)")
    p.add_argument("--e2e-backend", default="auto", help="backend of the end-to-end loop (default: auto)")
    p.add_argument("--ct-backend", default="auto", help="backend of the CT detector (default: auto)")
    p.add_argument("--device-label", default=None, help="names the machine in the results (default: cpu-<n>core "
                   "or gpu-<name>)")
    p.add_argument("--min-queries", type=int, default=None, help="model-only: override the queries per backend")
    p.add_argument("--min-seconds", type=float, default=None, help="model-only: override the seconds per backend")
    p.add_argument("--from-json", type=Path, default=None, metavar="BENCH_JSON",
                   help="measure nothing: redraw bench.md, bench.png and the tables from an earlier bench.json "
                   "(written beside it, or into --out)")
    p.set_defaults(func=run)


def config_from_args(a: argparse.Namespace) -> BenchConfig:
    threads = a.threads or usable_cores()
    label = a.device_label or default_device_label()
    cfg = BenchConfig(threads=threads, backends=tuple(a.backends), only=tuple(a.only), model=a.model,
                      checkpoint=a.checkpoint, ct_model=a.ct_model, e2e_backend=a.e2e_backend,
                      ct_backend=a.ct_backend, device_label=label,
                      out=a.out or Path("bench-results") / label)
    if a.quick:
        cfg = quick_config(cfg)
    if a.min_queries is not None or a.min_seconds is not None:
        b = cfg.budget
        cfg = replace(cfg, budget=Budget(b.warmup, a.min_queries if a.min_queries is not None else b.min_queries,
                                         a.min_seconds if a.min_seconds is not None else b.min_seconds,
                                         max(b.max_seconds, 2 * (a.min_seconds or 0))))
    return cfg


def command_line(cfg: BenchConfig) -> str:
    """The command that reproduces this run's effective config (for the report)."""
    parts = ["dvt-edge bench"] + (["--quick"] if cfg.quick else [])
    parts += ["--out", shlex.quote(str(cfg.out)), "--threads", str(cfg.threads), "--only", *cfg.only]
    if cfg.device_label != default_device_label():
        parts += ["--device-label", shlex.quote(cfg.device_label)]
    if tuple(cfg.backends) != MODEL_BACKENDS:
        parts += ["--backends", *cfg.backends]
    for flag, value in (("--model", cfg.model), ("--checkpoint", cfg.checkpoint), ("--ct-model", cfg.ct_model)):
        if value is not None:
            parts += [flag, shlex.quote(str(value))]
    return " ".join(parts)


def run(args: argparse.Namespace) -> int:
    if args.from_json is not None:
        rerender(args.from_json, args.out or args.from_json.parent)
        return 0
    run_bench(config_from_args(args))
    return 0  # a missed target is a finding in the report, not a command failure


def run_bench(cfg: BenchConfig, log=print) -> dict:
    """Run the configured sections and write the outputs; returns the results dict (also in bench.json)."""
    from benchmarks.plots import write_png
    from benchmarks.report import (
        DISCLAIMER,
        console_summary,
        evaluate_targets,
        write_outputs,
    )

    t_start = time.perf_counter()
    env = collect_environment(cfg.threads, cfg.device_label)
    busy = env["load_average_start"] and env["load_average_start"][0] > 0.75 * env["cpu"]["usable_cores"]
    if busy:
        log(f"warning: load average {env['load_average_start']} on {env['cpu']['usable_cores']} cores: other work is "
            "running; timings will be pessimistic (recorded in the results)")
    results: dict = {"schema": SCHEMA, "disclaimer": DISCLAIMER, "command": command_line(cfg),
                     "environment": env, "config": cfg.to_json(), "model": None}
    with tempfile.TemporaryDirectory(prefix="dvt-bench-") as tmp_name:
        tmp = Path(tmp_name)
        if "model" in cfg.only or "e2e" in cfg.only or "compare" in cfg.only:
            from benchmarks.models import DEMO_CLIP, demo_input, resolve_us_model

            info = resolve_us_model(cfg.model, tmp)
            results["model"] = info.to_json()
            log(f"model: {results['model']['path']} ({info.note})")
            if "model" in cfg.only:
                from benchmarks.model_only import run_model_only

                log("model only:")
                results["model_only"] = run_model_only(cfg, info, demo_input(info.spec), tmp, log=log)
                _note_load(env, "after model only")
            if "e2e" in cfg.only:
                results["end_to_end"] = _run_e2e(cfg, info, DEMO_CLIP, log)
                _note_load(env, "after end to end")
            if "compare" in cfg.only:
                from benchmarks.compare import run_compare

                results["compare"] = run_compare(cfg, info, DEMO_CLIP, tmp, log=log)
                _note_load(env, "after compare")
        if "ct" in cfg.only:
            from benchmarks.ct import run_ct

            log("ct:")
            results["ct"] = run_ct(cfg, tmp, log=log)
            if results["ct"]["status"] != "ok":
                log(f"  skipped: {results['ct']['reason']}")
    env["load_average_end"] = load_average()
    env["contended"] = _contended(env, cfg.threads)
    if env["contended"]:
        log(f"warning: other work ran during the benchmark ({env['contended']}); timings are pessimistic")
    results["targets"] = evaluate_targets(results)
    results["wall_s"] = round(time.perf_counter() - t_start, 1)
    cfg.out.mkdir(parents=True, exist_ok=True)
    png = write_png(results, cfg.out / "bench.png")
    paths = write_outputs(results, cfg.out, png.name if png else None)
    log("")
    log(console_summary(results))
    log(f"\nwrote {paths['json']}, {paths['markdown']}" + (f", {png}" if png else " (no PNG: matplotlib missing)"))
    return results


def _note_load(env: dict, at: str) -> None:
    env.setdefault("load_during", []).append({"at": at, "load_average": load_average()})


def _contended(env: dict, threads: int) -> str:
    """Why the run looks contended ("" when quiet). The 1-min load average includes this benchmark's own
    ~``threads`` runnable threads, so "other work" is load above usable cores + 1 at any checkpoint, or above
    0.75 x cores at the start."""
    cores = env["cpu"]["usable_cores"]
    start = env.get("load_average_start")
    if start and start[0] > 0.75 * cores:
        return f"1-min load {start[0]} at the start on {cores} cores"
    marks = [(m["at"], m["load_average"]) for m in env.get("load_during", [])]
    marks.append(("at the end", env.get("load_average_end")))
    for at, load in marks:
        if load and load[0] > max(cores, threads) + 1.0:
            return f"1-min load {load[0]} {at} on {cores} cores"
    return ""


def rerender(path: Path, out: Path, log=print) -> dict:
    """Re-draw the Markdown, the PNG and the console tables from a bench.json (no measurement)."""
    from benchmarks.plots import write_png
    from benchmarks.report import console_summary, write_outputs

    results = json.loads(Path(path).read_text())
    out.mkdir(parents=True, exist_ok=True)
    png = write_png(results, out / "bench.png")
    paths = write_outputs(results, out, png.name if png else None)
    log(console_summary(results))
    log(f"\nre-rendered {paths['markdown']}" + (f", {png}" if png else "") + f" from {path}")
    return results


def _run_e2e(cfg: BenchConfig, info, clip: Path, log) -> dict:
    from benchmarks.end_to_end import run_end_to_end
    from edge.backends import open_backend
    from edge.us.int8_frames import calibration_inputs

    be, choice = open_backend(info.path, cfg.e2e_backend, threads=cfg.threads, calibration=calibration_inputs)
    log(f"end to end ({be.name}: {choice.reason}):")
    try:
        block = run_end_to_end(cfg, be, info.spec, clip, log=log)
    finally:
        be.close()
    block["backend_choice"] = choice.reason
    return block
