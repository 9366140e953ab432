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


def test_parse_conversation():
    assert parse_conversation("user: a\nassistant: b\nmore") == [
        {"role": "user", "content": "a"}, {"role": "assistant", "content": "b\nmore"}]
