"""Small matplotlib helpers: each returns the figure so a notebook can show or save it."""

from __future__ import annotations

import matplotlib.pyplot as plt


def next_token_bars(probs_by_model: dict[str, list[tuple[str, float]]], title: str = ""):
    """One bar chart per model of its most likely next tokens."""
    fig, axes = plt.subplots(1, len(probs_by_model), figsize=(5 * len(probs_by_model), 3.2), squeeze=False)
    for ax, (name, probs) in zip(axes[0], probs_by_model.items()):
        tokens = [repr(t)[1:-1] or "''" for t, _ in probs][::-1]
        ax.barh(tokens, [p for _, p in probs][::-1], color="tab:blue" if "base" in name else "tab:orange")
        ax.set_xlim(0, 1)
        ax.set_xlabel("probability of the next token")
        ax.set_ylabel("candidate next token")
        ax.set_title(name)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def loss_curves(runs: dict[str, object], title: str = "training loss", eval_too: bool = False):
    """Training (and optionally evaluation) loss per step for several ``TrainRun``s."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, run in runs.items():
        steps, losses = zip(*run.losses) if run.losses else ((), ())
        line, = ax.plot(steps, losses, label=f"{name} (train)")
        if eval_too and run.eval_losses:
            s, l = zip(*run.eval_losses)
            ax.plot(s, l, "--", color=line.get_color(), label=f"{name} (held-out)")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    return fig


def bars(values: dict[str, float], title: str = "", ylabel: str = "", ylim: tuple[float, float] | None = (0, 1),
         xlabel: str = ""):
    """A labelled bar per entry, its value written on top."""
    fig, ax = plt.subplots(figsize=(1.6 + 1.2 * len(values), 3.2))
    rects = ax.bar(list(values), list(values.values()), color=plt.cm.tab10.colors[: len(values)])
    ax.bar_label(rects, fmt="%.2f")
    if ylim:
        ax.set_ylim(*ylim)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def grouped_bars(values: dict[str, dict[str, float]], title: str = "", xlabel: str = "", ylabel: str = "",
                 ylim: tuple[float, float] | None = None):
    """Bars grouped by measure (x axis), one colour per series (legend): ``{series: {measure: value}}``."""
    import numpy as np

    series = list(values)
    measures = list(values[series[0]])
    fig, ax = plt.subplots(figsize=(2 + 1.4 * len(measures), 3.4))
    width = 0.8 / len(series)
    for i, name in enumerate(series):
        rects = ax.bar(np.arange(len(measures)) + (i - (len(series) - 1) / 2) * width,
                       [values[name][m] for m in measures], width, label=name)
        ax.bar_label(rects, fmt="%.2f", fontsize=8)
    ax.set_xticks(np.arange(len(measures)), measures)
    if ylim:
        ax.set_ylim(*ylim)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    return fig


def seed_spread(values: dict[str, list[float]], title: str = "", xlabel: str = "", ylabel: str = "",
                ylim: tuple[float, float] | None = (0, 1)):
    """One point per seed for each arm, and the mean with a min-max bar: shows whether a gap beats seed noise."""
    import numpy as np

    fig, ax = plt.subplots(figsize=(1.8 + 1.6 * len(values), 3.4))
    for i, (name, points) in enumerate(values.items()):
        color = plt.cm.tab10.colors[i]
        ax.scatter([i] * len(points), points, color=color, alpha=0.6, label=f"{name}: each seed")
        mean = float(np.mean(points))
        ax.errorbar([i + 0.15], [mean], yerr=[[mean - min(points)], [max(points) - mean]], fmt="D", color=color,
                    capsize=5, label=f"{name}: mean, min-max")
    ax.set_xticks(range(len(values)), list(values))
    ax.set_xlim(-0.6, len(values) - 0.4)
    if ylim:
        ax.set_ylim(*ylim)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig
