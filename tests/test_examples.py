"""Smoke tests: every example runs with ``--quick``, says it is a smoke run, prints its results
(metrics from torchmetrics, no metric warnings), and answers ``--help`` without importing torch."""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
SMOKE = "smoke run:"
# sklearn's and torchmetrics' "ill-defined metric" / zero-division warnings, or any warning
# raised from inside torchmetrics (its file path is in the printed warning).
FORBIDDEN_IN_STDERR = ("UndefinedMetricWarning", "ill-defined", "zero_division", "torchmetrics")


def example_env() -> dict:
    env = dict(os.environ, MPLBACKEND="Agg")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)  # ddp.py must start its own processes, as when run by hand
    return env


def run_example(name: str, tmp_path: pathlib.Path, *args: str) -> str:
    """Run ``examples/<name> --quick`` in ``tmp_path``; check the smoke line and stderr; return stdout."""
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name), "--quick", *args],
        cwd=tmp_path, env=example_env(), capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, f"{name} failed:\n{result.stdout}\n{result.stderr[-3000:]}"
    assert re.search(rf"^{SMOKE} ", result.stdout, flags=re.M), result.stdout
    for word in FORBIDDEN_IN_STDERR:
        assert word not in result.stderr, f"{word!r} in the stderr of {name}:\n{result.stderr[-3000:]}"
    return result.stdout


def number_after(label: str, out: str) -> float:
    match = re.search(rf"^{re.escape(label)} ([01]\.\d+)", out, flags=re.M)
    assert match, f"no line {label!r} in:\n{out}"
    return float(match.group(1))


ALL_EXAMPLES = sorted(path.name for path in EXAMPLES.glob("*.py") if not path.name.startswith("_"))

# Run the script as __main__ with --help; report which heavy modules it imported on the way.
HELP_PROBE = """
import runpy, sys
path = sys.argv[1]
sys.argv = [path, "--help"]
try:
    runpy.run_path(path, run_name="__main__")
except SystemExit as exit:
    assert exit.code in (0, None), exit.code
heavy = ("torch", "sklearn", "torchmetrics", "goloss", "numpy", "matplotlib", "tqdm", "optree")
print("imported:", [name for name in heavy if name in sys.modules])
"""


@pytest.mark.parametrize("name", ALL_EXAMPLES)
def test_help_answers_without_importing_torch(name, tmp_path):
    result = subprocess.run([sys.executable, str(EXAMPLES / name), "--help"],
                            cwd=tmp_path, env=example_env(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "usage:" in result.stdout and "--quick" in result.stdout
    # The heavy imports come after argument parsing: --help never loads them.
    probe = subprocess.run([sys.executable, "-c", HELP_PROBE, str(EXAMPLES / name)],
                           cwd=tmp_path, env=example_env(), capture_output=True, text=True, timeout=60)
    assert probe.returncode == 0, probe.stderr
    assert "imported: []" in probe.stdout, probe.stdout
    # every option that takes a value says its default
    options = re.split(r"\n(?=  -)", result.stdout.split("options:", 1)[1])
    for block in options:
        if re.match(r"\s+--[\w-]+ [A-Z_]+", block):
            assert "default" in " ".join(block.split()), block


def test_synthetic_precision_at_recall(tmp_path):
    out = run_example("synthetic_precision_at_recall.py", tmp_path, "--plot", "boundaries.png")
    assert "xent" in out and "goloss" in out
    rows = re.findall(r"^\s+\d+\s+([01]\.\d{4})\s+([01]\.\d{4})", out, flags=re.M)
    assert len(rows) == 2, out  # one row per seed
    mean = re.search(r"^\s+mean\s+([01]\.\d{4})\s+([01]\.\d{4})$", out, flags=re.M)
    assert mean, out
    assert float(mean.group(2)) > float(mean.group(1)), out  # goloss beats cross-entropy, even in --quick
    assert (tmp_path / "boundaries.png").stat().st_size > 0


def test_functional_loop(tmp_path):
    out = run_example("functional_loop.py", tmp_path)
    precision, recall = number_after("held-out precision", out), number_after("held-out recall", out)
    assert precision > 0.0 and recall > 0.0, out  # the smoke run trains long enough to predict positives
    assert re.search(r"^held-out precision [01]\.\d{4} \(target 0\.8, at logit 0\)$", out, flags=re.M), out
    assert re.search(r"^held-out best recall at precision >= 0\.8 \(any threshold\) [01]\.\d{4}$", out, flags=re.M), out
    assert re.search(r"^held-out average precision [01]\.\d{4}, ROC AUC [01]\.\d{4}$", out, flags=re.M), out


def test_target_sweep(tmp_path):
    out = run_example("target_sweep.py", tmp_path)
    rows = re.findall(r"^\s+(0\.\d{3})\s+([01]\.\d{4})\s+([01]\.\d{4})\s+\d+\.\d{3}$", out, flags=re.M)
    assert [row[0] for row in rows] == ["0.500", "0.650", "0.800", "0.950"], out
    assert all(float(precision) > 0.0 and float(recall) > 0.0 for _, precision, recall in rows), out
    # The strict dual signal puts the held-out precision near each target, even in --quick.
    assert all(abs(float(precision) - float(target)) < 0.1 for target, precision, _ in rows), out
    assert re.search(r"^mean \|precision - target\| [01]\.\d{4}, max [01]\.\d{4}$", out, flags=re.M), out
    assert (tmp_path / "target_sweep.png").stat().st_size > 0  # default path, in the cwd


def test_ddp_starts_its_own_processes_without_torchrun(tmp_path):
    out = run_example("ddp.py", tmp_path)
    lines = [line for line in out.splitlines() if line.startswith("rank ")]
    assert [line.split(":")[0] for line in lines] == ["rank 0", "rank 1"], out
    assert lines[0].split(":")[1] == lines[1].split(":")[1], out  # the same lambda and prior on both ranks
    match = re.search(r"^held-out precision ([01]\.\d{3}) \(target 0\.9\), recall ([01]\.\d{3})", out, flags=re.M)
    assert match and float(match.group(1)) > 0.0 and float(match.group(2)) > 0.0, out
    assert re.search(r"^held-out best recall at precision >= 0\.9: [01]\.\d{3}; average precision [01]\.\d{3}$",
                     out, flags=re.M), out
