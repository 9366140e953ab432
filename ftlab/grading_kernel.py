"""The kernel a submission is graded in: an ordinary IPython kernel, started with guards in place
before any student code runs.

* an address-space limit (``FTLAB_GRADER_MEMORY_MB``), so a runaway notebook gets a ``MemoryError``
  instead of taking the machine down;
* a Python audit hook (which, by design, cannot be removed once added) that refuses writing,
  deleting or renaming files outside the submission's temporary folder, starting processes, and
  reading the instructor's sources (``FTLAB_GRADER_DENY_READ``);
* fingerprints of the objects tests rely on (``builtins``, ``torch.allclose``, ``ftlab.check``,
  IPython's cell execution, ...) taken now, and compared when the grader raises the audit event
  ``ftlab.grader.verify``; test cells report a pass by raising ``ftlab.grader.passed`` with a
  nonce only the grader knows. Results go to a report file only this hook may write.

Run as ``python -m ftlab.grading_kernel -f CONNECTION_FILE`` (the grader's kernelspec does this).
"""

from __future__ import annotations

import json
import os
import sys

PROTECTED = {
    "builtins": ("print", "len", "abs", "sum", "min", "max", "all", "any", "round", "isinstance", "getattr",
                 "setattr", "id", "exec", "eval", "__import__", "AssertionError", "Exception", "float", "int",
                 "bool", "str", "repr", "range", "zip", "sorted"),
    "math": ("isclose",),
    "numpy": ("allclose", "isclose", "array_equal", "testing"),
    "torch": ("allclose", "isclose", "equal", "tensor", "testing"),
    "sys": ("audit", "exit"),
    "ftlab": ("check",),
    "ftlab.exercises": ("check", "run_checks", "CHECKS"),
    "IPython.core.interactiveshell": ("InteractiveShell",),
    "ipykernel.ipkernel": ("IPythonKernel",),
}
# methods that decide whether a cell's code runs and whether its error is reported
CELL_MACHINERY = {"InteractiveShell": ("run_cell", "run_cell_async", "run_ast_nodes", "run_code", "transform_cell",
                                       "showtraceback", "_run_cell", "should_run_async"),
                  "IPythonKernel": ("do_execute",)}


def _fingerprint() -> dict[str, int]:
    import importlib

    prints = {}
    for module_name, names in PROTECTED.items():
        module = importlib.import_module(module_name)
        for name in names:
            prints[f"{module_name}.{name}"] = id(getattr(module, name, None))
    from IPython.core.interactiveshell import InteractiveShell
    from ipykernel.ipkernel import IPythonKernel

    for cls in (InteractiveShell, IPythonKernel):
        for name in CELL_MACHINERY[cls.__name__]:
            prints[f"{cls.__name__}.{name}"] = id(cls.__dict__.get(name) or getattr(cls, name, None))
    return prints


def _instance_overrides() -> list[str]:
    """Cell-execution methods replaced on the live shell or kernel objects themselves."""
    from IPython import get_ipython

    shell = get_ipython()
    found = []
    for obj, names in ((shell, CELL_MACHINERY["InteractiveShell"]),
                       (getattr(shell, "kernel", None), CELL_MACHINERY["IPythonKernel"])):
        if obj is not None:
            found += [f"{type(obj).__name__}.{n} (on the instance)" for n in names if n in vars(obj)]
    return found


def install_guards() -> None:
    allowed = tuple(os.path.realpath(p) for p in os.environ.get("FTLAB_GRADER_ALLOW_WRITE", "").split(os.pathsep) if p)
    allowed += ("/dev/null", "/dev/shm", "/dev/tty", "/dev/urandom")
    denied_read = tuple(os.path.realpath(p) for p in os.environ.get("FTLAB_GRADER_DENY_READ", "").split(os.pathsep) if p)
    report_path = os.environ.get("FTLAB_GRADER_REPORT", "")
    nonce_file = os.environ.get("FTLAB_GRADER_NONCE_FILE", "")
    nonce = ""
    if nonce_file:
        with open(nonce_file, encoding="utf-8") as f:
            nonce = f.read().strip()
        os.remove(nonce_file)  # read once, before any student code; then gone
    memory_mb = int(os.environ.get("FTLAB_GRADER_MEMORY_MB", "0") or 0)
    if memory_mb:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (memory_mb * 2**20, memory_mb * 2**20))
    # import what the fingerprints cover now, before any student code can touch it
    import numpy  # noqa: F401
    import torch  # noqa: F401

    import platform

    import ftlab  # noqa: F401
    import ftlab.exercises  # noqa: F401

    platform.platform()  # libraries ask for it; the first call runs `uname -p` in a subprocess, so call it now

    sys.dont_write_bytecode = True  # importing a module must not try to write __pycache__ next to its source
    original = _fingerprint()
    state = {"writing": False}
    real_open = open
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

    def inside(path, roots) -> bool:
        if isinstance(path, int):
            return True  # an already-open descriptor
        try:
            real = os.path.realpath(os.fsdecode(path))
        except (TypeError, ValueError):
            return False
        return any(real == r or real.startswith(r.rstrip("/") + "/") for r in roots)

    def record(entry: dict) -> None:
        state["writing"] = True
        try:
            with real_open(report_path, "a", encoding="utf-8") as f:
                f.write(json.dumps(entry) + "\n")
        finally:
            state["writing"] = False

    def refuse(what: str) -> None:
        entry = {"forbidden": what}
        if os.environ.get("FTLAB_GRADER_DEBUG"):
            import traceback

            entry["stack"] = traceback.format_stack(limit=12)
        record(entry)
        raise PermissionError("grading: " + what)

    def hook(event: str, args: tuple) -> None:
        if state["writing"]:
            return
        if event == "ftlab.grader.passed":
            if len(args) == 2 and args[1] == nonce:
                record({"passed": args[0]})
            return
        if event == "ftlab.grader.verify":
            changed = [k for k, v in _fingerprint().items() if original.get(k) != v] + _instance_overrides()
            record({"verify": args[0] if args else "", "changed": changed})
            return
        if event == "open":
            path, mode, flags = args
            writes = (mode is not None and any(c in mode for c in "wax+")) or (mode is None and flags & write_flags)
            if writes and not inside(path, allowed):
                refuse(f"writing {path!r} is not allowed (only inside the submission's folder)")
            if denied_read and not isinstance(path, int) and inside(path, denied_read):
                refuse(f"reading {path!r} is not allowed")
        elif event in ("os.remove", "os.rmdir", "os.mkdir", "os.truncate", "os.chmod", "os.chown", "os.utime",
                       "os.symlink", "os.link", "shutil.rmtree", "os.rename"):
            paths = [a for a in args if isinstance(a, (str, bytes, os.PathLike))]
            if event == "os.mkdir" and all(os.path.isdir(p) for p in paths):
                return  # makedirs(exist_ok=True) on a folder that exists changes nothing
            if not all(inside(p, allowed) for p in paths):
                refuse(f"{event} on {paths} is not allowed outside the submission's folder")
        elif event in ("subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork",
                       "os.forkpty", "pty.spawn"):
            refuse(f"starting processes ({event}) is not allowed")

    sys.addaudithook(hook)


def main() -> None:
    install_guards()
    from ipykernel import kernelapp

    kernelapp.launch_new_instance()


if __name__ == "__main__":
    main()
