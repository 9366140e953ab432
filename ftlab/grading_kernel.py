"""The kernel a submission's answer cells run in: an ordinary IPython kernel, started with
resource limits in place before any student code runs (``ftlab grade`` starts it, normally inside
the bubblewrap sandbox of ``ftlab.sandbox``).

* address space (``FTLAB_GRADER_MEMORY_MB``): a runaway notebook gets a ``MemoryError``;
* CPU seconds (``FTLAB_GRADER_CPU_S``), as well as the grader's wall clock;
* file size, no core files, and a cap on processes (which Linux does not apply to root);
* it is killed when the grader dies (``PR_SET_PDEATHSIG``; inside the sandbox bwrap also does this);
* once its sockets are bound, it may write only beneath ``FTLAB_GRADER_WRITABLE`` (its home) and
  ``/dev``: Linux's Landlock, which a process can turn on for itself but never off (the folder of
  its connection file and sockets, shared with the grader, is not writable after that).

A process without privileges can lower these limits but never raise them. Nothing here decides a
score: test cells never run in this kernel (see ``ftlab.grading``).

Run as ``python -m ftlab.grading_kernel -f CONNECTION_FILE``.
"""

from __future__ import annotations

import os
import resource
import signal
import sys


def set_limits() -> None:
    memory_mb = int(os.environ.pop("FTLAB_GRADER_MEMORY_MB", "0") or 0)
    cpu_s = int(os.environ.pop("FTLAB_GRADER_CPU_S", "0") or 0)
    limits = {resource.RLIMIT_CORE: 0, resource.RLIMIT_FSIZE: 2**28, resource.RLIMIT_NPROC: 256}
    if memory_mb:
        limits[resource.RLIMIT_AS] = memory_mb * 2**20
    if cpu_s:
        limits[resource.RLIMIT_CPU] = cpu_s
    for kind, value in limits.items():
        soft, hard = resource.getrlimit(kind)
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        resource.setrlimit(kind, (value, value))
    die_with_parent()


def die_with_parent() -> None:
    """Be killed (SIGKILL) when the parent process dies (Linux's PR_SET_PDEATHSIG)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):
        pass


# Landlock (Linux >= 5.13): filesystem rights a process can drop for itself and its children, for good
LANDLOCK_WRITES = (1 << 1) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7) | (1 << 8) | (1 << 9) | (1 << 10) | (1 << 11) | (1 << 12)


def forbid_writes_outside(allowed: list[str]) -> bool:
    """From now on, this process and everything it starts may write, create, remove or rename files only
    beneath ``allowed`` (Landlock; False where the kernel has none)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    abi = libc.syscall(444, None, 0, 1)  # landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION)
    if abi < 1:
        return False
    handled = LANDLOCK_WRITES | ((1 << 13) if abi >= 2 else 0) | ((1 << 14) if abi >= 3 else 0)  # REFER, TRUNCATE
    ruleset = ctypes.c_uint64(handled)  # struct landlock_ruleset_attr { __u64 handled_access_fs; ... }
    fd = libc.syscall(444, ctypes.byref(ruleset), 8, 0)
    if fd < 0:
        return False

    class PathBeneath(ctypes.Structure):
        _pack_ = 1
        _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]

    try:
        for path in allowed:
            parent = os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                rule = PathBeneath(handled, parent)
                if libc.syscall(445, fd, 1, ctypes.byref(rule), 0) != 0:  # LANDLOCK_RULE_PATH_BENEATH
                    return False
            finally:
                os.close(parent)
        if libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS, which landlock_restrict_self needs
            return False
        return libc.syscall(446, fd, 0) == 0  # landlock_restrict_self
    finally:
        os.close(fd)


def main() -> None:
    set_limits()
    writable = [p for p in os.environ.pop("FTLAB_GRADER_WRITABLE", "").split(os.pathsep) if p]
    from ipykernel.kernelapp import IPKernelApp

    app = IPKernelApp.instance()
    app.initialize()  # reads the connection file, binds the kernel's sockets
    if writable and not forbid_writes_outside(writable):
        print("ftlab grader: Landlock is not available; the connection folder stays writable", file=sys.stderr)
    app.start()


if __name__ == "__main__":
    main()
