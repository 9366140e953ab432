"""Each lesson's checks must catch a lesson that stopped teaching.

Every lesson is executed under a sabotage that breaks what it teaches, and must then fail one of its
**check cells** with an ``AssertionError`` (not an import error, a crash elsewhere, or a timeout):

* ``no_learning`` (lessons 2-6): ``tests/sabotage/no_learning/sitecustomize.py`` on the kernel's
  ``PYTHONPATH`` makes every optimizer step leave the weights unchanged;
* ``wrong_data`` (lessons 2-6): ``tests/sabotage/wrong_data/sitecustomize.py`` makes every TRL trainer
  train on its data with each answer paired with another row's question (training runs, on wrong data);
* ``chat_is_base`` (lesson 1): ``FTLAB_CHAT_MODEL=tiny-base``, the "tuned" model is the base model.

A check cell is a code cell whose first line starts with ``# CHECK`` (the rule every lesson follows).
Execution stops at the first error, so a sabotaged lesson costs about as much as the lesson up to its
checks. A control runs lesson 1 unsabotaged through the same harness and expects it to reach the end.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
SABOTAGE = Path(__file__).resolve().parent / "sabotage"
CELL_TIMEOUT = 600


def is_check_cell(cell) -> bool:
    """A check cell: a code cell whose first non-blank line starts with ``# CHECK``."""
    lines = [l for l in cell.source.splitlines() if l.strip()]
    return cell.cell_type == "code" and bool(lines) and lines[0].lstrip().startswith("# CHECK")


@dataclass
class Outcome:
    cell_index: int | None  # the cell that raised, None if the notebook ran to the end
    ename: str = ""
    evalue: str = ""
    failed_lines: tuple[str, ...] = ()  # the source line(s) the traceback points at
    is_check: bool = False

    def describe(self) -> str:
        if self.cell_index is None:
            return "ran to the end, every check passed"
        where = "check cell" if self.is_check else "NON-check cell"
        return f"{self.ename} in {where} {self.cell_index}: {' | '.join(self.failed_lines) or self.evalue}"


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _failed_lines(traceback: list[str]) -> tuple[str, ...]:
    """The lines IPython marks with an arrow (``----> 3 assert ...``) in the notebook cell's frame."""
    text = _ANSI.sub("", "\n".join(traceback))
    return tuple(re.sub(r"^-*>\s*\d+\s*", "", l).strip() for l in text.splitlines() if re.match(r"^-+>\s*\d+", l))


def run_lesson(notebook: Path, env_changes: dict[str, str], preamble: str = "") -> Outcome:
    """Execute ``notebook`` cell by cell in a fresh kernel with ``env_changes``; stop at the first error.

    ``preamble`` runs first in the kernel (e.g. an assertion that the sabotage is active)."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(notebook, as_version=4)
    if preamble:
        nb.cells.insert(0, nbformat.v4.new_code_cell(preamble))
    env = {**os.environ, **env_changes}
    env.setdefault("FTLAB_PROFILE", "cpu")
    client = NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3",
                            resources={"metadata": {"path": str(notebook.parent)}})
    with client.setup_kernel(env=env, cwd=str(notebook.parent)):
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            try:
                client.execute_cell(cell, index)
            except CellExecutionError as error:
                lesson_index = index - (1 if preamble else 0)
                return Outcome(lesson_index, error.ename, error.evalue, _failed_lines(error.traceback.splitlines()),
                               is_check_cell(cell))
    return Outcome(None)


def _pythonpath(*folders: Path) -> str:
    return os.pathsep.join([str(f) for f in folders] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])


NO_LEARNING = {"PYTHONPATH": _pythonpath(SABOTAGE / "no_learning", ROOT)}
NO_LEARNING_ACTIVE = "import torch\nassert getattr(torch.optim, 'FTLAB_SABOTAGE', None) == 'no_learning', 'sabotage not loaded'"
WRONG_DATA = {"PYTHONPATH": _pythonpath(SABOTAGE / "wrong_data", ROOT)}
WRONG_DATA_ACTIVE = "import sys\nassert getattr(sys, 'FTLAB_SABOTAGE', None) == 'wrong_data', 'sabotage not loaded'"
CHAT_IS_BASE = {"FTLAB_CHAT_MODEL": "tiny-base", "PYTHONPATH": _pythonpath(ROOT)}


def _lesson(prefix: str) -> Path:
    found = sorted(NOTEBOOKS.glob(f"{prefix}_*.ipynb"))
    assert len(found) == 1, f"expected one notebooks/{prefix}_*.ipynb, found {found}"
    return found[0]


def _assert_caught(outcome: Outcome) -> None:
    print(outcome.describe())
    assert outcome.cell_index is not None, "the sabotaged lesson passed all its checks: they cannot catch it"
    assert outcome.ename == "AssertionError" and outcome.is_check, (
        "the sabotaged lesson failed, but not in a check: " + outcome.describe())


def test_every_lesson_has_check_cells():
    for notebook in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")):
        cells = nbformat.read(notebook, as_version=4).cells
        assert any(is_check_cell(c) for c in cells), f"{notebook.name} has no cell starting with '# CHECK'"


SABOTAGED_LESSONS = ["02", "03", "04", "05", "06"]


@pytest.mark.parametrize("prefix", SABOTAGED_LESSONS)
def test_no_learning_fails_a_check(prefix):
    _assert_caught(run_lesson(_lesson(prefix), NO_LEARNING, preamble=NO_LEARNING_ACTIVE))


@pytest.mark.parametrize("prefix", SABOTAGED_LESSONS)
def test_wrong_data_fails_a_check(prefix):
    _assert_caught(run_lesson(_lesson(prefix), WRONG_DATA, preamble=WRONG_DATA_ACTIVE))


def test_wrong_data_sabotage_repairs_every_answer_to_another_question():
    """Under the sabotage a TRL trainer sees each question with another row's answer; the rows and turns stay."""
    code = textwrap.dedent("""
        import sys
        from datasets import Dataset
        from trl import SFTTrainer
        from sitecustomize import mispair
        rows = [{"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]}
                for i in range(50)]
        out = mispair(Dataset.from_list(rows)).to_list()
        assert SFTTrainer.__init__._ftlab_sabotage
        assert len(out) == 50 and all(r["messages"][0]["content"] == f"q{i}" for i, r in enumerate(out))
        answers = [r["messages"][1]["content"] for r in out]
        assert sorted(answers) == sorted(f"a{i}" for i in range(50))
        print("OWN", sum(a == f"a{i}" for i, a in enumerate(answers)))
    """)
    env = {**os.environ, "PYTHONPATH": _pythonpath(SABOTAGE / "wrong_data", ROOT)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "OWN 0" in out.stdout


def test_lesson1_with_base_as_chat_model_fails_a_check():
    preamble = "import os\nassert os.environ['FTLAB_CHAT_MODEL'] == 'tiny-base'"
    _assert_caught(run_lesson(_lesson("01"), CHAT_IS_BASE, preamble=preamble))


def test_control_unsabotaged_lesson1_passes_through_the_same_harness():
    """The harness can tell a passing lesson from a failing one (not 'always fails')."""
    outcome = run_lesson(_lesson("01"), {"PYTHONPATH": _pythonpath(ROOT)})
    assert outcome.cell_index is None, outcome.describe()


_WEIGHTS_MOVE = textwrap.dedent("""
    import ftlab, torch
    from ftlab.training import train_sft
    from ftlab.world import World
    profile = ftlab.setup("cpu")
    model, tok = ftlab.load_model(profile.base_model, profile, for_training=True)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    data = World(seed=0).instructions()["train"].select(range(32))
    run = train_sft(model, tok, data, profile, assistant_only_loss=True, max_steps=3, quiet=True)
    moved = sum(not torch.equal(before[n], p.detach()) for n, p in run.model.named_parameters())
    print("MOVED", moved, "OF", len(before), "OPTIMIZER", type(run.trainer.optimizer.optimizer).__name__)
""")


@pytest.mark.parametrize("sabotaged", [True, False], ids=["no_learning", "control"])
def test_no_learning_sabotage_freezes_trl_training(sabotaged):
    """Under the sabotage a real TRL ``SFTTrainer`` run changes no weight; without it, weights move."""
    folders = (SABOTAGE / "no_learning", ROOT) if sabotaged else (ROOT,)
    env = {**os.environ, "PYTHONPATH": _pythonpath(*folders), "FTLAB_PROFILE": "cpu"}
    out = subprocess.run([sys.executable, "-c", _WEIGHTS_MOVE], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    moved, total, optimizer = re.search(r"MOVED (\d+) OF (\d+) OPTIMIZER (\w+)", out.stdout).groups()
    print(f"{moved} of {total} parameter tensors moved ({optimizer})")
    assert optimizer == "AdamW"
    assert (int(moved) == 0) if sabotaged else (int(moved) == int(total))
