"""The Function benchmark's quick mode runs and prints a row for each custom Function (no timing assertions)."""

import math
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).parents[1]


def test_function_benchmark_quick_mode_prints_a_row_per_function():
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.functions", "--quick"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "threads 1" in lines[0] and "process CPU time" in lines[0]
    assert lines[1].split() == ["function", "size", "ratio", "min-max", "saved", "MiB", "plain", "Function"]
    assert set(lines[2]) == {"-"}
    table = [line for line in lines[3:] if line and not line.startswith("pairwise_roc_auc at B=32768")]
    names = {line.split()[0] for line in table}
    assert names == {"SurrogateSums", "SurrogateRows", "AnchorSum", "blocked_xent_roc_auc"}
    for line in table:
        *_, ratio, spread, plain_mib, function_mib = line.split()
        low, high = map(float, spread.split("-"))
        assert all(math.isfinite(v) and v > 0 for v in (float(ratio), low, high)), line
        assert low <= float(ratio) <= high, line
        assert float(plain_mib) >= 0 and float(function_mib) >= 0, line
    assert "pairwise_roc_auc at B=32768" in lines[-1]
