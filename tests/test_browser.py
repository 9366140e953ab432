"""Every lesson in a real browser: JupyterLab driven through Debian's Chromium with Playwright.

A widget that works from Python can still fail to render, so each test opens a lesson, clicks
Run > Run All Cells, waits for the lesson's own "All checks passed.", then uses its widget the way a
learner does (types, clicks, moves a slider with the keyboard) and checks the output changed as it
should. A screenshot per lesson goes to ``build/screenshots/``.

Skipped when Chromium or Playwright is missing, unless ``FTLAB_REQUIRE_BROWSER=1`` (``.ci/run`` sets
it and installs both: ``apt-get install chromium``, ``pip install playwright``; never ``playwright
install``). Deselect with ``pytest -m "not browser"``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path(os.environ.get("FTLAB_CHROMIUM", "/usr/bin/chromium"))
SCREENSHOTS = ROOT / "build" / "screenshots"
RUN_ALL_TIMEOUT_S = 300


def _missing() -> str | None:
    if not CHROMIUM.exists():
        return f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright is not installed (pip install playwright)"
    return None


if (why := _missing()) is not None:
    if os.environ.get("FTLAB_REQUIRE_BROWSER") == "1":
        raise RuntimeError(f"FTLAB_REQUIRE_BROWSER=1 but {why}")
    pytest.skip(why, allow_module_level=True)

from playwright.sync_api import expect, sync_playwright  # noqa: E402

expect.set_options(timeout=20_000)  # a widget round trip to a busy 2-core machine can take a few seconds


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _write_settings(settings: Path) -> None:
    """Render every cell (windowing off) and never ask about news or updates (no network here)."""
    files = {
        "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
        "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false", "checkForUpdates": False},
    }
    for name, value in files.items():
        path = settings / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server on 127.0.0.1 with a random token, serving a copy of the lessons."""
    base = tmp_path_factory.mktemp("lab")
    work = base / "notebooks"
    work.mkdir()
    for nb in (ROOT / "notebooks").glob("*.ipynb"):  # a copy: JupyterLab autosaves what it runs
        shutil.copy(nb, work / nb.name)
    _write_settings(base / "settings")
    token, port = os.urandom(16).hex(), _free_port()
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(base / "config"), JUPYTER_RUNTIME_DIR=str(base / "runtime"),
               JUPYTERLAB_SETTINGS_DIR=str(base / "settings"), JUPYTERLAB_WORKSPACES_DIR=str(base / "workspaces"))
    env.pop("FTLAB_AUTOLABEL", None)  # a learner's kernel: lesson 4 waits for real clicks (conftest sets it for nbmake)
    cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={work}",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate", "--LabApp.extension_manager=readonly"]
    if os.getuid() == 0:
        cmd.append("--allow-root")
    log = open(base / "jupyter.log", "w")
    server = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            if server.poll() is not None:
                raise RuntimeError(f"JupyterLab exited: {(base / 'jupyter.log').read_text()[-2000:]}")
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        else:
            raise RuntimeError("JupyterLab did not answer within 60 s")
        yield {"url": url, "token": token, "log": base / "jupyter.log"}
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                              args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield b
        b.close()


class Lesson:
    """One lesson opened in its own JupyterLab workspace (so no other lesson's tab is in the way)."""

    def __init__(self, browser, lab, name: str):
        self.name = name
        self.page = browser.new_page(viewport={"width": 1400, "height": 1000})
        stem = Path(name).stem
        self.page.goto(f"{lab['url']}/lab/workspaces/{stem}/tree/{name}?reset&token={lab['token']}")
        self.panel = self.page.locator(".jp-NotebookPanel:visible")
        self.page.set_default_timeout(RUN_ALL_TIMEOUT_S * 1000)
        expect(self.panel).to_have_count(1, timeout=60_000)
        expect(self.panel.locator(".jp-Notebook .jp-Cell").first).to_be_visible(timeout=60_000)
        self.wait_until_idle()
        self.menu("Edit", "Clear Outputs of All Cells")  # the committed outputs already say "All checks passed."
        expect(self.panel.locator(".jp-OutputArea-output")).to_have_count(0)

    def wait_until_idle(self) -> None:
        """The kernel is up and has nothing queued (JupyterLab drops a Run All sent before that)."""
        idle = self.page.get_by_role("contentinfo").get_by_role("button", name=re.compile(r"\| Idle$"))
        expect(idle).to_have_count(1, timeout=120_000)

    def menu(self, menu: str, item: str) -> None:
        self.page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(f"^{menu}$")).click()
        self.page.locator(".lm-Menu-itemLabel", has_text=re.compile(f"^{re.escape(item)}$")).click()

    def wait_for_text(self, text: str, timeout_s: float = RUN_ALL_TIMEOUT_S) -> None:
        """Wait until ``text`` shows in an output; fail at once, with the traceback, if a cell raises."""
        done = self.panel.locator(".jp-OutputArea-output", has_text=text)
        error = self.panel.locator(".jp-OutputArea-output", has_text="Traceback (most recent call last)")
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if error.count():
                self.screenshot("error")
                pytest.fail(f"{self.name}: a cell raised:\n{error.first.inner_text()[-3000:]}")
            if done.count():
                return
            time.sleep(1)
        self.screenshot("timeout")
        pytest.fail(f"{self.name}: {text!r} did not appear within {timeout_s:.0f} s")

    def run_all(self) -> None:
        self.menu("Run", "Run All Cells")
        self.wait_for_text("All checks passed.")

    def select_cell(self, index: int) -> None:
        self.panel.locator(".jp-Notebook .jp-Cell").nth(index).locator(".jp-InputPrompt").click()

    def widget(self, has_text: str):
        """The rendered widget box that contains ``has_text`` (a control label or its output)."""
        box = self.panel.locator(".jupyter-widgets.widget-vbox", has_text=has_text).first
        box.scroll_into_view_if_needed()
        return box

    def screenshot(self, suffix: str = "") -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{Path(self.name).stem}{'-' + suffix if suffix else ''}.png"
        self.page.screenshot(path=str(path))
        return path

    def close(self) -> None:
        self.page.close()


@pytest.fixture
def open_lesson(browser, lab):
    opened = []

    def _open(name: str) -> Lesson:
        opened.append(Lesson(browser, lab, name))
        return opened[-1]

    yield _open
    for lesson in opened:
        lesson.close()


def _output(box) -> str:
    """What the widget shows now (its last HTML output)."""
    return box.locator(".widget-html-content").last.inner_text()


def _result_text(box, pattern: str, previous: str, timeout_s: float = 60) -> str:
    """Wait until the widget's output matches ``pattern`` and differs from ``previous``; return it."""
    deadline = time.monotonic() + timeout_s
    text = ""
    while time.monotonic() < deadline:
        text = _output(box)
        if text != previous and re.search(pattern, text):
            return text
        time.sleep(0.25)
    raise AssertionError(f"widget output never matched {pattern!r}; last seen: {text[:500]!r}")


def test_lesson1_compare_models_generates_on_click(open_lesson):
    lesson = open_lesson("01_base_vs_tuned.ipynb")
    lesson.run_all()
    box = lesson.widget("Generate")
    before = _output(box)
    box.locator("textarea").fill("What is the capital of Japan?")
    box.get_by_role("button", name="Generate").click()
    after = _result_text(box, r"Tokyo", before)
    assert "What is the capital of Japan?" in after and "stopped by itself" in after
    lesson.screenshot()


def test_lesson2_loss_mask_viewer_updates_on_click(open_lesson):
    from ftlab.models import load_tokenizer
    from ftlab.widgets import LossMaskViewer

    lesson = open_lesson("02_sft_formatting.ipynb")
    lesson.run_all()
    conversation = "user: What is the capital of Kenya?\nassistant: The capital of Kenya is Nairobi."
    expected = LossMaskViewer(load_tokenizer("tiny-base"))  # the same tokenizer the lesson uses
    expected.text.value = conversation
    expected.run()
    box = lesson.widget("Show tokens")
    before = _output(box)
    box.locator("textarea").fill(conversation)
    box.get_by_role("button", name="Show tokens").click()
    after = _result_text(box, rf"{expected.n_loss_tokens} of {expected.n_tokens} tokens carry loss", before)
    assert "Nairobi" in after.replace(" ", "").replace("\n", "") or "irobi" in after
    box.locator("textarea").fill("user: Only a question?")
    box.get_by_role("button", name="Show tokens").click()
    _result_text(box, r"Add at least one 'assistant:' line", after)  # bad input: a clear message, not a traceback
    lesson.screenshot()


def _trainable(text: str) -> int:
    return int(re.search(r"trainable: ([\d,]+)", text).group(1).replace(",", ""))


def _move_slider(box, label: str, key: str, presses: int) -> int:
    """Press ``key`` on a slider's handle, one real key press at a time, waiting for each to land."""
    slider = box.locator(".widget-slider", has_text=label).first
    handle, readout = slider.locator(".noUi-handle"), slider.locator(".widget-readout")
    for _ in range(presses):
        value = int(readout.inner_text())
        handle.press(key)
        expect(readout).not_to_have_text(str(value))
    return int(readout.inner_text())


def test_lesson3_lora_explorer_follows_the_rank_slider(open_lesson):
    lesson = open_lesson("03_full_vs_lora.ipynb")
    lesson.run_all()
    box = lesson.widget("rank r")
    before = _output(box)
    rank = int(box.locator(".widget-slider", has_text="rank r").first.locator(".widget-readout").inner_text())
    alpha = int(box.locator(".widget-slider", has_text="alpha").first.locator(".widget-readout").inner_text())
    assert _move_slider(box, "rank r", "ArrowRight", 4) == rank + 4
    after = _result_text(box, rf"scale alpha/r = {alpha / (rank + 4):.2f}", before)
    assert _trainable(after) * rank == _trainable(before) * (rank + 4)  # LoRA parameters grow linearly with r
    lesson.screenshot()


def test_lesson4_preferences_labelled_by_clicks_train_the_lesson(open_lesson):
    """The learner's own path: run up to the labeller, click once and start over, label all 24 pairs with
    real clicks (picking the reply the fact base calls right), then run the rest: the lesson trains with the
    24 clicked labels (it says so) and its checks pass."""
    from ftlab.world import World

    unseen = World(seed=0).preferences()["unseen_facts"]
    asked = unseen.select([i for i, axis in enumerate(unseen["axis"]) if axis == "correct"][:24])  # as the lesson
    references = {p[-1]["content"]: ref for p, ref in zip(asked["prompt"], asked["reference"])}
    lesson = open_lesson("04_rlhf.ipynb")
    cells = lesson.panel.locator(".jp-Notebook .jp-Cell")
    labeller_cell = next(i for i in range(cells.count()) if "PreferenceLabeler(" in cells.nth(i).inner_text())
    lesson.select_cell(labeller_cell + 1)
    lesson.menu("Run", "Run All Above Selected Cell")
    box = lesson.widget("labelled, saved in")
    status = box.locator(".widget-html-content").last
    expect(status).to_contain_text("0 of 24 labelled", timeout=RUN_ALL_TIMEOUT_S * 1000)
    box.get_by_role("button", name="Tie", exact=True).click()  # a slip of the hand ...
    expect(status).to_contain_text("1 of 24 labelled")
    box.get_by_role("button", name="Start over", exact=True).click()  # ... undone: the file is set aside
    expect(status).to_contain_text("0 of 24 labelled")
    expect(status).to_contain_text("Started over")
    for n in range(1, 25):
        prompt = box.locator("p").first.inner_text().removeprefix("Prompt:").strip()
        cells = box.locator("td")
        expect(cells).to_have_count(2)
        replies = [cells.nth(i).inner_text().split("\n", 1)[1].strip() for i in range(2)]
        box.get_by_role("button", name="A" if replies[0] == references[prompt] else "B", exact=True).click()
        expect(status).to_contain_text(f"{n} of 24 labelled")
    expect(box).to_contain_text("All pairs labelled")
    expect(box.get_by_role("button", name="A", exact=True)).to_be_disabled()
    lesson.screenshot("labelled")
    lesson.select_cell(labeller_cell + 1)
    lesson.menu("Run", "Run Selected Cell and All Below")
    lesson.wait_for_text("24 of 24 pairs labelled; 24 usable")
    lesson.wait_for_text("All checks passed.")
    lesson.screenshot()


def _prompt_tokens(text: str) -> int:
    return int(re.search(r"prompt: (\d+) tokens", text).group(1))


def test_lesson5_icl_explorer_predicts_on_click(open_lesson):
    lesson = open_lesson("05_icl_vs_finetuning.ipynb")
    lesson.run_all()
    box = lesson.widget("Predict")
    predict = box.get_by_role("button", name="Predict")
    shown = _output(box)
    assert _move_slider(box, "k", "Home", 1) == 0  # no demonstrations at all
    predict.click()
    zero = _result_text(box, r"prediction: .+ prompt: \d+ tokens", shown)
    assert _move_slider(box, "k", "ArrowRight", 8) == 8
    predict.click()
    eight = _result_text(box, r"prediction: .+ prompt: \d+ tokens", zero)
    assert _prompt_tokens(eight) > _prompt_tokens(zero) + 8 * 3, (zero, eight)  # every demonstration costs tokens
    _move_slider(box, "k", "End", 1)  # more demonstrations than the context window holds
    predict.click()
    _result_text(box, r"at most \d+ demonstrations fit", eight)  # a clear message, not a traceback
    lesson.screenshot()


def test_lesson6_data_checker_reads_an_uploaded_file(open_lesson, tmp_path):
    """The learner's path: pick a file in the upload button's file dialog, press Check, read the report."""
    lesson = open_lesson("06_your_own_data.ipynb")
    lesson.run_all()
    box = lesson.widget("or a path")
    before = _output(box)
    assert "300 kept" in before  # the example file, checked by Run All
    mine = tmp_path / "mine.jsonl"
    mine.write_text('{"prompt": "Hi?", "completion": "Hello."}\n{"prompt": "Bye?", "completion": ""}\n')
    with lesson.page.expect_file_chooser() as chooser:  # the widget's file input lives outside the page's DOM
        box.locator(".widget-upload").click()
    chooser.value.set_files(str(mine))
    expect(box.locator(".widget-upload")).to_contain_text("1")  # "Upload (1)": the file reached the kernel
    box.get_by_role("button", name="Check").click()
    after = _result_text(box, r"1 kept \(0 of them fixed\), 1 refused", before)
    assert "line 2: completion is empty" in after and "mine.jsonl" in after
    lesson.screenshot()
