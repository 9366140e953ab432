"""Opening the course on Colab: an "Open in Colab" badge and one set-up cell in every notebook.

``add_colab_cells(path, repo_path)`` puts both into a notebook (idempotent: running it again
changes nothing): the badge goes under the title of the first markdown cell, the set-up cell
becomes the first code cell. On Colab the set-up cell installs ftlab (which brings TRL, which Colab
lacks) beside Colab's own torch, transformers and ipywidgets, so no runtime restart is needed;
anywhere else it does nothing. ``ftlab colab`` applies it to the lessons and exercise sources.
"""

from __future__ import annotations

from pathlib import Path

import nbformat

# The repository the badges link to; also `[project.urls] Repository` in pyproject.toml (a test
# checks the two agree). Change both, then run `ftlab colab`, if the course lives elsewhere.
REPOSITORY = "https://github.com/ftlab-course/ftlab"
BRANCH = "main"
BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"
SETUP_MARKER = "# Set-up for Colab"

SETUP_CELL = f'''{SETUP_MARKER}: installs ftlab and TRL next to Colab's own torch, transformers and
# ipywidgets (nothing to restart). Anywhere else this cell does nothing: `make lab` installed it all.
import sys

if "google.colab" in sys.modules:
    import subprocess

    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet",
                    "ftlab @ git+{REPOSITORY}@{BRANCH}"], check=True)'''


def colab_url(repo_path: str) -> str:
    """The Colab address that opens ``repo_path`` (e.g. ``notebooks/01_base_vs_tuned.ipynb``)."""
    github = REPOSITORY.removeprefix("https://github.com/")
    return f"https://colab.research.google.com/github/{github}/blob/{BRANCH}/{repo_path}"


def badge(repo_path: str) -> str:
    return f"[![Open In Colab]({BADGE_IMAGE})]({colab_url(repo_path)})"


def _lines(cell) -> list[str]:
    return cell.source.split("\n")


def add_colab_cells(path: str | Path, repo_path: str, write: bool = True) -> bool:
    """Give the notebook at ``path`` its badge and set-up cell; returns True if that changes the file
    (``write=False``: only say whether it would).

    Exercise sources (cells with ``metadata.nbgrader``) get a locked, ungraded set-up cell, so the
    released student notebook and the grader keep it as it is.
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    nb = nbformat.reads(text, as_version=4)
    cells = nb.cells
    first_md = next((c for c in cells if c.cell_type == "markdown"), None)
    if first_md is None or not _lines(first_md)[0].startswith("# "):
        raise ValueError(f"{path}: the first markdown cell must start with the notebook's '# Title' line.")
    lines = [line for line in _lines(first_md) if "colab-badge.svg" not in line]
    while len(lines) > 1 and not lines[1].strip():  # the title, one blank line, the badge, one blank line
        lines.pop(1)
    first_md.source = "\n".join([lines[0], "", badge(repo_path), ""] + lines[1:])
    setup = next((c for c in cells if c.cell_type == "code" and _lines(c)[0].startswith(SETUP_MARKER)), None)
    if setup is None:
        setup = nbformat.v4.new_code_cell(SETUP_CELL)
        setup.id = "colab-setup"
        first_code = next((i for i, c in enumerate(cells) if c.cell_type == "code"), len(cells))
        cells.insert(first_code, setup)
    setup.source = SETUP_CELL
    if "nbgrader" in first_md.metadata:
        setup.metadata["nbgrader"] = {"grade": False, "grade_id": "colab-setup", "locked": True,
                                      "schema_version": 3, "solution": False, "task": False}
    new = nbformat.writes(nb) + "\n"
    if new != text and write:
        path.write_text(new, encoding="utf-8")
    return new != text
