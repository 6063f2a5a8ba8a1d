"""Every notebook in notebooks/ runs from top to bottom without a cell error.

The notebooks are executed once per test session, by the documentation build that renders them
(``tests/_docs_build.py``: myst-nb runs each one in a fresh kernel, in ``docs/notebooks/``, and
fails the build on a cell error); these tests read the executed notebooks it writes.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from _docs_build import NOTEBOOKS, build_docs

PATHS = sorted(NOTEBOOKS.glob("*.ipynb"))


def test_there_are_notebooks():
    assert PATHS, f"no notebooks in {NOTEBOOKS}"


@pytest.mark.parametrize("path", PATHS, ids=[p.name for p in PATHS])
def test_notebook_runs(path: Path):
    build = build_docs()
    executed = build.executed / "notebooks" / path.name
    assert executed.is_file(), f"{path.name} was not executed by the docs build:\n{build.log}"
    nb = nbformat.read(executed, as_version=4)
    source = nbformat.read(path, as_version=4)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    # the executed copy is this notebook (not a stale one), and every code cell ran, in order
    assert [c.source for c in code] == [c.source for c in source.cells if c.cell_type == "code"], (
        f"the docs build executed another version of {path.name}"
    )
    assert [c.get("execution_count") for c in code] == list(range(1, len(code) + 1)), (
        f"{path.name}: not every code cell was executed\n{build.log}"
    )
    errors = [
        output
        for cell in code
        for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    ]
    assert not errors, errors
