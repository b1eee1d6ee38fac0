"""One PNG with the three pictures a reader needs (matplotlib, Agg backend: no display required).

1. Model-only latency distribution per backend (box plot, whiskers at p1/p99, p50 and p99 labelled).
2. End to end: per-stage p50 times stacked per scenario (the frame loop's critical path), with the capture
   thread's decode drawn beside it (it overlaps the loop) and the frame age p99 marked.
3. Frame age over stream time: slow backend with the newest-frame slot vs the lossless FIFO (backlog).
"""

from __future__ import annotations

from pathlib import Path

LOOP_STAGES = ("preprocess", "infer", "postprocess", "track", "measure", "render")


def write_png(results: dict, path: Path) -> Path | None:
    """Draw the figure to ``path``; None (and nothing written) when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, axes = plt.subplots(1, 3, figsize=(18, 5.5))
    _model_only(axes[0], results.get("model_only"))
    _stages(axes[1], results.get("end_to_end"))
    _age(axes[2], results.get("end_to_end"))
    label = results["environment"]["device_label"]
    fig.suptitle(f"DVT Edge latency on {label} - research software, not for diagnostic use", fontsize=11)
    fig.tight_layout()
    from edge.atomic import atomic_path

    try:
        with atomic_path(path) as tmp:  # the suffix is kept, so matplotlib still picks PNG
            fig.savefig(tmp, dpi=110)
    finally:
        plt.close(fig)
    return path


def _empty(ax, title: str, text: str) -> None:
    ax.set_title(title)
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, wrap=True)
    ax.set_axis_off()


def _plain_log_labels(ax) -> None:
    """Log axis labelled 5, 10, 20, ... instead of 5x10^0 (easier to read off milliseconds)."""
    from matplotlib.ticker import FuncFormatter, LogLocator

    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))


def _model_only(ax, mo: dict | None) -> None:
    rows = [r for r in (mo or {}).get("results", []) if r["status"] == "ok"]
    if not rows:
        _empty(ax, "Model only", "not run")
        return
    data = [r["samples_ms"] for r in rows]
    names = [f"{r['backend']}\nbatch {r['batch']}" for r in rows]
    ax.boxplot(data, whis=(1, 99), showfliers=True, flierprops={"markersize": 2, "alpha": 0.3})
    ax.set_xticks(range(1, len(names) + 1), names, fontsize=8)
    for i, r in enumerate(rows, start=1):
        lat = r["latency_ms"]
        ax.annotate(f"p50 {lat['p50']:.1f}\np99 {lat['p99']:.1f}", (i, lat["p99"]), xytext=(8, 0),
                    textcoords="offset points", fontsize=7, va="bottom")
    skipped = [f"{r['backend']} (batch {r['batch']})" for r in (mo or {}).get("results", []) if r["status"] != "ok"]
    if skipped:
        ax.set_xlabel("skipped (reasons in bench.md): " + ", ".join(skipped), fontsize=7, wrap=True)
    ax.set_yscale("log")
    _plain_log_labels(ax)
    ax.set_ylabel("ms per query (log; whiskers p1-p99)")
    ax.set_title("Model only: latency per backend")
    ax.grid(axis="y", alpha=0.3)


def _stages(ax, e2e: dict | None) -> None:
    scs = (e2e or {}).get("scenarios", [])
    if not scs:
        _empty(ax, "End to end", "not run")
        return
    x = list(range(len(scs)))
    bottom = [0.0] * len(scs)
    for stage in LOOP_STAGES:
        vals = [s["stages_ms"][stage]["p50"] or 0.0 for s in scs]
        ax.bar(x, vals, 0.55, bottom=bottom, label=stage)
        bottom = [b + v for b, v in zip(bottom, vals)]
    ax.bar([i + 0.38 for i in x], [s["stages_ms"]["decode"]["p50"] or 0.0 for s in scs], 0.15, color="grey",
           hatch="//", label="decode (capture thread)")
    ages = [s["frame_age_ms"]["p99"] if s["frame_age_ms"]["p99"] is not None else float("nan")
            for s in scs]  # NaN (not drawn) for a scenario that processed no frame
    ax.scatter(x, [min(a, max(bottom) * 2.5) for a in ages], marker="_", s=400, color="black", zorder=3,
               label="frame age p99 (clipped)")
    ax.set_xticks(x, [f"{s['name']}\n{s['fps_processed'] or 0:.1f} fps" for s in scs], fontsize=8)
    ax.set_ylabel("ms (p50 per stage, stacked)")
    ax.set_title("End to end: per-stage time per frame")
    ax.legend(fontsize=7, loc="upper left")
    ax.grid(axis="y", alpha=0.3)


def _age(ax, e2e: dict | None) -> None:
    scs = {s["name"]: s for s in (e2e or {}).get("scenarios", [])}
    shown = [n for n in ("slow-newest", "slow-fifo", "paced-30fps") if n in scs]
    if not shown:
        _empty(ax, "Frame age", "not run")
        return
    for name in shown:
        s = scs[name]["samples"]
        ax.plot(s["t_done_s"], s["frame_age_ms"], ".-", ms=3, lw=0.8,
                label=f"{name} ({scs[name]['policy']}, dropped {scs[name]['dropped']})")
    ax.set_xlabel("stream time when the verdict updated (s since the first frame)")
    ax.set_ylabel("frame age: verdict - capture (ms)")
    ax.set_yscale("log")
    _plain_log_labels(ax)
    ax.set_title("Newest-frame slot keeps age bounded; a lossless queue backs up")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, which="both")
