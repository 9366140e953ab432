"""The kernel a submission's answer cells run in: an ordinary IPython kernel, started with
resource limits in place before any student code runs (``ftlab grade`` starts it, normally inside
the bubblewrap sandbox of ``ftlab.sandbox``).

* address space (``FTLAB_GRADER_MEMORY_MB``): a runaway notebook gets a ``MemoryError``;
* CPU seconds (``FTLAB_GRADER_CPU_S``), as well as the grader's wall clock;
* file size, no core files, and a cap on processes (which Linux does not apply to root);
* it is killed when the grader dies (``PR_SET_PDEATHSIG``; inside the sandbox bwrap also does this).

A process without privileges can lower these limits but never raise them. Nothing here decides a
score: test cells never run in this kernel (see ``ftlab.grading``).

Run as ``python -m ftlab.grading_kernel -f CONNECTION_FILE``.
"""

from __future__ import annotations

import os
import resource
import signal


def set_limits() -> None:
    memory_mb = int(os.environ.pop("FTLAB_GRADER_MEMORY_MB", "0") or 0)
    cpu_s = int(os.environ.pop("FTLAB_GRADER_CPU_S", "0") or 0)
    limits = {resource.RLIMIT_CORE: 0, resource.RLIMIT_FSIZE: 2**30, resource.RLIMIT_NPROC: 256}
    if memory_mb:
        limits[resource.RLIMIT_AS] = memory_mb * 2**20
    if cpu_s:
        limits[resource.RLIMIT_CPU] = cpu_s
    for kind, value in limits.items():
        soft, hard = resource.getrlimit(kind)
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        resource.setrlimit(kind, (value, value))
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def main() -> None:
    set_limits()
    from ipykernel import kernelapp

    kernelapp.launch_new_instance()


if __name__ == "__main__":
    main()
