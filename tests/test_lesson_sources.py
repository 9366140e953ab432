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


def _unshown_tables(source: str) -> list[int]:
    """Lines where ``html_table(...)`` is a statement but not a cell's last one: its table is built and dropped."""
    import ast

    try:
        tree = ast.parse(source)
    except SyntaxError:  # IPython magics; no lesson uses them today
        return []
    last = tree.body[-1] if tree.body else None
    return [node.lineno for node in ast.walk(tree)
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)
            and getattr(node.value.func, "id", "") == "html_table" and node is not last]


def test_unshown_table_is_detected():
    assert _unshown_tables("html_table(rows)\nprint(1)") == [1]
    assert _unshown_tables("for r in rows:\n    html_table(r)") == [2]
    assert _unshown_tables("x = 1\nhtml_table(rows)") == []
    assert _unshown_tables("display(html_table(rows))\nprint(1)") == []


@pytest.mark.parametrize("ipynb", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_every_table_a_lesson_builds_is_shown(ipynb):
    """Only a cell's last expression is displayed: an ``html_table(...)`` anywhere else is silently lost."""
    notebook = jupytext.read(ipynb)
    lost = [(index, line) for index, cell in enumerate(notebook.cells) if cell.cell_type == "code"
            for line in _unshown_tables(cell.source)]
    assert not lost, (f"{ipynb.name}: html_table(...) built but never shown at (cell, line) {lost}; "
                      "wrap it in display(...) or make it the cell's last line")
