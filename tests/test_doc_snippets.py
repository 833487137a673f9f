"""The docs pages' Python blocks (```python) run as written: each page's blocks in order, in
one namespace, in a temporary working directory (the recipes of the integrations pages
included: skorch and Lightning fit, checkpoint and calibrate there)."""

from __future__ import annotations

import os
import pathlib
import re

import pytest

DOCS = pathlib.Path(__file__).parents[1] / "docs"
PAGES = sorted(path for path in DOCS.rglob("*.md") if "_build" not in path.parts and "results" not in path.parts)
WITH_CODE = [path for path in PAGES if "```python\n" in path.read_text()]


def test_the_recipes_are_among_the_pages_run():
    names = {path.relative_to(DOCS).as_posix() for path in WITH_CODE}
    assert {"integrations/skorch.md", "integrations/lightning.md", "getting_started.md"} <= names


@pytest.mark.parametrize("page", WITH_CODE, ids=[path.relative_to(DOCS).as_posix() for path in WITH_CODE])
def test_page_python_blocks_run(page, tmp_path, monkeypatch):
    if "skorch" in page.name:
        pytest.importorskip("skorch")
    if "lightning" in page.name:
        pytest.importorskip("lightning")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__docs__"}
    for block in re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S):
        exec(compile(block, str(page), "exec"), namespace)
    assert os.getcwd() == str(tmp_path)
