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
    assert "threads" in lines[0] and "eager" in lines[2]
    rows = [line.split() for line in lines[4:9]]
    assert [row[0] for row in rows][::4] == ["recall_at_precision_loss", "precision_recall_auc_loss"]
    assert all(float(row[4]) > 0 and float(row[6]) > 0 for row in rows)
    assert "vmap over K = 2 target precisions" in result.stdout
