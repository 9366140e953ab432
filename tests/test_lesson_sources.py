"""Every lesson notebook has a paired jupytext source (``notebooks/NN_name.py``, percent format) with the same cells.

The ``.py`` is what maintainers edit and review; the ``.ipynb`` carries the outputs. If one is edited
without syncing the other (``jupytext --sync notebooks/NN_name.py``), this test fails. Outputs and
metadata are not compared.
"""

from pathlib import Path

import jupytext
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def _cells(notebook) -> list[tuple[str, str]]:
    return [(cell.cell_type, cell.source) for cell in notebook.cells]


def test_there_are_lessons():
    assert NOTEBOOKS, "no notebooks/*.ipynb found"


@pytest.mark.parametrize("ipynb", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_lesson_has_a_paired_source_in_sync(ipynb):
    source = ipynb.with_suffix(".py")
    assert source.is_file(), (f"{ipynb.name} has no paired source {source.name}: run "
                              f"jupytext --set-formats ipynb,py:percent notebooks/{ipynb.name}")
    notebook = jupytext.read(ipynb)
    formats = notebook.metadata.get("jupytext", {}).get("formats", "")
    assert "py:percent" in formats, f"{ipynb.name} is not paired with a percent-format .py (metadata: {formats!r})"
    paired = jupytext.read(source)
    mine, theirs = _cells(notebook), _cells(paired)
    hint = f"{ipynb.name} and {source.name} differ: edit the .py, then run jupytext --sync notebooks/{source.name}"
    assert len(mine) == len(theirs), f"{hint} ({len(mine)} cells vs {len(theirs)})"
    for index, (a, b) in enumerate(zip(mine, theirs)):
        assert a == b, f"{hint} (first difference in cell {index}: {a[1][:80]!r} vs {b[1][:80]!r})"
