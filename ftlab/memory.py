"""How much memory does fine-tuning need? An estimate from the config alone, and a measurement.

``estimate(config, method=...)`` takes any Llama-family ``transformers`` config (object or dict; no
weights needed) and returns the memory by component. ``measure_peak`` measures a real training step's
peak tensor memory (PyTorch's memory profiler on the CPU, ``max_memory_allocated`` on a GPU) to
check the estimate against.

The estimate's model of one training step:

* **weights**: every parameter, in the training dtype (QLoRA: 4-bit linear layers, 16-bit embeddings);
* **gradients**: one per *trainable* parameter;
* **optimizer**: AdamW keeps two fp32 numbers per trainable parameter (8-bit AdamW: two bytes, SGD: none);
* **activations**: what the forward pass saves for the backward pass — per layer and token about
  ``8·d + 2·d_kv + 4·d_ff`` numbers (measured on HF's Llama), plus the logits (three ``vocab``-wide
  copies per token: logits, their fp32 upcast, log-softmax). Gradient checkpointing keeps only each
  layer's input, plus one layer's worth during recomputation.

Gradients are only allocated once backward has freed most activations, so the peak is
``weights + optimizer + max(activations, gradients)``; the breakdown lists all four.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

CONFIGS_DIR = Path(__file__).parent / "assets" / "configs"
REQUIRED = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "vocab_size")
BYTES = {"fp32": 4, "float32": 4, "bf16": 2, "bfloat16": 2, "fp16": 2, "float16": 2}
OPTIMIZER_BYTES = {"adamw": 8, "adamw8bit": 2, "sgd": 0}  # per trainable parameter
ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj")
MLP = ("gate_proj", "up_proj", "down_proj")
GIB = 2**30


class ConfigError(ValueError):
    pass


def bundled_configs() -> dict[str, dict]:
    """The real model configs shipped with ftlab (SmolLM2 135M/360M/1.7B, Llama 3.1 8B), by name."""
    return {p.stem: json.loads(p.read_text()) for p in sorted(CONFIGS_DIR.glob("*.json"))}


def read_config(config) -> dict:
    """A plain dict of the fields the estimate needs; says which field is missing."""
    if hasattr(config, "to_dict"):
        config = config.to_dict()
    if not isinstance(config, dict):
        raise ConfigError(f"Pass a transformers config or a dict, not {type(config).__name__}.")
    missing = [k for k in REQUIRED if not isinstance(config.get(k), int)]
    if missing:
        raise ConfigError(f"The config has no usable {', '.join(missing)}: the estimate needs {', '.join(REQUIRED)} "
                          "(as in a Llama-family config.json).")
    out = {k: config[k] for k in REQUIRED}
    out["num_key_value_heads"] = config.get("num_key_value_heads") or config["num_attention_heads"]
    out["head_dim"] = config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]
    out["tie_word_embeddings"] = bool(config.get("tie_word_embeddings", False))
    return out


def linear_shapes(cfg: dict) -> dict[str, tuple[int, int]]:
    """(in, out) features of each linear layer in one decoder layer."""
    d, hd = cfg["hidden_size"], cfg["head_dim"]
    q, kv, ff = cfg["num_attention_heads"] * hd, cfg["num_key_value_heads"] * hd, cfg["intermediate_size"]
    return {"q_proj": (d, q), "k_proj": (d, kv), "v_proj": (d, kv), "o_proj": (q, d),
            "gate_proj": (d, ff), "up_proj": (d, ff), "down_proj": (ff, d)}


def parameter_counts(cfg: dict) -> dict[str, int]:
    d, L, V = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["vocab_size"]
    linear = L * sum(i * o for i, o in linear_shapes(cfg).values())
    embeddings = V * d * (1 if cfg["tie_word_embeddings"] else 2)
    norms = (2 * L + 1) * d
    return {"linear": linear, "embeddings": embeddings, "norms": norms, "total": linear + embeddings + norms}


def lora_parameter_count(cfg: dict, r: int, targets="all-linear") -> int:
    """r·(d_in + d_out) per adapted linear layer, over all layers."""
    shapes = linear_shapes(cfg)
    names = list(shapes) if targets == "all-linear" else list(targets)
    unknown = [n for n in names if n not in shapes]
    if unknown:
        raise ConfigError(f"Unknown target module(s) {unknown}; a Llama layer has {list(shapes)}.")
    too_big = [n for n in names if r > min(shapes[n])]
    if too_big:
        raise ConfigError(f"Rank {r} exceeds the smaller dimension of {too_big} ({min(shapes[too_big[0]])}): "
                          "a low-rank update cannot have a rank above the layer's own.")
    return cfg["num_hidden_layers"] * sum(r * sum(shapes[n]) for n in names)


@dataclass
class MemoryEstimate:
    method: str
    parameters: int
    trainable: int
    breakdown: dict[str, float] = field(default_factory=dict)  # bytes per component

    @property
    def total(self) -> float:
        b = self.breakdown
        return b["weights"] + b["lora"] + b["optimizer"] + max(b["activations"], b["gradients"])

    def gib(self) -> dict[str, float]:
        return {k: round(v / GIB, 3) for k, v in self.breakdown.items()} | {"total": round(self.total / GIB, 3)}

    def fits(self, gib: float) -> bool:
        return self.total <= gib * GIB


def estimate(config, method: str = "full", batch: int = 1, seq_len: int = 512, dtype: str = "bf16",
             optimizer: str = "adamw", lora_r: int = 16, lora_targets="all-linear",
             gradient_checkpointing: bool = False) -> MemoryEstimate:
    """Memory for one training step of ``method`` ("full", "lora" or "qlora"), by component, in bytes."""
    if method not in ("full", "lora", "qlora"):
        raise ValueError("method must be 'full', 'lora' or 'qlora'")
    if dtype not in BYTES or optimizer not in OPTIMIZER_BYTES:
        raise ValueError(f"dtype in {sorted(BYTES)}, optimizer in {sorted(OPTIMIZER_BYTES)}")
    cfg = read_config(config)
    counts = parameter_counts(cfg)
    size = BYTES[dtype]
    lora = lora_parameter_count(cfg, lora_r, lora_targets) if method != "full" else 0
    trainable = counts["total"] if method == "full" else lora
    if method == "qlora":  # NF4: half a byte per weight plus ~0.127 bits of double-quantised scales
        weights = counts["linear"] * (0.5 + 0.127 / 8) + (counts["embeddings"] + counts["norms"]) * 2
    else:
        weights = counts["total"] * size
    # LoRA's own weights live in fp32 (PEFT keeps adapters in fp32 for stable training)
    lora_bytes = lora * 4
    grad_bytes = trainable * (size if method == "full" else 4)
    d, L, ff, kv = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["intermediate_size"], cfg["num_key_value_heads"] * cfg["head_dim"]
    tokens = batch * seq_len
    per_layer = 8 * d + 2 * kv + 4 * ff
    layers = L * d + per_layer if gradient_checkpointing else L * per_layer
    logits = 3 * cfg["vocab_size"] * 4  # fp32
    activations = tokens * (layers * size + logits)
    return MemoryEstimate(method, counts["total"], trainable, {
        "weights": weights, "lora": lora_bytes, "gradients": grad_bytes,
        "optimizer": trainable * OPTIMIZER_BYTES[optimizer], "activations": activations})


def measure_peak(model, step, device: str | None = None) -> int:
    """Peak bytes of tensor memory while ``step()`` runs, counting tensors that already exist.

    CPU: PyTorch's memory profiler (``torch.profiler`` with ``profile_memory``), whose timeline covers
    every tensor, parameters and optimizer state included. GPU: ``torch.cuda.max_memory_allocated``.
    Not process RSS, which also counts the Python interpreter, libraries and allocator caches.
    """
    import tempfile

    import torch

    device = device or next(model.parameters()).device.type
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        step()
        torch.cuda.synchronize()
        return int(torch.cuda.max_memory_allocated())
    from torch.profiler import ProfilerActivity, profile

    with _stderr_silenced(), warnings.catch_warnings():
        # torch 2.11 warns "Profiler clears events at the end of each cycle": one cycle here, nothing is lost
        warnings.filterwarnings("ignore", message="Profiler clears events", category=UserWarning)
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=True, with_stack=True) as prof:
            step()
    path = Path(tempfile.mkdtemp()) / "timeline.json"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "export_memory_timeline is deprecated": no replacement for CPU yet
        prof.export_memory_timeline(str(path), device="cpu")
    _, sizes = json.loads(path.read_text())
    return int(max(sum(s) for s in sizes))


@contextlib.contextmanager
def _stderr_silenced():
    """The profiler's C++ side logs each start/stop straight to file descriptor 2; hide that line noise."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
