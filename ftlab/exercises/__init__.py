"""Graded exercises: student self-checks (``ftlab.check("q1")``) and making student versions.

An exercise source notebook marks its cells the way nbgrader does (``metadata.nbgrader``:
``grade_id``, ``points``, ``solution``, ``grade``, ``locked``). Answer cells hold the solution
between ``### BEGIN SOLUTION`` and ``### END SOLUTION``; test cells call ``ftlab.check`` (the public
checks, in ``ftlab.exercises.checks``) and may hold instructor-only tests between
``### BEGIN HIDDEN TESTS`` and ``### END HIDDEN TESTS``. ``release`` writes the student version.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from ftlab.exercises.checks import CHECKS, Check

_current: dict[str, str] = {"exercise": ""}

STUB = "# YOUR CODE HERE\nraise NotImplementedError()"
_SOLUTION = re.compile(r"^([ \t]*)### BEGIN SOLUTION[^\n]*\n.*?^[ \t]*### END SOLUTION[^\n]*(\n|$)", re.S | re.M)
_HIDDEN = re.compile(r"^[ \t]*### BEGIN HIDDEN TESTS[^\n]*\n.*?^[ \t]*### END HIDDEN TESTS[^\n]*(\n|$)", re.S | re.M)


class UnknownExerciseError(ValueError):
    pass


def start(exercise: str) -> None:
    """Called by an exercise's first cell: later ``ftlab.check("q1")`` calls check this exercise."""
    if exercise not in CHECKS:
        raise UnknownExerciseError(f"No exercise {exercise!r}. Exercises: {', '.join(sorted(CHECKS))}.")
    _current["exercise"] = exercise


class _Namespace(dict):
    """The notebook's names; a missing one reads like Python's own NameError."""

    def __missing__(self, key):
        raise NameError(f"name {key!r} is not defined")


def run_checks(exercise: str, question: str, namespace: dict) -> tuple[int, int, list[str]]:
    """Run one question's public checks against ``namespace``: ``(passed, total, messages)``."""
    checks: list[Check] = CHECKS.get(exercise, {}).get(question, [])
    if not hasattr(type(namespace), "__missing__"):  # the grader passes its own lazy namespace as it is
        namespace = _Namespace(namespace)
    passed, messages = 0, []
    for c in checks:
        try:
            c.fn(namespace)
            passed += 1
        except NotImplementedError:
            messages.append(f"{question} is not answered yet: replace `raise NotImplementedError()` in its answer "
                            "cell with your code, run that cell, then this one.")
            break
        except NameError as err:
            messages.append(f"{c.name}: {err}. Run the answer cell above first (Shift+Enter).")
            break
        except Exception as err:  # a check reports what went wrong, it never crashes the notebook
            detail = f" ({type(err).__name__}: {err})" if str(err) else f" ({type(err).__name__})"
            messages.append(f"{c.name} failed{detail}. Hint: {c.hint}")
    return passed, len(checks), messages


def check(question: str, strict: bool = False, _namespace: dict | None = None) -> bool:
    """Run ``question``'s public checks on the code in this notebook and print a friendly verdict.

    Returns True when all pass. ``strict=True`` raises ``AssertionError`` on a failure (graders use it).
    """
    exercise = _current["exercise"]
    if not exercise:
        raise UnknownExerciseError("Run the exercise's first cell (it calls ftlab.exercises.start) before checking.")
    if question not in CHECKS[exercise]:
        raise UnknownExerciseError(f"{exercise} has no question {question!r}; it has {', '.join(CHECKS[exercise])}.")
    namespace = _namespace if _namespace is not None else sys._getframe(1).f_globals
    passed, total, messages = run_checks(exercise, question, namespace)
    if passed == total:
        print(f"✓ {question}: passed ({total} public check{'s' if total != 1 else ''}).")
        return True
    print(f"✗ {question}: {passed} of {total} public checks passed.")
    for m in messages:
        print("  " + m)
    if strict:
        raise AssertionError(f"{question}: " + " ".join(messages))
    return False


def without_solutions(source: str) -> str:
    """An answer cell's code with each solution region replaced by the stub, at the region's indentation."""
    return _SOLUTION.sub(lambda m: "\n".join(m.group(1) + line for line in STUB.split("\n")) + m.group(2), source)


def _cells_for_students(nb) -> None:
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "code":
            if meta.get("solution"):
                cell.source = without_solutions(cell.source)
            cell.source = _HIDDEN.sub("", cell.source).rstrip("\n")
            cell.outputs = []
            cell.execution_count = None
        cell.metadata.pop("execution", None)
    nb.metadata.pop("widgets", None)


def student_version(source_path: str | Path):
    """The student notebook for one source: solutions replaced by a stub that raises
    ``NotImplementedError``, hidden tests removed, outputs cleared."""
    import nbformat

    nb = nbformat.read(str(source_path), as_version=4)
    _cells_for_students(nb)
    return nb


def release(source_dir: str | Path, out_dir: str | Path) -> list[Path]:
    """Write the student version of every ``*.ipynb`` in ``source_dir`` to ``out_dir``."""
    import nbformat

    source_dir, out_dir = Path(source_dir), Path(out_dir)
    sources = sorted(source_dir.glob("*.ipynb"))
    if not sources:
        raise FileNotFoundError(f"No exercise notebooks (*.ipynb) in {source_dir}.")
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for src in sources:
        target = out_dir / src.name
        target.write_text(nbformat.writes(student_version(src)) + "\n", encoding="utf-8")
        written.append(target)
    return written
