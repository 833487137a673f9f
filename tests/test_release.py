"""The release's version agrees across pyproject.toml, goloss.__version__ and the CHANGELOG."""

import pathlib
import re
import tomllib

import goloss

ROOT = pathlib.Path(__file__).parents[1]


def test_version_is_the_same_everywhere_and_has_a_changelog_entry():
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert goloss.__version__ == version
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert re.search(rf"^## \[{re.escape(version)}\] - \d{{4}}-\d{{2}}-\d{{2}}$", changelog, flags=re.M)
    sections = re.findall(r"^### (\w+)", changelog, flags=re.M)
    assert set(sections) <= {"Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"}, sections
