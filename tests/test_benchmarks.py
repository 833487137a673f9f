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
    rows = [line.split("  ")[0].strip() for line in lines[4:11]]
    assert rows[0] == "recall_at_precision_loss" and rows[4] == "precision_recall_auc_loss"
    assert rows[5:] == ["roc_auc_loss (hinge)", "roc_auc_loss (xent)"]
    ratios = [float(line[48:].split()[3]) for line in lines[4:11]]  # the eager column
    assert all(ratio > 0 for ratio in ratios)
    assert "vmap over K = 2 target precisions" in result.stdout
