"""Widgets driven from Python, as a learner would click them."""

import ipywidgets

from ftlab.widgets import CompareModels, LossMaskViewer, parse_conversation


def test_compare_models_widget(tiny_base, tiny_chat):
    widget = CompareModels({"base": (*tiny_base, False), "chat": (*tiny_chat, True)})
    widget.prompt.value = "What is the capital of France?"
    widget.decoding.value = "greedy"
    widget.button.click()
    assert "Paris" in widget.result.value and "&lt;|im_start|&gt;" in widget.result.value
    outputs = widget.run()
    assert "Paris" in outputs["chat"] and set(outputs) == {"base", "chat"}
    widget.decoding.value = "temperature"
    widget.temperature.value = 1.5
    assert isinstance(widget.run()["base"], str)
    assert isinstance(widget.box, ipywidgets.VBox)


def test_loss_mask_viewer(tiny_chat, world):
    _, tok = tiny_chat
    viewer = LossMaskViewer(tok, examples=list(world.instructions()["train"]["messages"][:3]))
    viewer.text.value = "user: Who are you?\nassistant: I am Pip."
    viewer.show_button.click()
    assert 0 < viewer.n_loss_tokens < viewer.n_tokens
    viewer.picker.value = 1  # picking an example shows it at once
    assert world.instructions()["train"]["messages"][1][1]["content"] in viewer.text.value
    viewer.text.value = "user: only a question"
    viewer.run()
    assert "assistant" in viewer.result.value  # a clear message, not a traceback


def test_preference_labeler_saves_every_click_and_resumes(world, tmp_path):
    from ftlab.widgets import PreferenceLabeler

    pairs = world.preferences()["test"].select(range(5))
    path = tmp_path / "labels.jsonl"
    labeler = PreferenceLabeler(pairs, path=str(path))
    assert labeler.count == 0 and "Prompt" in labeler.card.value
    first = labeler.current()
    labeler.buttons["A"].click()
    labeler.buttons["tie"].click()
    assert labeler.count == 2 and path.read_text().count("\n") == 2
    again = PreferenceLabeler(pairs, path=str(path))  # a kernel restart: the clicks are still there
    assert again.count == 2 and again.current() not in (first, None)
    for _ in range(3):
        again.buttons["B"].click()
    assert again.current() is None and again.buttons["A"].disabled and "All pairs labelled" in again.card.value
    again.choose("A")  # nothing left to label: no error, nothing written
    assert len(again.log.labels()) == 5 and len(again.log.to_pairs()) == 4  # the tie is left out
    again.reset_button.click()  # start over: every pair is asked again, the old labels kept aside
    assert again.count == 0 and again.current() == first and not again.buttons["A"].disabled
    assert "Started over" in again.status.value and not path.exists()
    assert len(PreferenceLabeler(pairs, path=str(path) + ".bak").log.labels()) == 5
    again.reset()  # nothing to set aside: no error, the backup is left alone
    assert "Started over" not in again.status.value and (tmp_path / "labels.jsonl.bak").exists()


def _upload(widget, name: str, content: bytes) -> None:
    """What the browser sends when a learner picks a file, in this ipywidgets version's format."""
    import datetime

    if ipywidgets.__version__.startswith("7."):
        widget.metadata = [{"name": name, "type": "application/json", "size": len(content), "lastModified": 0}]
        widget.data = [content]
        widget._counter += 1  # 7.x rebuilds .value from metadata and data when the counter moves
    else:
        widget.value = ({"name": name, "type": "application/json", "size": len(content),
                         "last_modified": datetime.datetime(2026, 1, 1), "content": memoryview(content)},)


def test_data_checker_reads_an_upload_or_a_path(tiny_chat, tmp_path, monkeypatch):
    import json

    from ftlab.data import EXAMPLE
    from ftlab.widgets import DataChecker, uploaded_files

    _, tok = tiny_chat
    monkeypatch.chdir(tmp_path)
    checker = DataChecker(tok, path=EXAMPLE)
    checker.button.click()
    assert checker.data.report.kept == 300 and "300 kept" in checker.result.value
    rows = [{"prompt": "Hi?", "completion": "Hello."}, {"prompt": "Bye?", "completion": ""}]
    content = "\n".join(json.dumps(r) for r in rows).encode()
    _upload(checker.upload, "mine.jsonl", content)
    assert uploaded_files(checker.upload.value) == [("mine.jsonl", content)]
    data = checker.run()
    assert (tmp_path / "uploads" / "mine.jsonl").read_bytes() == content and checker.path.value.endswith("mine.jsonl")
    assert (data.report.kept, data.report.refused) == (1, 1)
    assert "line 2: completion is empty" in checker.result.value and "1 refused" in checker.result.value
    missing = DataChecker(tok, path=str(tmp_path / "missing.jsonl"))
    assert missing.run() is None and "No file or folder" in missing.result.value  # a message, not a traceback


def test_parse_conversation():
    assert parse_conversation("user: a\nassistant: b\nmore") == [
        {"role": "user", "content": "a"}, {"role": "assistant", "content": "b\nmore"}]


def test_widgets_also_work_under_ipywidgets_7():
    """Colab ships ipywidgets 7.7.1; `make` installs a copy of it beside the venv's 8.x."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    import pytest

    old = Path(sys.prefix) / "ipywidgets7"
    if not (old / "ipywidgets").is_dir():
        pytest.skip(f"ipywidgets 7.7.1 not installed in {old} (run `make install`)")
    env = {**os.environ, "PYTHONPATH": str(old) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    check = subprocess.run([sys.executable, "-c", "import ipywidgets; print(ipywidgets.__version__)"],
                           capture_output=True, text=True, env=env)
    assert check.stdout.strip() == "7.7.1", check.stderr
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", __file__, "-k", "not ipywidgets_7"],
                          capture_output=True, text=True, env=env, cwd=Path(__file__).parent.parent, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:]
