"""The docs site builds as the docs say, with warnings as errors, and its API page documents every
public name; the README stays a README (at most 250 lines)."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

import goloss

ROOT = pathlib.Path(__file__).parents[1]
README_MAX_LINES = 250


def test_readme_is_at_most_250_lines():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, (
        f"README.md has {len(lines)} lines (at most {README_MAX_LINES}): move detail into docs/")


def test_docs_build_with_warnings_as_errors_and_document_every_public_name(tmp_path):
    for module in ("sphinx", "furo", "myst_parser"):  # the docs extra: pip install -e ".[docs]"
        pytest.importorskip(module)
    html = tmp_path / "html"
    command = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
               "-d", str(tmp_path / "doctrees"), "docs", str(html)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"sphinx-build failed:\n{result.stdout[-4000:]}\n{result.stderr[-8000:]}"

    api = (html / "api.html").read_text()
    anchors = lambda name: (f'id="goloss.{name}"', f'id="module-goloss.{name}"')  # noqa: E731
    missing = [name for name in goloss.__all__ if not any(anchor in api for anchor in anchors(name))]
    assert not missing, f"names of goloss.__all__ without an entry in the API page: {missing}"
    for name in ("distributed.all_reduce_sum", "distributed.roc_auc_loss_across_ranks",
                 "integrations.skorch.DualStep", "integrations.skorch.Diagnostics",
                 "integrations.skorch.sigmoid_then_2d", "integrations.lightning.DualStep"):
        assert f'id="goloss.{name}"' in api, name
    for page in ("getting_started", "guide/index", "integrations/lightning", "integrations/skorch", "design",
                 "results"):
        assert (html / f"{page}.html").exists(), page
