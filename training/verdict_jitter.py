"""Validation probe for the verdict's steadiness rule (``VerdictConfig.max_vein_jitter``): the vein jitter of
every closure the rule judged, per clip, on first-renderer VALIDATION clips (never a test range).

    python -m training.verdict_jitter --out training/results/us-verdicts-val880000-wide890000.json

Sets: 20 normal + 20 DVT clips from seed 880000 (as ``evaluate_verdicts --base-seed 880000``) and the same
from seed 890000 drawn domain-randomised (``generate_clip(wide=True)``), where a flickering clot-filled vein
can reach zero area by chance. Each row: the verdict and the jitter of each closure (compressibility >= 0.8)
the rule saw. The threshold 0.025 was chosen from these rows.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from edge.backends.select import open_backend
from edge.spec import load_spec
from edge.us import verdict
from training.evaluate_verdicts import run_clip, summarise
from training.phantoms.us_clip import generate_clip

SETS = ((880_000, False), (890_000, True))  # (base seed, domain-randomised)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, default=Path("edge/assets/resunet-lite.onnx"))
    p.add_argument("--clips", type=int, default=20, help="normal clips per set (and as many DVT clips)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    seen: list[float] = []

    closure_min = verdict.VerdictConfig().compressible_min

    def recording(m, v):  # an edge.us.pipeline.VerdictObserver: every verdict the pipeline decides
        if m.compressibility is not None and m.compressibility >= closure_min and m.vein_jitter is not None:
            seen.append(m.vein_jitter)
    spec = load_spec(args.model)
    backend, _ = open_backend(args.model, "onnxruntime", threads=args.threads)
    rows = []
    for base, wide in SETS:
        for i in range(args.clips):
            for dvt in (False, True):
                seen.clear()
                r = run_clip(generate_clip(base + 2 * i + int(dvt), dvt=dvt, wide=wide), backend, spec,
                             observer=recording)
                rows.append({**r, "wide": wide, "closure_jitters": list(seen)})
                print(f"{r['seed']} dvt={dvt!s:5} expected {r['expected']:16} got {r['verdict']:16} jitter "
                      + (f"{max(seen):.3f}" if seen else "-"), flush=True)
    out = {"model": str(args.model), "max_vein_jitter": verdict.VerdictConfig().max_vein_jitter,
           "summary": {("wide" if w else "standard"): summarise([r for r in rows if r["wide"] == w]) for w in (False, True)},
           "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out["summary"], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
