"""The benchmark's quick mode runs and prints its table (no timing assertions)."""

import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).parents[1]


def test_benchmark_quick_mode_prints_the_table():
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--quick"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "threads" in lines[0] and "goloss/BCE" in lines[1]
    rows = [line.split() for line in lines[3:]]
    assert {row[0] for row in rows} >= {"recall_at_precision_loss", "precision_recall_auc_loss"}
    assert all(float(row[4]) > 0 for row in rows)
