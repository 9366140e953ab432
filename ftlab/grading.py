"""``ftlab grade``: grade a folder of submitted exercise notebooks, one fresh guarded kernel each.

For every file in the folder the grader writes one CSV row (file, status, points per question,
total, detail) and a Markdown feedback file. How a submission is run:

* its notebook is rebuilt from the instructor's **source**: set-up and test cells always come from
  the source (hidden tests included); only the answer cells come from the submission, found by
  ``grade_id`` (the last one wins if a cell was duplicated; a deleted one counts as unanswered), so
  moved, deleted or duplicated cells do not break grading;
* it runs in its own process and kernel (``ftlab.grading_kernel``), in a temporary folder of its
  own, with a time limit and a memory limit, and guards installed before any student code;
* a question scores when its test cell ran to the end and reported the grader's secret nonce, and
  the checking machinery was still the original before and after every test.

Statuses: ``ok``, ``error`` (an answer cell raised), ``timeout``, ``memory-limit``, ``kernel-died``,
``invalid-notebook``, ``forbidden`` (tried to write outside its folder or start a process: refused),
``tampered`` (the checking machinery was changed: no points), ``grader-error`` (a bug of ours).

What it cannot prevent, running in-process with student code: code that searches memory for the
guard's own objects (through ``gc`` or ``ctypes``) and rewrites them, or that rewrites IPython's
cell execution to read later cells' code before the fingerprint check runs. For those, run the
grader inside a container or a VM without network; the CSV still gets its row.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

MAX_OUTPUT_BYTES = 2_000_000  # per submission; the rest of its output is dropped
STATUS_ORDER = ("tampered", "forbidden", "timeout", "kernel-died", "memory-limit", "error", "ok")


class GradingError(ValueError):
    """A mistake in how the grader was called (no such exercise, source missing): exit status 2."""


@dataclass
class Question:
    grade_id: str
    points: float


@dataclass
class Result:
    file: str
    status: str
    points: dict[str, float]
    detail: str = ""
    sha256: str = ""
    seconds: float = 0.0
    feedback: list[str] = field(default_factory=list)

    @property
    def total(self) -> float:
        return sum(self.points.values())


def find_source(exercise: str, source_dir: str | Path) -> Path:
    source_dir = Path(source_dir)
    sources = sorted(source_dir.glob("*.ipynb"))
    matches = [p for p in sources if p.stem == exercise] or [p for p in sources if p.stem.startswith(exercise)]
    if len(matches) != 1:
        names = ", ".join(p.stem for p in sources) or f"none in {source_dir}"
        raise GradingError(f"Exercise {exercise!r} {'is ambiguous' if matches else 'not found'}. Exercises: {names}. "
                           "Pass --source DIR if the instructor's sources are elsewhere.")
    return matches[0]


def questions(source_nb) -> list[Question]:
    return [Question(c.metadata["nbgrader"]["grade_id"], float(c.metadata["nbgrader"].get("points", 0)))
            for c in source_nb.cells if c.metadata.get("nbgrader", {}).get("grade")]


def _grade_id(cell) -> str | None:
    meta = cell.get("metadata", {})
    nbgrader = meta.get("nbgrader", {}) if isinstance(meta, dict) else {}
    gid = nbgrader.get("grade_id") if isinstance(nbgrader, dict) else None
    return gid if isinstance(gid, str) else (cell.get("id") if isinstance(cell.get("id"), str) else None)


def build_graded_notebook(source_nb, submission_nb, nonce: str):
    """The notebook that is run: the source's locked cells, the submission's answer cells, guard cells."""
    import nbformat

    from ftlab.exercises import without_solutions

    answers: dict[str, str] = {}
    for cell in submission_nb.get("cells", []):
        gid = _grade_id(cell)
        if cell.get("cell_type") == "code" and gid:
            source = cell.get("source", "")
            answers[gid] = "".join(source) if isinstance(source, list) else str(source)
    cells, missing = [], []
    for cell in source_nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type != "code":
            continue
        gid = meta.get("grade_id")
        if meta.get("solution"):
            if gid not in answers:
                missing.append(gid)
            cells.append(nbformat.v4.new_code_cell(answers.get(gid, without_solutions(cell.source)), metadata={"ftlab": {"answer": gid}}))
        elif meta.get("grade"):
            cells.append(nbformat.v4.new_code_cell(f'__import__("sys").audit("ftlab.grader.verify", "before {gid}")',
                                                   metadata={"ftlab": {"guard": gid}}))
            cells.append(nbformat.v4.new_code_cell(
                cell.source + f'\n__import__("sys").audit("ftlab.grader.passed", {gid!r}, {nonce!r})',
                metadata={"ftlab": {"test": gid}}))
        else:
            cells.append(nbformat.v4.new_code_cell(cell.source, metadata={"ftlab": {"setup": gid}}))
    cells.append(nbformat.v4.new_code_cell('__import__("sys").audit("ftlab.grader.verify", "end")',
                                           metadata={"ftlab": {"guard": "end"}}))
    nb = nbformat.v4.new_notebook(cells=cells, metadata=source_nb.metadata)
    return nb, missing


def _limited_client_class():
    from nbclient import NotebookClient

    class LimitedClient(NotebookClient):
        """Drops outputs past ``MAX_OUTPUT_BYTES`` so a print loop cannot exhaust the grader's memory."""

        output_bytes = 0
        truncated = False

        def output(self, outs, msg, display_id, cell_index):
            size = len(json.dumps(msg.get("content", {}), default=str))
            self.output_bytes += size
            if self.output_bytes > MAX_OUTPUT_BYTES:
                self.truncated = True
                return None
            return super().output(outs, msg, display_id, cell_index)

    return LimitedClient


def run_submission(path: Path, source: Path, timeout: float, memory_mb: int, threads: int) -> Result:
    """Grade one file (called in a worker process). Never raises: every outcome is a ``Result``."""
    import nbformat

    source_nb = nbformat.read(str(source), as_version=4)
    qs = questions(source_nb)
    zero = {q.grade_id: 0.0 for q in qs}
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
        submission = nbformat.reads(text, as_version=4)
        nbformat.validate(submission)
    except Exception as err:  # not UTF-8, not JSON, not a notebook: all the same to the grader
        kind = "not JSON" if isinstance(err, (json.JSONDecodeError, UnicodeDecodeError)) else "not a valid notebook"
        return Result(path.name, "invalid-notebook", zero, f"{kind}: {str(err).splitlines()[0][:200]}",
                      feedback=[f"Your file could not be read as a Jupyter notebook ({kind}). Submit the .ipynb file "
                                "saved by JupyterLab or Colab (File > Download > .ipynb)."])
    nonce = secrets.token_hex(16)
    graded, missing = build_graded_notebook(source_nb, submission, nonce)
    with tempfile.TemporaryDirectory(prefix="ftlab-grade-") as work_root:
        work, private, jupyter = (Path(work_root) / d for d in ("work", "private", "jupyter"))
        kernels = jupyter / "kernels"
        for d in (work, private, kernels / "ftlab-grader"):
            d.mkdir(parents=True)
        (private / "nonce").write_text(nonce)
        report = private / "report.jsonl"
        env = {"FTLAB_GRADER_ALLOW_WRITE": str(work), "FTLAB_GRADER_REPORT": str(report),
               "FTLAB_GRADER_NONCE_FILE": str(private / "nonce"),
               "FTLAB_GRADER_DENY_READ": os.pathsep.join([str(private), str(kernels), str(source.parent.resolve())]),
               "FTLAB_GRADER_MEMORY_MB": str(memory_mb), "HOME": str(work), "TMPDIR": str(work),
               "MPLCONFIGDIR": str(work / ".matplotlib"), "IPYTHONDIR": str(work / ".ipython"),
               "XDG_CACHE_HOME": str(work / ".cache"), "HF_DATASETS_CACHE": str(work / ".cache" / "datasets"),
               "HF_HOME": str(work / ".cache" / "huggingface"), "OMP_NUM_THREADS": str(threads),
               "MKL_NUM_THREADS": str(threads), "FTLAB_PROFILE": "cpu", "HF_HUB_OFFLINE": "1",
               "PYTHONDONTWRITEBYTECODE": "1", "TORCHINDUCTOR_CACHE_DIR": str(work / ".cache" / "torchinductor"),
               "TRITON_CACHE_DIR": str(work / ".cache" / "triton"),
               "PYTHONPATH": os.environ.get("PYTHONPATH", ""), "FTLAB_GRADER_DEBUG": os.environ.get("FTLAB_GRADER_DEBUG", "")}
        spec = {"argv": [sys.executable, "-m", "ftlab.grading_kernel", "-f", "{connection_file}"],
                "display_name": "ftlab grader", "language": "python", "env": env}
        (kernels / "ftlab-grader" / "kernel.json").write_text(json.dumps(spec))
        os.environ["JUPYTER_PATH"] = str(jupyter)  # this worker process grades one submission: its own kernelspec
        client = _limited_client_class()(graded, timeout=int(timeout), allow_errors=True, kernel_name="ftlab-grader",
                                         resources={"metadata": {"path": str(work)}}, startup_timeout=120)
        status, detail = "ok", ""
        try:
            client.execute()
        except Exception as err:
            name = type(err).__name__
            if name == "CellTimeoutError":
                status, detail = "timeout", f"a cell ran longer than the {timeout:.0f} s limit"
            elif name == "DeadKernelError":
                status, detail = "kernel-died", "the kernel died (os._exit, a crash, or memory)"
            else:
                status, detail = "grader-error", f"{name}: {str(err)[:200]}"
        entries = []
        if report.exists():
            for line in report.read_text(encoding="utf-8").splitlines():
                try:
                    entries.append(json.loads(line))
                except ValueError:
                    pass
    if os.environ.get("FTLAB_GRADER_DEBUG"):
        print(json.dumps(entries, indent=1), file=sys.stderr)
    return _score(path.name, graded, qs, entries, status, detail, missing, client.truncated)


def _cell_errors(graded) -> dict[str, tuple[str, str]]:
    errors = {}
    for cell in graded.cells:
        tag = cell.metadata.get("ftlab", {})
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                key = next(iter(tag.values()), "?")
                kind = "answer" if "answer" in tag else "test" if "test" in tag else "setup" if "setup" in tag else "guard"
                errors[f"{kind}:{key}"] = (out.get("ename", ""), str(out.get("evalue", ""))[:300])
    return errors


def _printed(graded, gid: str) -> str:
    for cell in graded.cells:
        if cell.metadata.get("ftlab", {}).get("test") == gid:
            return "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream")
    return ""


def _score(name, graded, qs, entries, status, detail, missing, truncated) -> Result:
    passed = {e["passed"] for e in entries if "passed" in e}
    verifies = [e for e in entries if "verify" in e]
    changed = sorted({c for e in verifies for c in e["changed"]})
    forbidden = [e["forbidden"] for e in entries if "forbidden" in e]
    ran_guards = sum(1 for c in graded.cells if "guard" in c.metadata.get("ftlab", {}) and c.get("execution_count"))
    errors = _cell_errors(graded)
    if status == "ok" and len(verifies) < ran_guards:
        changed.append("the grader's checks did not run (sys.audit or __import__ replaced?)")
    if changed:
        status, detail = "tampered", "changed: " + ", ".join(changed[:8])
    elif forbidden:
        status, detail = "forbidden", "; ".join(forbidden[:3])
    elif status == "ok":
        answer_errors = {k: v for k, v in errors.items() if k.startswith(("answer:", "setup:")) and v[0] != "NotImplementedError"}
        if any(v[0] == "MemoryError" for v in errors.values()):
            status, detail = "memory-limit", "a cell ran out of memory (MemoryError)"
        elif answer_errors:
            status = "error"
            detail = "; ".join(f"{k.split(':', 1)[1]}: {e}: {v}"[:200] for k, (e, v) in answer_errors.items())
    points = {q.grade_id: (q.points if q.grade_id in passed and status != "tampered" else 0.0) for q in qs}
    feedback = []
    for q in qs:
        if points[q.grade_id]:
            feedback.append(f"- **{q.grade_id}**: passed, {q.points:g} of {q.points:g} points.")
            continue
        why = []
        if f"{q.grade_id}_answer" in missing:
            why.append("its answer cell was missing from your notebook (deleted, or its metadata removed)")
        for key in (f"answer:{q.grade_id}_answer", f"test:{q.grade_id}"):
            if key in errors:
                ename, evalue = errors[key]
                why.append("not answered yet (NotImplementedError)" if ename == "NotImplementedError"
                           else f"{'your code' if key.startswith('answer') else 'the tests'} raised {ename}: {evalue}")
        if not why:
            why += [line.strip() for line in _printed(graded, q.grade_id).splitlines() if line.strip()][:3]
        if not why:
            why.append("its tests did not run to the end" if status != "ok" else "its tests did not pass")
        feedback.append(f"- **{q.grade_id}**: 0 of {q.points:g} points. " + " ".join(why))
    if truncated:
        detail = (detail + "; " if detail else "") + f"output over {MAX_OUTPUT_BYTES // 1_000_000} MB was dropped"
    return Result(name, status, points, detail, feedback=feedback)


# --------------------------------------------------------------------------- the folder

FIELDS_BEFORE, FIELDS_AFTER = ["file", "status"], ["total", "max", "detail", "sha256", "seconds"]


def _submissions(folder: Path, skip: set[Path]) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and p.resolve() not in skip)


def _feedback_name(file: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(file).stem)[:60] or "submission"
    return f"{stem}-{hashlib.sha256(file.encode()).hexdigest()[:8]}.md"


def _write_feedback(folder: Path, result: Result, exercise: str, max_points: float) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    text = [f"# Feedback: {exercise}", "", f"File: `{result.file}`  ", f"Status: **{result.status}**  ",
            f"Score: **{result.total:g} / {max_points:g}**", ""]
    if result.detail:
        text += [f"Note: {result.detail}", ""]
    text += result.feedback
    (folder / _feedback_name(result.file)).write_text("\n".join(text) + "\n", encoding="utf-8")


def grade(submissions: str | Path, exercise: str, out: str | Path, jobs: int = 1, timeout: float = 300,
          memory_mb: int = 8192, force: bool = False, source_dir: str | Path = "exercises/source",
          feedback_dir: str | Path | None = None, progress: bool = True) -> list[Result]:
    """Grade every file in ``submissions``; append rows to ``out`` as they finish. See the module doc."""
    import nbformat

    folder = Path(submissions)
    if not folder.is_dir():
        raise GradingError(f"{folder} is not a folder of submissions.")
    source = find_source(exercise, source_dir)
    qs = questions(nbformat.read(str(source), as_version=4))
    max_points = sum(q.points for q in qs)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    feedback = Path(feedback_dir) if feedback_dir else out.with_name(out.stem + "-feedback")
    fields = FIELDS_BEFORE + [q.grade_id for q in qs] + FIELDS_AFTER
    done: set[tuple[str, str]] = set()
    if out.exists() and not force:
        with open(out, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        if rows and list(rows[0].keys()) != fields:
            raise GradingError(f"{out} holds grades with other columns (another exercise?). Use another --out, or --force.")
        done = {(r["file"], r["sha256"]) for r in rows}
    else:
        with open(out, "w", newline="", encoding="utf-8") as f:
            csv.writer(f).writerow(fields)
    files = _submissions(folder, {out.resolve()} | ({feedback.resolve()} if feedback.exists() else set()))
    digests = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in files}
    pending = [p for p in files if (p.name, digests[p]) not in done]
    if not files:
        print(f"No submissions in {folder}: wrote the header of {out} only.")
        return []
    threads = max(1, (os.cpu_count() or 1) // max(1, jobs))
    lock = threading.Lock()
    results: list[Result] = []
    from tqdm.auto import tqdm

    bar = tqdm(total=len(pending), desc=f"grading {source.stem}", unit="notebook", disable=not progress)

    def one(path: Path) -> Result:
        digest = digests[path]
        start = time.perf_counter()
        result = _run_in_worker(path, source, timeout, memory_mb, threads, qs)
        result.sha256, result.seconds = digest, round(time.perf_counter() - start, 2)
        with lock:
            with open(out, "a", newline="", encoding="utf-8") as f:
                csv.writer(f).writerow([result.file, result.status] + [f"{result.points[q.grade_id]:g}" for q in qs]
                                       + [f"{result.total:g}", f"{max_points:g}", result.detail, digest, result.seconds])
                f.flush()
                os.fsync(f.fileno())
            _write_feedback(feedback, result, source.stem, max_points)
            results.append(result)
            bar.update(1)
        return result

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        list(pool.map(one, pending))
    bar.close()
    skipped = len(files) - len(pending)
    print(f"graded {len(pending)} submission(s)" + (f", skipped {skipped} already in {out} (use --force to regrade)" if skipped else "")
          + f"; grades in {out}, feedback in {feedback}/")
    return results


def _run_in_worker(path: Path, source: Path, timeout: float, memory_mb: int, threads: int, qs) -> Result:
    """Run ``run_submission`` in a child process: a hard wall-clock limit, and a crash of ours stays contained."""
    zero = {q.grade_id: 0.0 for q in qs}
    with tempfile.TemporaryDirectory(prefix="ftlab-worker-") as tmp:
        result_file = Path(tmp) / "result.json"
        cmd = [sys.executable, "-m", "ftlab.grading", str(path), str(source), str(timeout), str(memory_mb), str(threads),
               str(result_file)]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        try:
            _, err = proc.communicate(timeout=timeout + 120)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            return Result(path.name, "timeout", zero, f"over the {timeout:.0f} s limit (stopped)",
                          feedback=[f"Your notebook did not finish within {timeout:.0f} s."])
        finally:
            _kill_group(proc)
        if result_file.exists():
            data = json.loads(result_file.read_text(encoding="utf-8"))
            return Result(**data)
        tail = (err or b"").decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
        return Result(path.name, "grader-error", zero, f"worker exited {proc.returncode}: {tail[0][:200]}")


def _kill_group(proc) -> None:
    import signal

    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _worker_main(argv: list[str]) -> None:
    path, source, timeout, memory_mb, threads, result_file = argv
    result = run_submission(Path(path), Path(source), float(timeout), int(memory_mb), int(threads))
    Path(result_file).write_text(json.dumps(result.__dict__), encoding="utf-8")


if __name__ == "__main__":
    _worker_main(sys.argv[1:])
