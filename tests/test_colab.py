"""Every lesson and exercise opens on Colab from a badge and sets itself up with one cell."""

import json
import re
import subprocess
import sys
import tomllib
import types
from pathlib import Path

import pytest

from ftlab.cli import main
from ftlab.colab import REPOSITORY, SETUP_MARKER, add_colab_cells, colab_url

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb")) + sorted((ROOT / "exercises").glob("*/*.ipynb"))


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def _source(cell: dict) -> str:
    return "".join(cell["source"])


def test_badges_point_at_the_repository_in_pyproject():
    urls = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]
    assert urls["Repository"] == REPOSITORY
    assert colab_url("notebooks/x.ipynb") == f"https://colab.research.google.com/github/{REPOSITORY[19:]}/blob/main/notebooks/x.ipynb"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_notebook_has_title_badge_and_setup_cell(path):
    cells = _cells(path)
    title = _source(cells[0]).split("\n")
    assert cells[0]["cell_type"] == "markdown" and title[0].startswith("# ")
    target = f"notebooks/{path.name}" if path.parent.name == "notebooks" else f"exercises/release/{path.name}"
    assert f"]({colab_url(target)})" in title[2]  # title, blank line, badge
    code = [c for c in cells if c["cell_type"] == "code"]
    assert _source(code[0]).startswith(SETUP_MARKER) and sum(SETUP_MARKER in _source(c) for c in code) == 1
    if "nbgrader" in cells[0].get("metadata", {}):
        assert code[0]["metadata"]["nbgrader"]["locked"] and not code[0]["metadata"]["nbgrader"]["grade"]


def test_colab_check_passes_on_the_repository(capsys):
    assert main(["colab", "--root", str(ROOT), "--check"]) == 0, capsys.readouterr().out


def test_add_colab_cells_is_idempotent_and_wants_a_title(tmp_path):
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# A title\n\nSome text."),
                                         nbformat.v4.new_code_cell("x = 1")])
    path = tmp_path / "a.ipynb"
    nbformat.write(nb, path)
    untouched = path.read_text()
    assert add_colab_cells(path, "notebooks/a.ipynb", write=False) is True and path.read_text() == untouched
    assert add_colab_cells(path, "notebooks/a.ipynb") is True
    first = path.read_text()
    assert add_colab_cells(path, "notebooks/a.ipynb") is False and path.read_text() == first
    cells = _cells(path)
    assert [c["cell_type"] for c in cells] == ["markdown", "code", "code"]
    assert _source(cells[0]).startswith("# A title\n\n[![Open In Colab]") and _source(cells[0]).endswith("Some text.")
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("No title here")]), path)
    with pytest.raises(ValueError, match="'# Title'"):
        add_colab_cells(path, "notebooks/a.ipynb")


def _run_setup_cell(monkeypatch, on_colab: bool) -> list[list[str]]:
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: calls.append(cmd))
    if on_colab:
        monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    else:
        monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    setup = next(c for c in _cells(NOTEBOOKS[0]) if c["cell_type"] == "code")
    exec(_source(setup), {})
    return calls


def test_setup_cell_does_nothing_outside_colab(monkeypatch):
    assert _run_setup_cell(monkeypatch, on_colab=False) == []


def test_setup_cell_on_colab_installs_ftlab_and_leaves_colabs_stack_alone(monkeypatch):
    (cmd,) = _run_setup_cell(monkeypatch, on_colab=True)
    assert cmd[:4] == [sys.executable, "-m", "pip", "install"]
    packages = [a for a in cmd[4:] if not a.startswith("-")]
    assert packages == [f"ftlab @ git+{REPOSITORY}@main"]  # TRL comes as ftlab's dependency
    assert not any(re.search(r"torch|transformers|ipywidgets|--upgrade|-U\b|--force", a) for a in cmd)


def test_declared_ranges_admit_colabs_preinstalled_stack():
    """ftlab's requirements must already be met by Colab's versions, or pip would replace them.
    (Colab's datasets 4.0 is upgraded anyway: TRL, which Colab lacks, needs 4.7.)"""
    from packaging.requirements import Requirement

    colab = {"torch": "2.11.0", "transformers": "5.15.0", "peft": "0.20.0", "ipywidgets": "7.7.1"}
    requirements = [Requirement(r) for r in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]]
    for req in requirements:
        if req.name in colab:
            assert req.specifier.contains(colab[req.name]), f"{req} would replace Colab's {req.name} {colab[req.name]}"
