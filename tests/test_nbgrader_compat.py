"""nbgrader itself accepts the exercise sources (#18): ``nbgrader generate_assignment`` writes exactly
what ``ftlab exercises release`` writes, and ``nbgrader autograde`` gives full marks to each solved
source notebook and zero to each released one, as ``ftlab grade`` does on the same files.

nbgrader pins its own Jupyter stack, so it lives in an environment of its own, ``.venv-nbgrader``
(``make nbgrader-env``, which ``make test`` runs; or point ``FTLAB_NBGRADER_PYTHON`` at a Python that
has nbgrader). Without one this module is skipped, saying so. Its kernels import this checkout's
``ftlab`` (``PYTHONPATH``), so what nbgrader runs is what the rest of the suite tests.
"""

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ROOT / "exercises" / "source"
RELEASED = ROOT / "exercises" / "release"
NAMES = sorted(p.stem for p in SOURCES.glob("*.ipynb"))
ASSIGNMENT = "ftlab"
FIELDS = ("grade", "grade_id", "locked", "points", "solution")  # what nbgrader and the grader read


def _nbgrader_python() -> str | None:
    candidates = [os.environ.get("FTLAB_NBGRADER_PYTHON"), str(ROOT / ".venv-nbgrader" / "bin" / "python")]
    for python in filter(None, candidates):
        if Path(python).exists() and subprocess.run([python, "-c", "import nbgrader"], capture_output=True).returncode == 0:
            return python
    return None


def _env(python: str | None = None) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FTLAB_PROFILE": "cpu", "HF_HUB_OFFLINE": "1",
           "PYTHONDONTWRITEBYTECODE": "1"}
    if python:  # nbgrader runs its own commands (alembic) from its environment
        env["PATH"] = str(Path(python).parent) + os.pathsep + env.get("PATH", "")
    return env


def _nbgrader(python: str, course: Path, *args: str) -> None:
    proc = subprocess.run([python, "-m", "nbgrader", *args, "--force", "--ExecutePreprocessor.timeout=600"],
                          cwd=course, env=_env(python), capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, f"nbgrader {args[0]} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"


SCORES = """
import json, sys
from nbgrader.api import Gradebook
with Gradebook(sys.argv[1]) as gb:
    print(json.dumps({f"{s}/{nb}": [gb.find_submission_notebook(nb, sys.argv[2], s).score,
                                     gb.find_submission_notebook(nb, sys.argv[2], s).max_score]
                      for s in ("solved", "released") for nb in sys.argv[3:]}))
"""


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    python = _nbgrader_python()
    if python is None:
        pytest.skip("nbgrader is not installed: `make nbgrader-env` makes .venv-nbgrader (or set FTLAB_NBGRADER_PYTHON)")
    course = tmp_path_factory.mktemp("course")
    (course / "nbgrader_config.py").write_text(
        "c = get_config()\n"
        f"c.CourseDirectory.root = {str(course)!r}\n"
        f"c.CourseDirectory.db_url = 'sqlite:///{course / 'gradebook.db'}'\n"
        f"c.CourseDirectory.course_id = 'ftlab'\n", encoding="utf-8")
    (course / "source" / ASSIGNMENT).mkdir(parents=True)
    for name in NAMES:
        shutil.copy(SOURCES / f"{name}.ipynb", course / "source" / ASSIGNMENT / f"{name}.ipynb")
    _nbgrader(python, course, "generate_assignment", ASSIGNMENT)
    for student, folder in (("solved", SOURCES), ("released", RELEASED)):
        target = course / "submitted" / student / ASSIGNMENT
        target.mkdir(parents=True)
        for name in NAMES:
            shutil.copy(folder / f"{name}.ipynb", target / f"{name}.ipynb")
    _nbgrader(python, course, "autograde", ASSIGNMENT)
    out = subprocess.run([python, "-c", SCORES, f"sqlite:///{course / 'gradebook.db'}", ASSIGNMENT, *NAMES],
                         env=_env(python), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return course, json.loads(out.stdout.strip().splitlines()[-1])


def _cells(nb) -> list[tuple]:
    out = []
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        out.append((cell.cell_type, cell.source, tuple(meta.get(k) for k in FIELDS)))
    return out


@pytest.mark.parametrize("name", NAMES)
def test_generate_assignment_equals_ftlab_release(course, name):
    folder, _ = course
    theirs = nbformat.read(str(folder / "release" / ASSIGNMENT / f"{name}.ipynb"), as_version=4)
    ours = nbformat.read(str(RELEASED / f"{name}.ipynb"), as_version=4)
    assert len(_cells(theirs)) == len(_cells(ours))
    for i, (a, b) in enumerate(zip(_cells(theirs), _cells(ours))):
        assert a == b, f"{name}, cell {i}: nbgrader wrote {a!r}, ftlab release wrote {b!r}"


def _points(name: str) -> float:
    nb = nbformat.read(str(SOURCES / f"{name}.ipynb"), as_version=4)
    return sum(float(c.metadata["nbgrader"].get("points", 0)) for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade"))


@pytest.mark.parametrize("name", NAMES)
def test_autograde_full_marks_solved_zero_released(course, name):
    _, scores = course
    full = _points(name)
    assert scores[f"solved/{name}"] == [full, full], scores[f"solved/{name}"]
    assert scores[f"released/{name}"] == [0, full], scores[f"released/{name}"]


def _grade_flags() -> list[str]:
    """``ftlab grade`` runs submissions in a sandbox where it can; where it cannot, this test grades
    without one (the notebooks are ours) and says so in the CSV's isolation column."""
    help_text = subprocess.run([sys.executable, "-m", "ftlab.cli", "grade", "--help"], capture_output=True, text=True).stdout
    if "--no-sandbox" in help_text and shutil.which("bwrap") is None:
        return ["--no-sandbox"]
    return []


def test_ftlab_grade_agrees_with_nbgrader(course, tmp_path):
    _, scores = course
    for name in NAMES:
        folder = tmp_path / name
        folder.mkdir()
        shutil.copy(SOURCES / f"{name}.ipynb", folder / "solved.ipynb")
        shutil.copy(RELEASED / f"{name}.ipynb", folder / "released.ipynb")
        out = tmp_path / f"{name}.csv"
        proc = subprocess.run([sys.executable, "-m", "ftlab.cli", "grade", str(folder), "--exercise", name, "--out", str(out),
                               "--source", str(SOURCES), "--jobs", "2", *_grade_flags()],
                              capture_output=True, text=True, timeout=1200, env=_env())
        assert proc.returncode == 0, proc.stderr[-2000:]
        with open(out, newline="", encoding="utf-8") as f:
            rows = {row["file"]: row for row in csv.DictReader(f)}
        for student in ("solved", "released"):
            row = rows[f"{student}.ipynb"]
            assert row["status"] == "ok", (name, row)
            assert float(row["total"]) == scores[f"{student}/{name}"][0], (name, student, row, scores[f"{student}/{name}"])
