"""The README's Python snippets run as written."""

import pathlib
import re

README = (pathlib.Path(__file__).parents[1] / "README.md").read_text()


def test_readme_python_snippets_run():
    snippets = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    assert snippets, "README has no python snippet"
    for snippet in snippets:
        exec(compile(snippet, "README.md", "exec"), {})


def test_readme_starts_with_the_demo_and_test_commands():
    first_block = re.search(r"```bash\n(.*?)```", README, flags=re.S).group(1)
    ci = (pathlib.Path(__file__).parents[1] / ".ci" / "run").read_text()
    test_command = [line for line in first_block.splitlines() if "pytest" in line][0]
    assert test_command.split("&& ", 3)[-1] in ci
    assert "examples/synthetic_precision_at_recall.py" in first_block
