"""``ftlab grade``: grade a folder of submitted exercise notebooks into a CSV and feedback files.

For every file in the folder the grader writes one CSV row (file, exercise, status, points per
question, total, max, detail, isolation, sha256, seconds) and a Markdown feedback file.

How a submission is graded (``exercises/README.md`` says it for instructors and test authors):

* its notebook is rebuilt from the instructor's **source**: set-up and test cells always come from
  the source; only the answer cells come from the submission, found by ``grade_id`` (the last one
  wins if a cell was duplicated; a deleted one counts as unanswered);
* **the student's kernel** runs the set-up and answer cells only, in a bubblewrap sandbox
  (``ftlab.sandbox``) with resource limits (``ftlab.grading_kernel``), within one time budget;
* **the grader** (this process, which never runs student code) runs the same set-up cells and then
  each test cell at its place, reading the student's names through ``ftlab.grading_proxy``: values
  as data, functions called in the kernel with data. A question scores when its test cell runs to
  the end here.

Workers: each ``--jobs`` slot is one long-lived trusted worker process (``python -m ftlab.grading
--serve``) that grades submissions one after another, each with a fresh kernel and sandbox; a
worker that overruns the hard limit is killed and replaced.

Statuses: ``ok``, ``error`` (an answer cell raised), ``timeout`` (the time budget ran out),
``memory-limit``, ``kernel-died``, ``invalid-notebook``, ``grader-error`` (a set-up cell failed, or
a bug of ours; the row is still written).
"""

from __future__ import annotations

import ast
import contextlib
import csv
import hashlib
import io
import json
import os
import queue
import re
import select
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

MAX_OUTPUT_BYTES = 2_000_000  # per submission; the rest of its output is dropped
HARD_MARGIN_S = 60  # past the time budget, a worker that has not answered is killed
NO_SANDBOX_NOTE = "graded WITHOUT a sandbox (--no-sandbox): the student's code ran unconfined"
GOMP_SPINCOUNT = "10000"  # threads spin briefly, then sleep: fast when idle, no stall under load (see Makefile)


class GradingError(ValueError):
    """A mistake in how the grader was called (no such exercise, source missing, bad --out): exit status 2."""


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
    isolation: str = ""

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


@dataclass
class Cell:
    kind: str  # "setup", "answer" or "test"
    grade_id: str
    code: str


def plan(source_nb, submission_nb) -> tuple[list[Cell], list[str]]:
    """The cells to run, in order: the source's set-up and test cells, the submission's answers
    (its own cell for each answer ``grade_id``, or the source's stub when missing)."""
    from ftlab.exercises import without_solutions

    answers: dict[str, str] = {}
    for cell in submission_nb.get("cells", []):
        gid = _grade_id(cell)
        if cell.get("cell_type") == "code" and gid:
            source = cell.get("source", "")
            answers[gid] = "".join(source) if isinstance(source, list) else str(source)
    cells, missing = [], []
    for cell in source_nb.cells:
        if cell.cell_type != "code":
            continue
        meta = cell.metadata.get("nbgrader", {})
        gid = meta.get("grade_id", "")
        if meta.get("solution"):
            if gid not in answers:
                missing.append(gid)
            cells.append(Cell("answer", gid, answers.get(gid, without_solutions(cell.source))))
        elif meta.get("grade"):
            cells.append(Cell("test", gid, cell.source))
        else:
            cells.append(Cell("setup", gid, cell.source))
    return cells, missing


def student_names(source_nb) -> set[str]:
    """Names the source's answer cells define (``def``, ``class``, assignment; not ``import``): the only
    names a test cell may read from the student."""
    names: set[str] = set()

    class Bound(ast.NodeVisitor):
        def visit_FunctionDef(self, node):
            names.add(node.name)

        visit_AsyncFunctionDef = visit_ClassDef = visit_FunctionDef

        def visit_Lambda(self, node):
            pass

        def visit_Name(self, node):
            if isinstance(node.ctx, ast.Store):
                names.add(node.id)

    for cell in source_nb.cells:
        if cell.cell_type == "code" and cell.metadata.get("nbgrader", {}).get("solution"):
            try:
                Bound().visit(ast.parse(cell.source))
            except SyntaxError:
                pass
    return names


# --------------------------------------------------------------------------- one submission, in a worker

class Kernel:
    """The student's kernel, in its sandbox (or not, with ``sandbox=False``), over Unix sockets."""

    def __init__(self, root: Path, deadline: float, memory_mb: int, threads: int, sandbox: bool):
        from jupyter_client import KernelManager
        from jupyter_client.kernelspec import KernelSpecManager

        from ftlab import sandbox as sb

        self.deadline, self.dead, self.timed_out = deadline, "", False
        conn = root / "conn"
        conn.mkdir(mode=0o700)
        home = sb.HOME if sandbox else str(root / "home")
        env = {"HOME": home, "TMPDIR": f"{home}/tmp", "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8",
               "PYTHONPATH": str(Path(__file__).resolve().parent.parent), "PYTHONDONTWRITEBYTECODE": "1",
               "PYTHONNOUSERSITE": "1", "FTLAB_PROFILE": "cpu", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
               "HF_DATASETS_OFFLINE": "1", "HF_HOME": f"{home}/.cache/huggingface", "XDG_CACHE_HOME": f"{home}/.cache",
               "MPLCONFIGDIR": f"{home}/.matplotlib", "IPYTHONDIR": f"{home}/.ipython",
               "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "GOMP_SPINCOUNT": GOMP_SPINCOUNT,
               "FTLAB_GRADER_MEMORY_MB": str(memory_mb),
               "FTLAB_GRADER_CPU_S": str(int((deadline - time.monotonic()) * max(1, threads)) + 30)}
        argv = [sys.executable, "-m", "ftlab.grading_kernel", "-f", "{connection_file}"]
        if sandbox:
            env["FTLAB_GRADER_WRITABLE"] = f"{home}:/dev"
            argv = sb.kernel_command(argv, root, env, tmp_mb=min(memory_mb, 2048))
        else:
            Path(home, "tmp").mkdir(parents=True)
        spec_dir = root / "kernels" / "ftlab-grader"
        spec_dir.mkdir(parents=True)
        (spec_dir / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "ftlab grader",
                                                          "language": "python", "interrupt_mode": "message"}))
        self.km = KernelManager(kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(root / "kernels")]),
                                kernel_name="ftlab-grader", transport="ipc", ip=str(conn / "k"),
                                connection_file=str(conn / "kernel.json"))
        self.km.start_kernel(env=env, cwd=home if not sandbox else str(root))
        self.kc = self.km.blocking_client()
        self.kc.start_channels()
        try:
            self.kc.wait_for_ready(timeout=max(1.0, min(120.0, deadline - time.monotonic())))
        except RuntimeError as err:
            self.dead = "the kernel did not start" + (f" ({err})" if str(err) else "")
        self.output_bytes, self.truncated = 0, False

    def _stop(self, reason: str, timed_out: bool = False) -> None:
        """Interrupt, then kill: after a time-out nothing more runs in this kernel."""
        self.dead = self.dead or reason
        self.timed_out = self.timed_out or timed_out
        with contextlib.suppress(Exception):
            self.km.shutdown_kernel(now=True)

    def _wait(self, get, msg_id: str, until: float):
        """Messages of ``get`` answering ``msg_id``, until ``until``; stops the kernel on time-out or death."""
        from queue import Empty

        while True:
            left = until - time.monotonic()
            if left <= 0:
                with contextlib.suppress(Exception):
                    self.km.interrupt_kernel()
                self._stop("over the time limit", timed_out=True)
                return
            try:
                msg = get(timeout=min(1.0, left))
            except Empty:
                if not self.km.is_alive():
                    self._stop("the kernel died (os._exit, a crash, or a limit)")
                    return
                continue
            if msg.get("parent_header", {}).get("msg_id") == msg_id:
                yield msg

    def run_cell(self, code: str) -> tuple[str, str, str]:
        """Run one cell: ``(ename, evalue, printed)``; ``ename`` is empty when it ran without error."""
        if self.dead:
            return "", "", ""
        msg_id = self.kc.execute(code, store_history=True, allow_stdin=False)
        ename = evalue = ""
        printed: list[str] = []
        for msg in self._wait(self.kc.get_iopub_msg, msg_id, self.deadline):
            kind, content = msg["msg_type"], msg["content"]
            if kind in ("stream", "error", "execute_result", "display_data"):
                self.output_bytes += len(json.dumps(content, default=str))
                if self.output_bytes > MAX_OUTPUT_BYTES:
                    self.truncated = True
                elif kind == "stream":
                    printed.append(content.get("text", ""))
            if kind == "error":
                ename, evalue = str(content.get("ename", "")), str(content.get("evalue", ""))[:300]
            if kind == "status" and content.get("execution_state") == "idle":
                break
        return ename, evalue, "".join(printed)

    def send(self, expression: str, timeout: float) -> str:
        """Evaluate ``expression`` in the kernel (a proxy request) and return its text."""
        from ftlab.grading_proxy import KernelGone, RemoteError, _builtin_exception

        if self.dead:
            raise KernelGone(self.dead)
        msg_id = self.kc.execute("", silent=True, store_history=False, user_expressions={"r": expression},
                                 allow_stdin=False)
        for msg in self._wait(self.kc.get_shell_msg, msg_id, time.monotonic() + timeout):
            content = msg["content"]
            result = content.get("user_expressions", {}).get("r", {})
            if result.get("status") == "ok":
                return str(result.get("data", {}).get("text/plain", ""))
            if result.get("status") == "error":
                raise _builtin_exception(str(result.get("ename")), str(result.get("evalue", ""))[:2000])
            raise RemoteError(f"the kernel did not evaluate the request ({content.get('status')})")
        raise KernelGone(self.dead)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.kc.stop_channels()
        with contextlib.suppress(Exception):
            self.km.shutdown_kernel(now=True)
        with contextlib.suppress(Exception):  # the sandbox's process group, whatever shutdown left
            import signal

            os.killpg(self.km.provisioner.pid, signal.SIGKILL)


def run_submission(path: Path, source: Path, timeout: float, memory_mb: int, threads: int,
                   sandbox: bool = True) -> Result:
    """Grade one file (called in a worker process). Never raises: every outcome is a ``Result``."""
    import nbformat

    from ftlab.grading_proxy import KernelGone, Remote, StudentNamespace

    source_nb = nbformat.read(str(source), as_version=4)
    qs = questions(source_nb)
    zero = {q.grade_id: 0.0 for q in qs}
    isolation = "bwrap" if sandbox else "none"
    try:
        submission = nbformat.reads(path.read_bytes().decode("utf-8"), as_version=4)
        nbformat.validate(submission)
    except Exception as err:  # not UTF-8, not JSON, not a notebook: all the same to the grader
        kind = "not JSON" if isinstance(err, (json.JSONDecodeError, UnicodeDecodeError)) else "not a valid notebook"
        return Result(path.name, "invalid-notebook", zero, f"{kind}: {str(err).splitlines()[0][:200]}",
                      isolation=isolation,
                      feedback=[f"Your file could not be read as a Jupyter notebook ({kind}). Submit the .ipynb file "
                                "saved by JupyterLab or Colab (File > Download > .ipynb)."])
    cells, missing = plan(source_nb, submission)
    deadline = time.monotonic() + timeout
    errors: dict[str, tuple[str, str]] = {}  # "answer:q1_answer" / "test:q1" / "setup:setup" -> (ename, evalue)
    printed: dict[str, str] = {}
    passed: set[str] = set()
    setup_failed = ""
    root = Path(tempfile.mkdtemp(prefix="ftlab-grade-"))
    kernel = None
    try:
        kernel = Kernel(root, deadline, memory_mb, threads, sandbox)
        ns = StudentNamespace(student_names(source_nb))
        ns.remote = remote = Remote(kernel.send, deadline)
        for cell in cells:
            if cell.kind in ("setup", "answer"):
                ename, evalue, _ = kernel.run_cell(cell.code)
                if ename:
                    errors[f"{cell.kind}:{cell.grade_id}"] = (ename, evalue)
            if cell.kind == "setup":  # the grader's own copy of the set-up, for the tests
                out = io.StringIO()
                try:
                    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
                        exec(compile(cell.code, f"<set-up {cell.grade_id}>", "exec"), ns)
                except Exception as err:
                    setup_failed = f"set-up cell {cell.grade_id!r} failed in the grader: {type(err).__name__}: {err}"[:300]
                    break
                remote.add_set_up(ns)
            elif cell.kind == "test":
                out = io.StringIO()
                try:
                    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
                        exec(compile(cell.code, f"<test {cell.grade_id}>", "exec"), ns)
                    passed.add(cell.grade_id)
                except KernelGone:
                    pass
                except Exception as err:
                    errors[f"test:{cell.grade_id}"] = (type(err).__name__, str(err)[:300])
                finally:
                    remote.release()
                printed[cell.grade_id] = out.getvalue()[-5000:]
    except Exception as err:  # a bug of ours; the row still gets written
        setup_failed = f"{type(err).__name__}: {str(err)[:200]}"
    finally:
        if kernel is not None:
            kernel.close()
        shutil.rmtree(root, ignore_errors=True)
    result = _score(path.name, qs, passed, errors, printed, missing, kernel, setup_failed)
    result.isolation = isolation
    return result


def _score(name, qs, passed, errors, printed, missing, kernel, setup_failed) -> Result:
    status, detail = "ok", ""
    memory = any(e == "MemoryError" for e, _ in errors.values())
    if setup_failed:
        status, detail = "grader-error", setup_failed
    elif kernel is not None and kernel.timed_out:
        status, detail = "timeout", "over the time limit (stopped)"
    elif memory:
        status, detail = "memory-limit", "a cell ran out of memory (MemoryError)"
    elif kernel is not None and kernel.dead:
        status, detail = "kernel-died", kernel.dead
    else:
        answer_errors = {k: v for k, v in errors.items() if k.startswith(("answer:", "setup:")) and v[0] != "NotImplementedError"}
        if answer_errors:
            status = "error"
            detail = "; ".join(f"{k.split(':', 1)[1]}: {e}: {v}"[:200] for k, (e, v) in answer_errors.items())
    points = {q.grade_id: (q.points if q.grade_id in passed and status != "grader-error" else 0.0) for q in qs}
    feedback = []
    for q in qs:
        if points[q.grade_id]:
            feedback.append(f"- **{q.grade_id}**: passed, {q.points:g} of {q.points:g} points.")
            continue
        why = []
        if f"{q.grade_id}_answer" in missing:
            why.append("its answer cell was missing from your notebook (deleted, or its metadata removed)")
        unanswered = errors.get(f"answer:{q.grade_id}_answer", ("",))[0] == "NotImplementedError"
        for key in (f"answer:{q.grade_id}_answer", f"test:{q.grade_id}"):
            if key in errors and not (unanswered and key.startswith("test:")):
                ename, evalue = errors[key]
                why.append("not answered yet (NotImplementedError)" if ename == "NotImplementedError"
                           else f"{'your code' if key.startswith('answer') else 'the tests'} raised {ename}: {evalue}")
        if not why:
            why += [line.strip() for line in printed.get(q.grade_id, "").splitlines() if line.strip()][:3]
        if not why:
            why.append("its tests did not run to the end" if status != "ok" else "its tests did not pass")
        feedback.append(f"- **{q.grade_id}**: 0 of {q.points:g} points. " + " ".join(why))
    if kernel is not None and kernel.truncated:
        detail = (detail + "; " if detail else "") + f"output over {MAX_OUTPUT_BYTES // 1_000_000} MB was dropped"
    return Result(name, status, points, detail, feedback=feedback)


# --------------------------------------------------------------------------- the folder

FIELDS_BEFORE, FIELDS_AFTER = ["file", "exercise", "status"], ["total", "max", "detail", "isolation", "sha256", "seconds"]


def _submissions(folder: Path, skip: set[Path]) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and p.resolve() not in skip)


def _feedback_name(file: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(file).stem)[:60] or "submission"
    return f"{stem}-{hashlib.sha256(file.encode()).hexdigest()[:8]}.md"


def _write_feedback(folder: Path, result: Result, exercise: str, max_points: float) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    text = [f"# Feedback: {exercise}", "", f"File: `{result.file}`  ", f"Status: **{result.status}**  ",
            f"Score: **{result.total:g} / {max_points:g}**", ""]
    detail = result.detail
    if result.isolation == "none":
        text += [f"Note: {NO_SANDBOX_NOTE}.", ""]
        detail = detail.removeprefix(NO_SANDBOX_NOTE).removeprefix("; ")
    if detail:
        text += [f"Note: {detail}", ""]
    text += result.feedback
    (folder / _feedback_name(result.file)).write_text("\n".join(text) + "\n", encoding="utf-8")


def _open_csv(out: Path, fields: list[str], exercise: str, force: bool) -> set[tuple[str, str]]:
    """Check ``out`` can take this exercise's grades; write its header if it has none. Returns the
    (file, sha256) pairs already graded in it."""
    if out.is_dir():
        raise GradingError(f"--out {out} is a folder: name a CSV file, e.g. {out / 'grades.csv'}")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(out, "a", encoding="utf-8"):
            pass
        text = out.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise GradingError(f"{out} is not a ftlab grades CSV (not text): use another --out") from None
    except OSError as err:
        raise GradingError(f"cannot write --out {out}: {err.strerror or err}") from None
    if text.strip():
        rows = list(csv.reader(io.StringIO(text)))
        header = rows[0]
        if "exercise" not in header or "file" not in header:
            raise GradingError(f"{out} is not a ftlab grades CSV (its header is {','.join(header)[:80]!r}): use another --out")
        col = header.index("exercise")
        others = sorted({r[col] for r in rows[1:] if len(r) > col and r[col] != exercise})
        if others:
            raise GradingError(f"{out} holds grades of {', '.join(others)}, not {exercise}: use another --out")
        if header != fields:
            raise GradingError(f"{out} has other columns than {exercise}'s grades (made by another version?): "
                               "use another --out")
        if not force:
            return {(r[0], r[fields.index("sha256")]) for r in rows[1:] if len(r) == len(fields)}
    with open(out, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerow(fields)
    return set()


def grade(submissions: str | Path, exercise: str, out: str | Path, jobs: int = 1, timeout: float = 300,
          memory_mb: int = 8192, force: bool = False, source_dir: str | Path = "exercises/source",
          feedback_dir: str | Path | None = None, progress: bool = True, sandbox: bool = True) -> list[Result]:
    """Grade every file in ``submissions``; append rows to ``out`` as they finish. See the module doc."""
    import nbformat

    from ftlab import sandbox as sb

    folder = Path(submissions)
    if not folder.is_dir():
        raise GradingError(f"{folder} is not a folder of submissions.")
    source = find_source(exercise, source_dir)
    qs = questions(nbformat.read(str(source), as_version=4))
    max_points = sum(q.points for q in qs)
    out = Path(out)
    feedback = Path(feedback_dir) if feedback_dir else out.with_name(out.stem + "-feedback")
    if sandbox:
        why = sb.unavailable()
        if why:
            raise GradingError(f"no sandbox: {why}. To grade without one (only for trusted notebooks), pass --no-sandbox.")
        try:
            sb.check_private([source.parent, folder, out, feedback])
        except sb.SandboxError as err:
            raise GradingError(str(err)) from None
    fields = FIELDS_BEFORE + [q.grade_id for q in qs] + FIELDS_AFTER
    done = _open_csv(out, fields, source.stem, force)
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
    workers: queue.Queue = queue.Queue()
    for _ in range(max(1, jobs)):
        workers.put(_Worker(threads))

    def one(path: Path) -> Result:
        digest = digests[path]
        start = time.perf_counter()
        worker = workers.get()
        try:
            result = worker.grade(path, source, timeout, memory_mb, threads, sandbox, qs)
        finally:
            workers.put(worker)
        result.sha256, result.seconds = digest, round(time.perf_counter() - start, 2)
        result.isolation = "bwrap" if sandbox else "none"
        if not sandbox:
            result.detail = NO_SANDBOX_NOTE + ("; " + result.detail if result.detail else "")
        with lock:
            with open(out, "a", newline="", encoding="utf-8") as f:
                csv.writer(f).writerow([result.file, source.stem, result.status]
                                       + [f"{result.points[q.grade_id]:g}" for q in qs]
                                       + [f"{result.total:g}", f"{max_points:g}", result.detail, result.isolation,
                                          digest, result.seconds])
                f.flush()
                os.fsync(f.fileno())
            _write_feedback(feedback, result, source.stem, max_points)
            results.append(result)
            bar.update(1)
        return result

    try:
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            list(pool.map(one, pending))
    finally:
        while not workers.empty():
            workers.get().close()
    bar.close()
    skipped = len(files) - len(pending)
    print(f"graded {len(pending)} submission(s)" + (f", skipped {skipped} already in {out} (use --force to regrade)" if skipped else "")
          + f"; grades in {out}, feedback in {feedback}/" + ("" if sandbox else f" ({NO_SANDBOX_NOTE})"))
    return results


class _Worker:
    """A trusted worker process that grades one submission at a time (``python -m ftlab.grading --serve``).
    It is killed, with its process group, when it overruns; the next submission starts a new one."""

    def __init__(self, threads: int):
        self.threads, self.proc, self.log = threads, None, None

    def _start(self) -> None:
        self.log = tempfile.TemporaryFile()
        env = dict(os.environ, OMP_NUM_THREADS=str(self.threads), MKL_NUM_THREADS=str(self.threads),
                   GOMP_SPINCOUNT=GOMP_SPINCOUNT, FTLAB_PROFILE="cpu", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1",
                   TOKENIZERS_PARALLELISM="false")
        self.proc = subprocess.Popen([sys.executable, "-m", "ftlab.grading", "--serve"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.log, start_new_session=True, env=env)

    def grade(self, path: Path, source: Path, timeout: float, memory_mb: int, threads: int, sandbox: bool, qs) -> Result:
        zero = {q.grade_id: 0.0 for q in qs}
        if self.proc is None or self.proc.poll() is not None:
            self._start()
        job = {"path": str(path), "source": str(source), "timeout": timeout, "memory_mb": memory_mb,
               "threads": threads, "sandbox": sandbox}
        try:
            self.proc.stdin.write((json.dumps(job) + "\n").encode())
            self.proc.stdin.flush()
            line = self._read_line(time.monotonic() + timeout + HARD_MARGIN_S)
        except (BrokenPipeError, OSError):
            line = None
        if line is None:
            overran = self.proc.poll() is None
            tail = self._tail()
            self.close()
            if overran:
                return Result(path.name, "timeout", zero, f"over the {timeout:.0f} s limit (worker stopped)",
                              feedback=[f"Your notebook did not finish within {timeout:.0f} s."])
            return Result(path.name, "grader-error", zero, f"worker exited: {tail}")
        return Result(**json.loads(line))

    def _read_line(self, until: float) -> bytes | None:
        fd, buf = self.proc.stdout.fileno(), b""
        while b"\n" not in buf:
            left = until - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                return None
            buf += chunk
        return buf

    def _tail(self) -> str:
        try:
            self.log.seek(0)
            lines = self.log.read().decode("utf-8", "replace").strip().splitlines()
            return lines[-1][:200] if lines else ""
        except Exception:
            return ""

    def close(self) -> None:
        import signal

        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            self.proc = None


def _serve() -> None:
    """Worker loop: one JSON job per line on stdin, one JSON result per line on stdout."""
    from ftlab.grading_kernel import die_with_parent

    die_with_parent()  # and its sandboxes die with it (bwrap's --die-with-parent)
    protocol = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # anything else printed (by set-up or test cells, libraries) goes to the log
    sys.stdout = sys.stderr
    for line in sys.stdin:
        job = json.loads(line)
        result = run_submission(Path(job["path"]), Path(job["source"]), float(job["timeout"]), int(job["memory_mb"]),
                                int(job["threads"]), bool(job["sandbox"]))
        protocol.write(json.dumps(result.__dict__) + "\n")
        protocol.flush()


if __name__ == "__main__":
    if sys.argv[1:] == ["--serve"]:
        _serve()
