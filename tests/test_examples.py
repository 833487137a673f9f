"""Smoke tests: every example runs with ``--quick`` and prints its results."""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def run_example(name: str, tmp_path: pathlib.Path, *args: str) -> str:
    """Run ``examples/<name>`` with ``--quick`` in ``tmp_path``; return its stdout."""
    env = dict(os.environ, MPLBACKEND="Agg")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name), "--quick", *args],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, f"{name} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def test_synthetic_precision_at_recall(tmp_path):
    out = run_example("synthetic_precision_at_recall.py", tmp_path, "--plot", "boundaries.png")
    assert "xent" in out and "goloss" in out
    assert len(re.findall(r"^\s+\d+\s+[01]\.\d{4}\s+[01]\.\d{4}", out, flags=re.M)) == 2  # one row per seed
    assert re.search(r"^\s+mean\s+[01]\.\d{4}\s+[01]\.\d{4}$", out, flags=re.M), out
    assert (tmp_path / "boundaries.png").stat().st_size > 0


def test_functional_loop(tmp_path):
    out = run_example("functional_loop.py", tmp_path)
    assert re.search(r"^held-out precision [01]\.\d{4}$", out, flags=re.M), out
    assert re.search(r"^held-out recall [01]\.\d{4}$", out, flags=re.M), out


def test_target_sweep(tmp_path):
    out = run_example("target_sweep.py", tmp_path)
    rows = re.findall(r"^\s+(0\.\d{3})\s+[01]\.\d{4}\s+[01]\.\d{4}\s+\d+\.\d{3}$", out, flags=re.M)
    assert rows == ["0.500", "0.650", "0.800", "0.950"], out
    assert (tmp_path / "target_sweep.png").stat().st_size > 0  # default path, in the cwd
