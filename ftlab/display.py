"""Showing results in a notebook: small HTML tables that keep whitespace and newlines visible."""

from __future__ import annotations

import html


def html_table(rows: list[dict], columns: list[str] | None = None):
    """An HTML table of ``rows`` (dicts); text cells keep their newlines. Returns an ``IPython.display.HTML``."""
    from IPython.display import HTML

    columns = columns or list(rows[0]) if rows else []
    head = "".join(f"<th style='text-align:left'>{html.escape(str(c))}</th>" for c in columns)
    body = []
    for row in rows:
        cells = []
        for c in columns:
            value = row.get(c, "")
            text = f"{value:.3f}" if isinstance(value, float) else str(value)
            cells.append(f"<td style='text-align:left;vertical-align:top'><pre style='white-space:pre-wrap;margin:0'>"
                         f"{html.escape(text)}</pre></td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return HTML(f"<table><tr>{head}</tr>{''.join(body)}</table>")


def say(text: str):
    """Show ``text`` (Markdown) as the cell's output: how a lesson states a number its run measured.

    Write the sentence as an f-string from the run's variables, e.g.
    ``say(f"The tuned model ended its turn on {rate:.0%} of the questions.")``, so the prose can never
    disagree with the numbers (``tests/test_lesson_numbers.py`` checks that Markdown cells quote only
    numbers some output printed)."""
    from IPython.display import Markdown, display

    display(Markdown(text))
