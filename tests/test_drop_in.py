"""Smoke test of examples/drop_in.py: it runs, calibrates, prints the table and saves the PR-curve PNG."""

import re

from test_examples import run_example


def test_drop_in_quick_prints_the_table_and_saves_the_plot(tmp_path):
    out = run_example("drop_in.py", tmp_path)  # checks the smoke-run line and the absence of metric warnings
    assert re.search(r"seed \|\s+P @0\s+R @0 \|\s+P cal\s+R cal \|\s+BCE P\s+BCE R \| AP goloss\s+AP BCE", out), out
    assert "dual_lr 0.05" in out  # the default it states is the module's
    rows = re.findall(r"^\s+0 \|(.*)$", out, flags=re.M)
    assert len(rows) == 1, out  # --quick: one seed
    values = [float(v) for v in re.findall(r"-?\d+\.\d+", rows[0])]
    assert len(values) == 10, rows[0]
    precision, recall, cal_precision, cal_recall, bce_precision, bce_recall, ap_goloss, ap_bce, lam, train_p = values
    assert all(0.0 <= v <= 1.0 for v in values[:8])
    assert precision > 0.0 and recall > 0.0 and cal_recall > 0.0, rows[0]
    assert lam >= 0.0
    assert abs(train_p - 0.95) < 0.05, rows[0]  # the strict signal holds the training precision on target
    assert re.search(r"^\s+mean \|", out, flags=re.M), out
    for name in ("goloss at logit 0", "goloss calibrated", "BCE validation-tuned"):
        assert re.search(rf"^{name}: mean test precision \d\.\d+, target 0.95: (met|missed)", out, flags=re.M), out
    png = tmp_path / "drop_in_pr_curve.png"  # the default --plot path, relative to the cwd
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 10_000
