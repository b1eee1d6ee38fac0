"""Start-up cost of the CLI: plug-ins are registered without importing their heavy modules.

With the dev extras installed, registering the ``train`` plug-in imported torch (~3 s on two cores) at every
``dvt-edge`` start. Asserted here as a fact of ``sys.modules`` in a fresh interpreter, never as a time."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest

HEAVY = ("torch", "training.train_us", "training.evaluate_verdicts", "matplotlib", "export.us_model", "export.ct_model")


def modules_after(code: str) -> dict:
    probe = code + f"\nimport json, sys; print(json.dumps({{m: m in sys.modules for m in {HEAVY!r}}}))\n"
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("argv", [[], ["--help"], ["us", "run", "clip.mp4"], ["demo"], ["doctor"]])
def test_building_the_parser_imports_no_heavy_module(argv):
    loaded = modules_after(f"from edge.cli import build_parser\nbuild_parser({argv!r})")
    assert not any(loaded.values()), f"build_parser({argv}) imported {[m for m, v in loaded.items() if v]}"


def test_help_lists_the_plugins_without_importing_them():
    code = ("import contextlib, io\nfrom edge.cli import main\nbuf = io.StringIO()\n"
            "with contextlib.redirect_stdout(buf):\n"
            "    try:\n        main(['--help'])\n    except SystemExit:\n        pass\n"
            "assert all(w in buf.getvalue() for w in ('train', 'export', 'bench')), buf.getvalue()\n")
    assert not any(modules_after(code).values())


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch not installed (the [train] extra)")
def test_the_plugin_being_run_is_registered_for_real():
    from edge.cli import build_parser

    parser = build_parser(["train", "us", "--out", "x"])
    args = parser.parse_args(["train", "us", "--out", "x"])
    assert args.train_command == "us" and callable(args.func)
