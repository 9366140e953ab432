"""LoRA plumbing: a checked ``peft.LoraConfig`` and the facts lesson 3 measures about a run."""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from ftlab.models import count_parameters, hf_progress_bars_off

ATTENTION_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]


class LoraTargetError(ValueError):
    pass


def linear_modules(model) -> dict[str, tuple[int, int]]:
    """Short names of the model's linear layers (as LoRA targets them) -> (in, out) features."""
    out = {}
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and name.split(".")[-1] != "lm_head":
            out.setdefault(name.split(".")[-1], (module.in_features, module.out_features))
    return out


def lora_config(model, r: int, alpha: float | None = None, targets="all-linear", dropout: float = 0.0,
                rslora: bool = False):
    """A ``peft.LoraConfig`` for ``model``, refused with a reason if the targets or rank cannot work.

    The update is scaled by ``alpha / r``; ``alpha`` defaults to ``2 * r``, so the scale is 2 at every rank.
    ``rslora=True`` (PEFT's ``use_rslora``, Kalajdzievski 2023) scales by ``alpha / sqrt(r)`` instead."""
    from peft import LoraConfig

    if isinstance(r, bool) or not isinstance(r, int) or r < 1:
        raise ValueError(f"LoRA rank r must be a whole number, 1 or more (e.g. 8 or 16), not {r!r}.")
    if alpha is not None and (isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not alpha > 0):
        raise ValueError(f"LoRA alpha must be a positive number (e.g. 2 * r = {2 * r}), or None for 2 * r; not {alpha!r}.")
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise ValueError(f"LoRA dropout is a probability: from 0 (none) up to, not including, 1 (e.g. 0.05); not {dropout!r}.")
    if isinstance(targets, str) and targets != "all-linear":
        targets = [targets]  # one layer's name, as PEFT takes a string
    layers = linear_modules(model)
    names = list(layers) if targets == "all-linear" else list(targets)
    unknown = [t for t in names if t not in layers]
    if unknown or not names:
        raise LoraTargetError(f"LoRA target(s) {unknown or names} match no linear layer of this model. "
                              f"Its linear layers are: {', '.join(layers)} (or use 'all-linear').")
    too_big = {t: min(layers[t]) for t in names if r > min(layers[t])}
    if too_big:
        raise LoraTargetError(f"Rank {r} is larger than the smaller dimension of {', '.join(too_big)} "
                              f"({min(too_big.values())}): a rank-{r} update of a layer whose rank is at most "
                              f"{min(too_big.values())} gains nothing. Use r <= {min(too_big.values())}.")
    return LoraConfig(r=r, lora_alpha=alpha if alpha is not None else 2 * r, target_modules=targets,
                      lora_dropout=dropout, task_type="CAUSAL_LM", use_rslora=rslora)


def trainable_parameters(model) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    return count_parameters(model, trainable_only=True), count_parameters(model)


def saved_size(model) -> int:
    """Bytes on disk after ``save_pretrained``: the full checkpoint, or only the adapter for a PEFT model."""
    with hf_progress_bars_off(), tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        return sum(f.stat().st_size for f in Path(tmp).rglob("*.safetensors"))
