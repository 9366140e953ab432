"""The sandbox a student's kernel runs in: bubblewrap (``bwrap``), Linux only.

``kernel_command`` wraps the kernel's command line so that, enforced by the operating system:

* it runs in new user, pid, network, ipc, uts and cgroup namespaces (``--unshare-all``): no network
  at all (loopback included), no other process visible or signalable, uid 65534 inside;
* it sees a read-only copy of what Python needs (``/usr``, the interpreter, the environment's
  ``site-packages``, the ``ftlab`` package) and nothing else of the machine: not the sources, the
  submissions, the CSV, the feedback, the home folders, ``/etc`` (beyond the loader's cache);
* the only writable places are a size-capped in-memory ``/tmp`` (its ``HOME`` and working folder)
  and the folder holding the kernel's connection file and Unix sockets (which the kernel's own
  Landlock rule closes once it has bound them: ``ftlab.grading_kernel``);
* its environment is built from nothing (``--clearenv``);
* it dies with the grader (``--die-with-parent``), and everything it started dies with it (the pid
  namespace ends with its first process).

Resource limits (address space, CPU seconds, file size, processes) are set by
``ftlab.grading_kernel`` before any student code runs; a process without privileges cannot raise them.
"""

from __future__ import annotations

import functools
import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

SANDBOX_UID = 65534
HOME = "/tmp/home"
INSTALL_HINT = "install bubblewrap (Debian/Ubuntu: `sudo apt-get install bubblewrap`; Fedora: `sudo dnf install bubblewrap`)"


class SandboxError(RuntimeError):
    pass


def python_dirs() -> list[str]:
    """Folders the kernel's Python needs, read-only: the interpreter's prefixes, site-packages, ftlab."""
    import ftlab

    dirs = [sys.base_prefix, sys.prefix, *site.getsitepackages()]
    user_site = site.getusersitepackages() if site.ENABLE_USER_SITE else None
    if user_site and user_site in sys.path:
        dirs.append(user_site)
    dirs.append(str(Path(ftlab.__file__).resolve().parent))
    real = []
    for d in dirs:
        r = os.path.realpath(d)
        if os.path.isdir(r) and r not in real:
            real.append(r)
    # a folder inside another is already there
    return sorted(r for r in real if not any(r != o and r.startswith(o.rstrip("/") + "/") for o in real))


def _system_binds() -> list[str]:
    args = ["--ro-bind", "/usr", "/usr"]
    for d in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(d):
            args += ["--symlink", os.readlink(d), d]
        elif os.path.isdir(d):
            args += ["--ro-bind", d, d]
    for f in ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime"):
        if os.path.exists(f):
            args += ["--ro-bind", f, f]
    return args


def check_private(private: list[Path]) -> None:
    """Refuse when a private folder (sources, submissions, CSV, feedback) lies inside what the sandbox shows."""
    shown = python_dirs()
    for p in private:
        real = os.path.realpath(p)
        for d in shown:
            if real == d or real.startswith(d.rstrip("/") + "/"):
                raise SandboxError(f"{p} is inside {d}, which the sandbox shows to student code: move it elsewhere")


def kernel_command(argv: list[str], root: Path, env: dict[str, str], tmp_mb: int = 1024) -> list[str]:
    """``argv`` (the kernel's command) wrapped in bwrap. ``root`` is the grader's folder for this
    submission: ``root/conn`` (connection file and Unix sockets) is shared read-write at the same
    path, ``root/etc`` supplies ``/etc/passwd`` and ``/etc/group``."""
    etc = root / "etc"
    etc.mkdir(exist_ok=True)
    (etc / "passwd").write_text(f"student:x:{SANDBOX_UID}:{SANDBOX_UID}:student:{HOME}:/bin/sh\n")
    (etc / "group").write_text(f"student:x:{SANDBOX_UID}:\n")
    (etc / "hosts").write_text("127.0.0.1 localhost\n")
    args = [shutil.which("bwrap") or "bwrap", "--unshare-all", "--die-with-parent", "--new-session",
            "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID), "--hostname", "sandbox", *_system_binds()]
    for name in ("passwd", "group", "hosts"):
        args += ["--ro-bind", str(etc / name), f"/etc/{name}"]
    for d in python_dirs():
        args += ["--ro-bind", d, d]
    args += ["--proc", "/proc", "--dev", "/dev", "--size", str(64 * 2**20), "--tmpfs", "/dev/shm",
             "--size", str(tmp_mb * 2**20), "--tmpfs", "/tmp",
             "--dir", HOME, "--dir", f"{HOME}/tmp", "--bind", str(root / "conn"), str(root / "conn"), "--chdir", HOME, "--clearenv"]
    for key, value in env.items():
        args += ["--setenv", key, value]
    return args + ["--", *argv]


@functools.lru_cache(maxsize=None)
def unavailable() -> str | None:
    """Why no sandbox can be made here (``None`` when one can): tried once, with a real command."""
    if not sys.platform.startswith("linux"):
        return f"the grader's sandbox needs Linux (this is {sys.platform})"
    if not shutil.which("bwrap"):
        return f"bubblewrap (bwrap) is not installed: {INSTALL_HINT}"
    import tempfile

    with tempfile.TemporaryDirectory(prefix="ftlab-sandbox-check-") as tmp:
        (Path(tmp) / "conn").mkdir()
        probe = "import socket; print('sandbox-ok', [n for _, n in socket.if_nameindex()])"
        cmd = kernel_command([sys.executable, "-c", probe], Path(tmp), {"PATH": "/usr/bin:/bin"}, tmp_mb=16)
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as err:
            return f"bubblewrap could not start: {err}"
    if proc.returncode == 0 and proc.stdout.strip() == "sandbox-ok ['lo']":
        return None  # Python ran inside, with no network but its own loopback
    err = proc.stderr.strip().splitlines()
    reason = err[-1] if err else f"exit status {proc.returncode}, output {proc.stdout.strip()[:100]!r}"
    if "namespace" in proc.stderr or "Operation not permitted" in proc.stderr:
        return (f"bubblewrap cannot create a sandbox here ({reason}); enable unprivileged user namespaces "
                "(sysctl kernel.unprivileged_userns_clone=1, or on Ubuntu 24.04 an AppArmor profile for bwrap)")
    return f"bubblewrap failed: {reason}"
