"""Results pages: a benchmark's printed tables as a Markdown page under ``docs/``, stamped with
the commit and the machine they were measured on (``--markdown PATH`` of the benchmarks)."""

from __future__ import annotations

import contextlib
import datetime
import io
import os
import pathlib
import platform
import subprocess
import sys
from collections.abc import Iterator

import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]


def commit() -> str:
    """The short commit of this checkout, with ``+ uncommitted changes`` when ``goloss/`` or
    ``benchmarks/`` differ from it (``unknown`` outside git)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "goloss", "benchmarks"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" + uncommitted changes" if dirty else "")


def stamp() -> str:
    """One line: commit, date, machine, Python and torch versions."""
    machine = f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs"
    if torch.cuda.is_available():
        machine += f", {torch.cuda.get_device_name()}"
    return (f"Measured at commit `{commit()}` on {datetime.date.today().isoformat()}: {machine}, "
            f"Python {platform.python_version()}, torch {torch.__version__}, {torch.get_num_threads()} threads.")


@contextlib.contextmanager
def markdown_page(path: str | None, title: str, command: str) -> Iterator[None]:
    """Print as usual; with a ``path``, also write what was printed as a Markdown page (title,
    stamp, the command, the output in a text block)."""
    if path is None:
        yield
        return
    captured = io.StringIO()

    class Tee(io.TextIOBase):
        def write(self, text: str) -> int:
            captured.write(text)
            return sys.__stdout__.write(text) if sys.__stdout__ else len(text)

    with contextlib.redirect_stdout(Tee()):
        yield
    page = (f"# {title}\n\n{stamp()}\n\nCommand: `{command}`\n\n```text\n{captured.getvalue().rstrip()}\n```\n")
    pathlib.Path(path).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(path).write_text(page)
    print(f"wrote {path}")
