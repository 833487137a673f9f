"""The benchmark's quick mode runs and prints its tables (no timing assertions)."""

import dataclasses
import math
import pathlib
import subprocess
import sys

import torch

ROOT = pathlib.Path(__file__).parents[1]


def quick_run(module: str, timeout: int, *args: str) -> list[str]:
    """The printed lines of ``python -m MODULE --quick ARGS``, which must succeed."""
    result = subprocess.run(
        [sys.executable, "-m", module, "--quick", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_benchmark_quick_mode_prints_the_tables_and_writes_the_page(tmp_path):
    page = tmp_path / "results" / "speed.md"
    lines = quick_run("benchmarks.run", 300, "--markdown", str(page))
    assert "threads" in lines[0] and "eager" in lines[2]
    rows = [line.split("  ")[0].strip() for line in lines[4:11]]
    assert rows[0] == "recall_at_precision_loss" and rows[4] == "precision_recall_auc_loss"
    assert rows[5:] == ["roc_auc_loss (hinge)", "roc_auc_loss (xent)"]
    ratios = [float(line[48:].split()[3]) for line in lines[4:11]]  # the eager column
    assert all(ratio > 0 for ratio in ratios)
    assert any("vmap over K = 2 target precisions" in line for line in lines)

    # The module and small-batch table: every acceptance row, with a finite positive median
    # ratio, its IQR and min-max, the target and whether it is met.
    title = next(i for i, line in enumerate(lines) if line.startswith("module and small-batch rows"))
    assert lines[title + 1].split() == ["row", "B", "L", "A", "ratio", "IQR", "min-max", "target", "met"]
    assert set(lines[title + 2]) == {"-"}
    table = [line for line in lines[title + 3:] if line.strip() and not line.startswith("wrote ")]
    assert [line[0] for line in table] == ["A", "A", "A", "B", "C", "C", "D", "E"]
    for line in table:
        *_, ratio, iqr, spread, target, met = line.split()
        ratio, target = float(ratio), float(target.removeprefix("<="))
        low, high = map(float, spread.split("-"))
        q1, q3 = map(float, iqr.split("-"))
        assert all(math.isfinite(v) and v > 0 for v in (ratio, low, high, q1, q3)), line
        assert low <= q1 <= ratio <= q3 <= high, line
        assert met == ("yes" if ratio <= target else "no"), line

    # The page: a title, the commit and machine it was measured on, the command, the same tables.
    text = page.read_text()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    assert text.startswith("# Speed") and f"Measured at commit `{commit.strip()}" in text
    assert "CPUs" in text and "torch " in text and "--markdown" in text
    assert all(line in text for line in lines[:-1] if line.strip())  # every printed line but "wrote PATH"


def test_operating_point_harness_holds_fixed_multipliers_and_passes_the_learning_rate(monkeypatch):
    """``--dual-lr 0 --lambdas-init v``: the multiplier stays at v through training; ``--lr``
    reaches Adam (another rate trains another model); the table tells the settings apart."""
    monkeypatch.syspath_prepend(str(ROOT))
    from benchmarks import operating_point as op

    base = op.Config("gauss2d", "linear", "RAP", (0.9,), "strict", quick=True, epochs=2)
    fixed = op.train(dataclasses.replace(base, dual_lr=0.0, lambdas_init=0.3))
    assert fixed["lambda_final"] == [torch.tensor(0.3).item()]  # float32
    moving = op.train(base)
    assert moving["lambda_final"] != [1.0]  # the default: the multiplier moves from lambdas_init=1
    assert op.train(dataclasses.replace(base, lr=1e-2))["rates"] != moving["rates"]

    lines = op.summarise([fixed, moving], tol=0.025, tol_heldout=0.03)
    assert [line[5] for line in lines[1:]] == ["default", "0, init 0.3"]


def test_function_benchmark_quick_mode_prints_a_row_per_function():
    """Each kernel's row against its plain reference (no timing asserted)."""
    lines = quick_run("benchmarks.functions", 120)
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
