"""How much memory does fine-tuning need? An estimate from the config alone, and a measurement.

``estimate(config, method=..., precision=...)`` takes any Llama-family ``transformers`` config (object
or dict; no weights needed) and returns the memory by component. ``measure_peak`` measures a real
training step's peak tensor memory (PyTorch's memory profiler on the CPU, ``max_memory_allocated`` on
a GPU) to check the estimate against.

``precision`` names the regime as Lightning does, and each counts what PyTorch allocates in it:

===============  ==================  ============  ===========  ==================  ===================
precision        trained weights     gradients     AdamW        frozen weights      compute (autocast)
===============  ==================  ============  ===========  ==================  ===================
``32-true``      fp32                fp32          2 × fp32     fp32                fp32
``bf16-true``    bf16                bf16          2 × bf16     bf16                bf16
``bf16-mixed``   fp32                fp32          2 × fp32     bf16                bf16 autocast
``16-mixed``     fp32                fp32          2 × fp32     fp16                fp16 autocast
===============  ==================  ============  ===========  ==================  ===================

So AdamW training costs 16 bytes per trained parameter in ``32-true`` and in mixed precision (the
fp32 weights *are* the master copy: autocast makes 16-bit copies for the matrix products, which are
counted with the activations), and 8 bytes in ``bf16-true``, where ``torch.optim.AdamW`` keeps its
states in the parameters' dtype (and small updates round away). LoRA adapters are fp32 in every
regime (PEFT keeps them so).

The estimate's model of one training step:

* **weights**: every parameter, in its dtype (QLoRA: 4-bit linear layers, embeddings and norms in 16 bits);
* **gradients**: one per *trained* parameter, in its dtype;
* **optimizer**: AdamW keeps two numbers per trained parameter in its dtype (8-bit AdamW: two bytes,
  SGD: none);
* **activations**: what the forward pass saves for the backward pass — per layer and token about
  ``8·d + 2·d_kv + 4·d_ff`` numbers (measured on HF's Llama), in the compute dtype, plus fp32 copies
  where the model upcasts (its RMSNorms; in mixed precision the whole residual stream of fp32
  weights), plus the logits (``vocab``-wide per token: the logits, their fp32 upcast, log-softmax
  and its gradient), plus autocast's 16-bit copies of the fp32 weights. Gradient checkpointing
  keeps only each layer's input, plus one layer's worth during recomputation.

**When activations and gradients are both live.** Backward runs from the loss to the first layer. It
starts with every activation saved and produces the output layer's weight gradient first (``vocab × d``
trained numbers in full fine-tuning, tied or not; none with LoRA); then each layer's backward frees that
layer's activations and allocates its weight gradients, so the two trade places layer by layer; at the end
every gradient exists while the first layer's activations are still held. With the layers alike, the sum is
largest at one end or the other, so the tensor peak is::

    weights + lora + optimizer + max(activations + output-layer gradients, gradients + one layer's activations)

(the optimizer step after backward adds nothing more with a fused or per-tensor AdamW: transformers' default
``adamw_torch_fused`` on a GPU, ``torch.optim.AdamW`` on a CPU; ``torch.optim.AdamW``'s ``foreach`` path on a
GPU would add one more trained-size temporary, not counted). ``MemoryEstimate.total`` is this tensor peak,
what ``measure_peak`` measures (tests/test_memory.py compares them on the CPU, within 10%).

**On a GPU** more is needed than the tensors: ``MemoryEstimate.device_total`` (what ``fits`` compares)
adds ``CUDA_CONTEXT`` (0.5 GiB: the CUDA context, cuBLAS workspace and kernels PyTorch loads; an assumption,
not measured in this project, which has no GPU to measure on — commonly reported at 0.3–0.5 GiB with CUDA's lazy
module loading, and up to ~1 GiB without it) and ``ALLOCATOR_MARGIN`` (10% of the tensor peak for the caching
allocator's fragmentation and rounding; also an assumption, not measured here).

The ``16-mixed`` regime (a T4) is measured against CPU fp16 autocast in tests/test_memory.py (no GPU here):
its tensors are the same sizes as on a GPU; the GPU's own allocator and kernels are not.
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


@dataclass(frozen=True)
class Precision:
    """Bytes per number of each kind of tensor in one precision regime."""

    trained: int  # trained weights, their gradients and (AdamW) their optimizer states
    frozen: int  # weights that do not train (LoRA's base)
    compute: int  # activations
    autocast: bool  # 16-bit copies of fp32 weights made for the matrix products


PRECISIONS = {
    "32-true": Precision(trained=4, frozen=4, compute=4, autocast=False),
    "bf16-true": Precision(trained=2, frozen=2, compute=2, autocast=False),
    "bf16-mixed": Precision(trained=4, frozen=2, compute=2, autocast=True),
    "16-mixed": Precision(trained=4, frozen=2, compute=2, autocast=True),
}
# the old ``dtype=`` argument, deprecated: each name maps to the regime it was used for
DTYPE_TO_PRECISION = {"fp32": "32-true", "float32": "32-true", "bf16": "bf16-true", "bfloat16": "bf16-true",
                      "fp16": "16-mixed", "float16": "16-mixed"}
OPTIMIZER_STATES = {"adamw": 2, "sgd": 0}  # states per trained parameter, each in the parameter's dtype
OPTIMIZER_BYTES = {"adamw8bit": 2}  # per trained parameter, whatever its dtype
OPTIMIZERS = tuple(OPTIMIZER_STATES) + tuple(OPTIMIZER_BYTES)
ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj")
MLP = ("gate_proj", "up_proj", "down_proj")
GIB = 2**30
CUDA_CONTEXT = 0.5 * GIB  # assumed, not measured here: CUDA context + cuBLAS workspace + loaded kernels
ALLOCATOR_MARGIN = 0.10  # assumed: the caching allocator's reserved memory over the tensor peak


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
    precision: str = "bf16-mixed"
    head_gradients: float = 0.0  # bytes: the output layer's weight gradient, the first one backward makes
    layer_activations: float = 0.0  # bytes: one decoder layer's saved activations, the last ones backward frees

    @property
    def total(self) -> float:
        """Peak tensor bytes of a training step (the module docstring's model): what ``measure_peak`` measures."""
        b = self.breakdown
        return b["weights"] + b["lora"] + b["optimizer"] + max(b["activations"] + self.head_gradients,
                                                              b["gradients"] + self.layer_activations)

    @property
    def device_total(self) -> float:
        """Bytes a GPU needs: the tensor peak, plus ``CUDA_CONTEXT`` and ``ALLOCATOR_MARGIN`` (both assumed)."""
        return self.total * (1 + ALLOCATOR_MARGIN) + CUDA_CONTEXT

    def gib(self) -> dict[str, float]:
        return {k: round(v / GIB, 3) for k, v in self.breakdown.items()} | {
            "total": round(self.total / GIB, 3), "device_total": round(self.device_total / GIB, 3)}

    def fits(self, gib: float) -> bool:
        """Whether a GPU with ``gib`` GiB holds the step: ``device_total``, context and allocator margin included."""
        return self.device_total <= gib * GIB


def estimate(config, method: str = "full", batch: int = 1, seq_len: int = 512, precision: str | None = None,
             optimizer: str = "adamw", lora_r: int = 16, lora_targets="all-linear",
             gradient_checkpointing: bool = False, dtype: str | None = None) -> MemoryEstimate:
    """Memory for one training step of ``method`` ("full", "lora" or "qlora") in ``precision``
    ("32-true", "bf16-true", "bf16-mixed" or "16-mixed"; default "bf16-mixed"), by component, in bytes.

    ``dtype=`` ("fp32", "bf16", "fp16") is deprecated: it maps to "32-true", "bf16-true", "16-mixed".
    """
    precision = _precision(precision, dtype)
    if method not in ("full", "lora", "qlora"):
        raise ValueError(f"method must be 'full', 'lora' or 'qlora', not {method!r}.")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, not {optimizer!r}.")
    for name, value in (("batch", batch), ("seq_len", seq_len)) + ((("lora_r", lora_r),) if method != "full" else ()):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive whole number, not {value!r}.")
    regime = PRECISIONS[precision]
    cfg = read_config(config)
    counts = parameter_counts(cfg)
    lora = lora_parameter_count(cfg, lora_r, lora_targets) if method != "full" else 0
    trainable = counts["total"] if method == "full" else lora
    trained_bytes = regime.trained if method == "full" else 4  # PEFT keeps adapters in fp32 in every regime
    if method == "full":
        weights = counts["total"] * regime.trained
    elif method == "lora":
        weights = counts["total"] * regime.frozen
    else:  # NF4: half a byte per weight plus ~0.127 bits of double-quantised scales; the rest in 16 bits
        weights = counts["linear"] * (0.5 + 0.127 / 8) + (counts["embeddings"] + counts["norms"]) * regime.frozen
    if optimizer in OPTIMIZER_BYTES:
        optimizer_bytes = trainable * OPTIMIZER_BYTES[optimizer]
    else:
        optimizer_bytes = trainable * OPTIMIZER_STATES[optimizer] * trained_bytes
    d, L, ff = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["intermediate_size"]
    kv = cfg["num_key_value_heads"] * cfg["head_dim"]
    # the residual stream runs in the embeddings' dtype: fp32 when they train in fp32 (full, mixed)
    residual = 4 if method == "full" and regime.trained == 4 else regime.compute
    # per layer and token, in bytes: the saved numbers in the compute dtype, plus the RMSNorms' fp32 upcasts
    # (2 norms × d; with an fp32 residual stream each norm keeps ~3 fp32 and 1 more 16-bit copy of d)
    per_layer = (8 * d + 2 * kv + 4 * ff) * regime.compute
    if regime.compute != 4:
        per_layer += 16 * d if residual == 4 else 4 * d
    if method != "full" and regime.compute != 4 and not regime.autocast:
        per_layer += 4 * _adapter_inputs(cfg, lora_targets)  # PEFT runs fp32 adapters on fp32 copies of their inputs
    layers = L * d * residual + per_layer if gradient_checkpointing else L * per_layer
    one_layer = batch * seq_len * per_layer  # checkpointed or not, one layer's worth is live at backward's end
    logits = cfg["vocab_size"] * (12 if regime.compute == 4 else 14)  # logits (+ fp32 upcast), log-softmax, gradient
    activations = batch * seq_len * (layers + logits)
    if regime.autocast:  # a 16-bit copy of every fp32 weight a matrix product uses (the output layer too)
        fp32_in_matmuls = counts["linear"] + cfg["vocab_size"] * d if method == "full" else lora
        activations += 2 * fp32_in_matmuls
    head = cfg["vocab_size"] * d * trained_bytes if method == "full" else 0  # LoRA leaves the output layer alone
    return MemoryEstimate(method, counts["total"], trainable, {
        "weights": weights, "lora": lora * 4, "gradients": trainable * trained_bytes,
        "optimizer": optimizer_bytes, "activations": activations}, precision,
        head_gradients=head, layer_activations=one_layer)


def _precision(precision: str | None, dtype: str | None) -> str:
    if dtype is not None:
        if precision is not None:
            raise ValueError("Pass precision= only (dtype= is deprecated and means the same thing less exactly).")
        if dtype not in DTYPE_TO_PRECISION:
            raise ValueError(f"dtype must be one of {', '.join(DTYPE_TO_PRECISION)}, not {dtype!r}; better, pass "
                             f"precision= one of {', '.join(PRECISIONS)}.")
        precision = DTYPE_TO_PRECISION[dtype]
        warnings.warn(f"estimate(dtype={dtype!r}) is deprecated and will be removed in the next release: "
                      f"pass precision={precision!r} (one of {', '.join(PRECISIONS)}).", DeprecationWarning, stacklevel=3)
    precision = precision or "bf16-mixed"
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)} (Lightning's names), not {precision!r}.")
    return precision


def _adapter_inputs(cfg: dict, targets) -> int:
    """Numbers per layer and token in the distinct inputs of the adapted layers (q/k/v share one, gate/up one)."""
    d, ff, q = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_attention_heads"] * cfg["head_dim"]
    names = set(linear_shapes(cfg)) if targets == "all-linear" else set(targets)
    return ((d if names & {"q_proj", "k_proj", "v_proj"} else 0) + (q if "o_proj" in names else 0)
            + (d if names & {"gate_proj", "up_proj"} else 0) + (ff if "down_proj" in names else 0))


def precision_of(profile) -> str:
    """The regime a profile trains in: "32-true" (fp32), "bf16-mixed" or "16-mixed"."""
    return {None: "32-true", "bf16": "bf16-mixed", "fp16": "16-mixed"}[profile.mixed_precision]


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
