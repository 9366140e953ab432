"""Every number a lesson's prose states is one its own committed run printed.

A decimal number in a lesson's Markdown (``0.76``, ``1.5``) must appear among the numbers of that
notebook's outputs (printed text, tables, figures' alt text, Markdown rendered by ``ftlab.display.say``).
A number written into the prose by hand that the run no longer prints (a stale result, a figure from an
"earlier version") fails here. Numbers inside inline code that reads as code (``temperature=0.7``,
``Llama-3.1-8B``: an assignment, a call, a name) are code the reader can see, not claimed results, and are
left out; a number merely set in backticks (``e ≈ 2.72``) still counts. The way to state a measured number in prose is to
render the sentence from the run's variables: ``say(f"... {accuracy:.2f} ...")``.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb"))

DECIMAL = re.compile(r"(?<![\w.])[-−]?\d+\.\d+(?![\w.]*\d)")
INLINE_CODE = re.compile(r"(`+)((?:(?!\1).)+?)\1", re.S)
CODE_LIKE = re.compile(r"[=(\[]|[A-Za-z]-\d")  # an assignment, a call or index, a versioned name
LINK_TARGET = re.compile(r"\]\([^)]*\)")


def prose_numbers(markdown: str) -> list[str]:
    """The decimal numbers a Markdown cell states, leaving out inline code and link targets."""
    code_out = INLINE_CODE.sub(lambda m: " " if CODE_LIKE.search(m.group(2)) else m.group(2), markdown)
    text = LINK_TARGET.sub("]", code_out)
    return [m.group(0).replace("−", "-") for m in DECIMAL.finditer(text)]


def _output_texts(cell) -> list[str]:
    texts = []
    for output in cell.get("outputs", []):
        if "text" in output:
            texts.append(output["text"] if isinstance(output["text"], str) else "".join(output["text"]))
        for mime, value in output.get("data", {}).items():
            if mime.startswith("text/") or mime in ("application/json",):
                texts.append(value if isinstance(value, str) else "".join(value) if isinstance(value, list) else str(value))
        texts.extend(str(v) for v in (output.get("ename"), output.get("evalue")) if v)
    return texts


def output_numbers(notebook) -> set[str]:
    """Every decimal number (as written, and as a value) in the notebook's outputs."""
    found: set[str] = set()
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        for text in _output_texts(cell):
            for match in re.finditer(r"-?\d+\.\d+", text):
                found.add(match.group(0))
    return found


def missing_numbers(notebook) -> list[tuple[int, str]]:
    """``(cell index, number)`` for each decimal number in Markdown that no output of the notebook shows."""
    printed = output_numbers(notebook)
    values = set()
    for n in printed:
        try:
            values.add(float(n))
        except ValueError:
            pass
    missing = []
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "markdown":
            continue
        for number in prose_numbers(cell.source):
            if number in printed or float(number) in values:
                continue
            missing.append((index, number))
    return missing


def test_prose_numbers_are_found_and_code_left_out():
    assert prose_numbers("accuracy 0.76 vs 0.97, k=16, 2.2M parameters") == ["0.76", "0.97", "2.2"]
    assert prose_numbers("call `generate(temperature=0.7)` then 1.5") == ["1.5"]
    assert prose_numbers("`Llama-3.1-8B` is big; each nat is `e ≈ 2.72`") == ["2.72"]
    assert prose_numbers("see [paper](https://arxiv.org/abs/2405.09673) from 2024") == []
    assert prose_numbers("version 1.19.6 and a range 0.2-0.4") == ["0.2", "0.4"]


def test_a_stale_number_in_markdown_is_caught():
    nb = nbformat.v4.new_notebook()
    code = nbformat.v4.new_code_cell("print(acc)")
    code.outputs = [nbformat.v4.new_output("stream", name="stdout", text="accuracy 0.706 vs 0.405\n")]
    nb.cells = [code, nbformat.v4.new_markdown_cell("Masking wins: 0.706 vs 0.405 (earlier: 0.76 vs 0.47).")]
    assert missing_numbers(nb) == [(1, "0.76"), (1, "0.47")]
    nb.cells[1].source = "Masking wins: 0.706 vs 0.405."
    assert missing_numbers(nb) == []


@pytest.mark.parametrize("ipynb", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_every_number_in_a_lessons_prose_is_printed_by_its_run(ipynb):
    notebook = nbformat.read(ipynb, as_version=4)
    missing = missing_numbers(notebook)
    assert not missing, (f"{ipynb.name}: the prose states numbers no output of its committed run shows "
                         f"(cell, number): {missing}. Render them from the run's variables with "
                         "ftlab.display.say(f'...'), or remove them.")
