"""Sphinx configuration of the goloss docs.

Build (from the repository root, after ``pip install -e ".[docs]"``)::

    python -m sphinx -W --keep-going -b html docs docs/_build/html

Nothing here reaches the network: no intersphinx, no remote images.
"""

import importlib.util

import goloss

project = "goloss"
author = "the goloss authors"
copyright = "the goloss authors; Apache-2.0"
release = goloss.__version__
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
]

source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

# MyST: anchors for "page.md#a-heading" links, $...$ maths and ::: fences.
myst_enable_extensions = ["colon_fence", "dollarmath"]
myst_heading_anchors = 3

# autodoc + napoleon: Google-style docstrings, signatures as written in the code.
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_ivar = True  # "Attributes:" as fields, not as separate (duplicate) entries
napoleon_use_rtype = False  # "Returns: x: text" reads as one line, not a separate type
napoleon_custom_sections = ["Shape"]
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
add_module_names = True


def _missing(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is None
    except (ImportError, ValueError):
        return True


# The integrations import their framework at import time. The docs extra installs neither: where
# one is missing, autodoc reads its adapter against a stand-in (the signatures then show as
# ``(*args, **kwargs)``); with the framework installed (the test extra) they are the real ones.
autodoc_mock_imports = [name for name in ("skorch", "lightning") if _missing(name)]

# MathJax is loaded by the reader's browser from its CDN when a page with maths is opened;
# the build itself never fetches it.

html_theme = "furo"
html_title = f"goloss {release}"
html_static_path: list = []
