"""The linter is part of the test suite, so the README's one test command (and CI) runs it."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_ruff_finds_nothing():
    """``ruff check .`` with the rules in pyproject.toml ([tool.ruff]): pyflakes, pycodestyle, import order."""
    try:
        import ruff  # noqa: F401  (the ruff wheel ships its binary beside this module)
    except ImportError:
        if shutil.which("ruff") is None:
            pytest.skip("ruff is not installed (pip install -e '.[dev]' installs it)")
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", "--output-format", "concise", "."], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"ruff check . found problems (fix them, or `ruff check --fix .`):\n{proc.stdout}{proc.stderr}"
