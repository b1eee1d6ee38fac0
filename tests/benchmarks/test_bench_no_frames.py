"""A benchmark scenario that processed no frame (a loaded machine, a slow backend) is reported as such: no
TypeError formatting None in the console line, the targets or the plot (issue 12)."""

from __future__ import annotations

import pytest

from benchmarks.end_to_end import Scenario, _summarise, scenario_line
from benchmarks.report import evaluate_targets


def _empty_block(name: str, **kw) -> dict:
    sc = Scenario(name, 30.0, 1.0, **kw)
    capture = {"frames_captured": 0, "frames_delivered": 0, "dropped": 0}
    return _summarise(sc, [], t_start=0.0, warmup_s=0.5, backlog=0, capture=capture, backend="fake",
                      verdict="indeterminate")


def test_empty_scenario_line_targets_and_plot():
    blocks = [_empty_block("paced-30fps"), _empty_block("slow-newest", delay_ms=50.0),
              _empty_block("slow-fifo", policy="lossless-fifo", delay_ms=50.0),
              _empty_block("unpaced", policy="bounded-queue-4", paced=False)]
    for b in blocks:
        assert b["frames_processed"] == 0 and b["fps_processed"] is None
        assert "no frame processed" in scenario_line(b["name"], b)
    targets = {t["id"]: t for t in evaluate_targets({"end_to_end": {"scenarios": blocks}})}
    assert all(t["pass"] in (None, False) for t in targets.values())
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from benchmarks.plots import _age, _stages

    fig, (a, b) = plt.subplots(1, 2)
    try:
        _stages(a, {"scenarios": blocks})
        _age(b, {"scenarios": blocks})
    finally:
        plt.close(fig)
