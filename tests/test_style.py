"""The code base stays ruff clean: lint rules and formatting as pyproject.toml sets them."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
CHECKED = ["src", "tests", "benchmarks"]

# ruff comes with the test extra; run it through this interpreter so that a venv's ruff is found
# even when the venv is not activated (pytest started as .venv/bin/pytest)
needs_ruff = pytest.mark.skipif(
    importlib.util.find_spec("ruff") is None, reason="ruff is installed with the test extra"
)


def _ruff(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ruff", *args], cwd=ROOT, capture_output=True, text=True)


@needs_ruff
def test_ruff_check_passes() -> None:
    result = _ruff("check", *CHECKED)
    assert result.returncode == 0, result.stdout + result.stderr


@needs_ruff
def test_ruff_format_leaves_the_code_unchanged() -> None:
    result = _ruff("format", "--check", *CHECKED)
    assert result.returncode == 0, result.stdout + result.stderr
