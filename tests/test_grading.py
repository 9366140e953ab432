"""Exercises and the grader: release is reproducible, sources score full marks, released notebooks
score 0 without crashing, and every kind of bad or hostile submission gets its row and status."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).parent.parent
SOURCES = ROOT / "exercises" / "source"
RELEASED = ROOT / "exercises" / "release"


def _sandbox_args() -> list[str]:
    """Where bubblewrap cannot run (macOS, a container without user namespaces) these tests grade without
    it, so the grading itself is still tested; CI sets FTLAB_REQUIRE_SANDBOX and has it."""
    from ftlab.sandbox import unavailable

    return ["--no-sandbox"] if unavailable() and not os.environ.get("FTLAB_REQUIRE_SANDBOX") else []


def _grade(folder, exercise, out, *extra):
    proc = subprocess.run([sys.executable, "-m", "ftlab.cli", "grade", str(folder), "--exercise", exercise,
                           "--out", str(out), "--source", str(SOURCES), *extra, *_sandbox_args()],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    with open(out, newline="", encoding="utf-8") as f:
        return {row["file"]: row for row in csv.DictReader(f)}


def test_released_notebooks_are_exactly_what_release_makes(tmp_path):
    from ftlab.exercises import release

    written = release(SOURCES, tmp_path)
    assert sorted(p.name for p in written) == sorted(p.name for p in RELEASED.glob("*.ipynb")) and len(written) == 5
    for path in written:
        assert path.read_bytes() == (RELEASED / path.name).read_bytes(), f"{path.name}: run `ftlab exercises release`"


def test_released_notebooks_hide_solutions_and_hidden_tests():
    for path in RELEASED.glob("*.ipynb"):
        text = path.read_text(encoding="utf-8")
        nb = nbformat.read(str(path), as_version=4)
        assert "BEGIN SOLUTION" not in text and "HIDDEN TESTS" not in text
        assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")
        answers = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution")]
        assert 3 <= len(answers) and all("raise NotImplementedError()" in c.source for c in answers)
        graded = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")]
        assert 3 <= len(graded) <= 5 and all("ftlab.check(" in c.source for c in graded)


def test_self_check_reports_pass_fail_and_unanswered(capsys):
    import torch

    import ftlab.exercises as ex

    ex.start("04_rlhf")
    good = {"bradley_terry_loss": lambda c, r: -torch.nn.functional.logsigmoid(c - r).mean()}
    assert ex.check("q1", _namespace=good)
    assert "✓ q1" in capsys.readouterr().out
    wrong = {"bradley_terry_loss": lambda c, r: (c - r).mean()}
    assert not ex.check("q1", _namespace=wrong)
    assert "Hint" in capsys.readouterr().out

    def stub(c, r):
        raise NotImplementedError()

    assert not ex.check("q1", _namespace={"bradley_terry_loss": stub})
    assert "not answered yet" in capsys.readouterr().out
    assert not ex.check("q1", _namespace={})
    assert "Run the answer cell" in capsys.readouterr().out
    with pytest.raises(AssertionError):
        ex.check("q1", strict=True, _namespace=wrong)
    with pytest.raises(ex.UnknownExerciseError, match="has no question"):
        ex.check("q9", _namespace=good)


@pytest.mark.whole_course
def test_every_source_scores_full_marks_and_every_released_notebook_zero(tmp_path):
    import shutil

    from ftlab.grading import find_source, questions

    for source in sorted(SOURCES.glob("*.ipynb")):
        folder = tmp_path / source.stem
        folder.mkdir()
        shutil.copy(source, folder / "solved.ipynb")
        shutil.copy(RELEASED / source.name, folder / "released.ipynb")
        rows = _grade(folder, source.stem, tmp_path / f"{source.stem}.csv", "--jobs", "2")
        full = sum(q.points for q in questions(nbformat.read(str(find_source(source.stem, SOURCES)), as_version=4)))
        assert rows["solved.ipynb"]["status"] == "ok" and float(rows["solved.ipynb"]["total"]) == full, rows["solved.ipynb"]
        assert rows["released.ipynb"]["status"] == "ok" and float(rows["released.ipynb"]["total"]) == 0, rows["released.ipynb"]


def _with_answer(nb, grade_id, code):
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == grade_id:
            cell.source = code
    return nb


SOLVED_Q1 = "import torch\n\ndef bradley_terry_loss(r_chosen, r_rejected):\n    return -torch.nn.functional.logsigmoid(r_chosen - r_rejected).mean()"
WRONG_Q1 = "def bradley_terry_loss(r_chosen, r_rejected):\n    return (r_chosen - r_rejected).mean()"

# file name -> (what q1's answer cell holds, expected status). Patching the checking machinery in the
# kernel changes nothing (the tests run in the grader), and writing outside or starting a shell stays
# inside the sandbox; tests/test_grading_hostile.py has the attacks proper.
HOSTILE = {
    "syntax.ipynb": ("def bradley_terry_loss(:\n    pass", "error"),
    "exception.ipynb": ("raise ValueError('boom')", "error"),
    "loop.ipynb": ("while True:\n    pass", "timeout"),
    "exit.ipynb": ("import os\nos._exit(3)", "kernel-died"),
    "segfault.ipynb": ("import faulthandler\nfaulthandler._sigsegv()", "kernel-died"),
    "memory.ipynb": ("hog = bytearray(20 * 2**30)", "memory-limit"),
    "output.ipynb": (SOLVED_Q1 + "\nfor _ in range(2000):\n    print('x' * 10000)", "ok"),
    "fake_check.ipynb": (WRONG_Q1 + "\nimport ftlab\nftlab.check = lambda *a, **k: True", "ok"),
    "fake_allclose.ipynb": (WRONG_Q1 + "\nimport torch\ntorch.allclose = lambda *a, **k: True", "ok"),
    "fake_builtins.ipynb": (WRONG_Q1 + "\nimport builtins\nbuiltins.abs = lambda x: 0", "ok"),
    "fake_audit.ipynb": (WRONG_Q1 + "\nimport sys\nsys.audit = lambda *a: None", "ok"),
    "fake_cells.ipynb": (WRONG_Q1 + "\nip = get_ipython()\nrun = ip.run_cell\nip.run_cell = lambda *a, **k: run('pass')",
                         "ok"),
    "write_outside.ipynb": (SOLVED_Q1 + "\nopen('/tmp/ftlab-grader-escape.txt', 'w').write('x')", "error"),  # refused: PermissionError
    "shell.ipynb": (SOLVED_Q1 + "\nimport os\nos.system('touch /tmp/ftlab-grader-escape.txt')", "ok"),
    "Zoë 学生 🎓.ipynb": (SOLVED_Q1, "ok"),
}


@pytest.mark.whole_course
def test_hostile_submissions_each_get_their_row(tmp_path):
    source = nbformat.read(str(SOURCES / "04_rlhf.ipynb"), as_version=4)
    folder = tmp_path / "submissions"
    folder.mkdir()
    for name, (code, _) in HOSTILE.items():
        nbformat.write(_with_answer(source, "q1_answer", code), str(folder / name))
    (folder / "not_json.ipynb").write_text("{this is not json", encoding="utf-8")
    (folder / "essay.txt").write_text("I did the exercise in my head.", encoding="utf-8")
    (folder / "other.ipynb").write_text(json.dumps({"cells": "nope"}), encoding="utf-8")
    cells = source.cells
    answer_q2 = next(i for i, c in enumerate(cells) if c.metadata.get("nbgrader", {}).get("grade_id") == "q2_answer")
    deleted = nbformat.from_dict(json.loads(json.dumps(source)))
    del deleted.cells[answer_q2]
    nbformat.write(deleted, str(folder / "deleted.ipynb"))
    reordered = nbformat.from_dict(json.loads(json.dumps(source)))
    reordered.cells = reordered.cells[::-1]
    nbformat.write(reordered, str(folder / "reordered.ipynb"))
    duplicated = _with_answer(source, "q1_answer", SOLVED_Q1)
    wrong_copy = nbformat.from_dict(json.loads(json.dumps(_with_answer(source, "q1_answer", WRONG_Q1).cells[2])))
    duplicated.cells.insert(1, wrong_copy)  # an old wrong attempt above; the last copy is graded
    nbformat.write(duplicated, str(folder / "duplicated.ipynb"))

    out = tmp_path / "grades.csv"
    rows = _grade(folder, "04", out, "--jobs", "2", "--timeout", "90")  # the whole notebook's budget
    expected = {name: status for name, (_, status) in HOSTILE.items()}
    expected.update({"not_json.ipynb": "invalid-notebook", "essay.txt": "invalid-notebook",
                     "other.ipynb": "invalid-notebook", "deleted.ipynb": "ok", "reordered.ipynb": "ok",
                     "duplicated.ipynb": "ok"})
    assert set(rows) == set(expected), set(rows) ^ set(expected)
    for name, status in expected.items():
        assert rows[name]["status"] == status, (name, rows[name])
    assert not Path("/tmp/ftlab-grader-escape.txt").exists()
    for name in ("fake_check.ipynb", "fake_allclose.ipynb", "fake_builtins.ipynb", "fake_audit.ipynb"):
        assert rows[name]["q1"] == "0" and float(rows[name]["total"]) == 10, rows[name]  # q1 wrong (2 points), the others right
    assert float(rows["fake_cells.ipynb"]["total"]) == 0  # its later answer cells no longer run at all
    assert float(rows["write_outside.ipynb"]["total"]) == 12 and float(rows["shell.ipynb"]["total"]) == 12
    assert float(rows["Zoë 学生 🎓.ipynb"]["total"]) == 12 and float(rows["reordered.ipynb"]["total"]) == 12
    assert float(rows["duplicated.ipynb"]["total"]) == 12
    assert rows["deleted.ipynb"]["q2"] == "0" and float(rows["deleted.ipynb"]["total"]) == 9
    assert float(rows["syntax.ipynb"]["total"]) == 10 and rows["syntax.ipynb"]["q1"] == "0"  # the others still graded
    assert "dropped" in rows["output.ipynb"]["detail"] and float(rows["output.ipynb"]["total"]) == 12
    feedback = list((tmp_path / "grades-feedback").glob("*.md"))
    assert len(feedback) == len(expected)
    # a second run skips everything already graded; --force regrades
    again = subprocess.run([sys.executable, "-m", "ftlab.cli", "grade", str(folder), "--exercise", "04", "--out", str(out),
                            "--source", str(SOURCES), *_sandbox_args()], capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "skipped 21" in again.stdout, again.stdout + again.stderr
    assert len(_grade(folder, "04", out)) == len(expected)


def test_an_empty_folder_gives_a_header_and_exit_0(tmp_path):
    (tmp_path / "empty").mkdir()
    rows = _grade(tmp_path / "empty", "01", tmp_path / "g.csv")
    assert rows == {} and (tmp_path / "g.csv").read_text().startswith("file,exercise,status,q1")


def _grade_cli(*args, env=None):
    sandbox = [] if env is not None or "--no-sandbox" in args else _sandbox_args()
    return subprocess.run([sys.executable, "-m", "ftlab.cli", "grade", *map(str, args), "--source", str(SOURCES),
                           *sandbox],
                          capture_output=True, text=True, timeout=300, env=env)


def _one_line_error(proc, *words):
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert all(w in lines[0] for w in words), lines[0]


def test_the_csv_keeps_one_exercise_and_bad_outs_are_one_line_errors(tmp_path):
    subs = tmp_path / "subs"
    subs.mkdir()
    (subs / "broken.ipynb").write_text("{not json", encoding="utf-8")  # graded without a kernel: quick
    out = tmp_path / "g.csv"
    out.write_text("")  # an existing empty file gets its header
    assert _grade_cli(subs, "--exercise", "01", "--out", out).returncode == 0
    lines = out.read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("file,exercise,status,q1") and lines[1].startswith("broken.ipynb,01_base_vs_tuned,invalid-notebook")
    before = out.read_bytes()
    for force in ([], ["--force"]):  # the same columns (q1..q3), another exercise: refused, even with --force
        _one_line_error(_grade_cli(subs, "--exercise", "02", "--out", out, *force), "01_base_vs_tuned", "02_sft_formatting")
    assert out.read_bytes() == before
    _one_line_error(_grade_cli(subs, "--exercise", "01", "--out", tmp_path), "is a folder")
    (tmp_path / "notes.csv").write_text("name,grade\nA,1\n")
    _one_line_error(_grade_cli(subs, "--exercise", "01", "--out", tmp_path / "notes.csv"), "not a ftlab grades CSV")
    _one_line_error(_grade_cli(subs, "--exercise", "01", "--out", "/proc/ftlab/g.csv"), "cannot write")
    recipe = subprocess.run([sys.executable, "-m", "ftlab.cli", "export-recipe", "sft", str(out)], capture_output=True,
                            text=True, timeout=120)
    _one_line_error(recipe, "it is a file")
    assert out.read_bytes() == before


def test_without_a_sandbox_grading_refuses_unless_told_and_then_every_row_says_so(tmp_path):
    subs = tmp_path / "subs"
    subs.mkdir()
    (subs / "broken.ipynb").write_text("{not json", encoding="utf-8")
    no_bwrap = dict(os.environ, PATH=str(tmp_path))  # bwrap cannot be found
    _one_line_error(_grade_cli(subs, "--exercise", "04", "--out", tmp_path / "g.csv", env=no_bwrap),
                    "no sandbox", "bubblewrap", "--no-sandbox")
    proc = _grade_cli(subs, "--exercise", "04", "--out", tmp_path / "g.csv", "--no-sandbox", env=no_bwrap)
    assert proc.returncode == 0, proc.stderr
    with open(tmp_path / "g.csv", newline="", encoding="utf-8") as f:
        row = next(csv.DictReader(f))
    assert row["isolation"] == "none" and "WITHOUT a sandbox" in row["detail"], row
    assert "WITHOUT a sandbox" in next((tmp_path / "g-feedback").glob("*.md")).read_text(encoding="utf-8")
    assert "WITHOUT a sandbox" in proc.stdout


def test_tests_may_read_only_the_names_the_sources_answer_cells_define():
    from ftlab.grading import student_names

    names = {p.stem[:2]: student_names(nbformat.read(str(p), as_version=4)) for p in SOURCES.glob("*.ipynb")}
    assert {"chat_text", "is_correct", "accuracy", "base_acc", "chat_acc"} <= names["01"]
    assert {"LoRALinear", "lora_parameters", "trainable"} <= names["03"]
    assert not {"LoraConfig", "get_peft_model", "torch", "ftlab", "tok"} & names["03"]  # imported or set up
    assert "World" not in names["02"] and "generate" not in names["01"]  # imports are never the student's
