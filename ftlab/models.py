"""Loading models: the bundled tiny ones, a hub id, or a local folder, through one code path."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from ftlab.formatting import with_generation_markers

MODELS_DIR = Path(__file__).parent / "assets" / "models"
BUNDLED = ("tiny-base", "tiny-chat", "tiny-base-induction")


class ModelNotFoundError(ValueError):
    """The name is neither a bundled model, a local folder, nor (when online) a hub id."""


class ModelTooBigError(RuntimeError):
    """The model does not fit in the device's free memory."""


def resolve(name: str | os.PathLike) -> str:
    """Bundled name -> its folder; a local folder -> itself; anything shaped like a hub id -> itself."""
    text = str(name)
    if text in BUNDLED:
        path = MODELS_DIR / text
        if not (path / "config.json").exists():
            raise ModelNotFoundError(f"The bundled model {text!r} is missing from {path}. Rebuild it with "
                                     "`ftlab build-models`, or reinstall ftlab.")
        return str(path)
    if Path(text).expanduser().is_dir():
        path = Path(text).expanduser()
        if not (path / "config.json").exists():
            raise ModelNotFoundError(f"{path} is a folder but holds no config.json: pass a folder written by "
                                     "`save_pretrained`, a hub id, or one of " + ", ".join(BUNDLED) + ".")
        return str(path)
    if text.count("/") == 1 and all(text.split("/")):
        return text  # a hub id such as HuggingFaceTB/SmolLM2-135M
    raise ModelNotFoundError(f"Unknown model {text!r}. Use one of the bundled models ({', '.join(BUNDLED)}), "
                             "a local folder written by `save_pretrained`, or a hub id like "
                             "'HuggingFaceTB/SmolLM2-135M' (gpu profile, needs internet).")


@contextlib.contextmanager
def hf_progress_bars_off():
    """No "Loading weights" / "Writing model shards" bars: noise in a lesson."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.enable_progress_bar()


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")


def load_model(name: str | os.PathLike, profile=None, for_training: bool = False, load_in_4bit: bool = False):
    """Return ``(model, tokenizer)`` for ``tiny-base``, ``tiny-chat``, a hub id, or a local path.

    The model is put on the profile's device and dtype (fp32 on the CPU; bf16 on a GPU with native bf16,
    fp16 on one without, such as a T4) and in eval mode. Training is mixed precision there: the weights that
    train become fp32 (``profile.prepare``, which ``ftlab.training`` calls), frozen ones (a LoRA base) stay
    16-bit, and autocast computes in 16 bits. A 16-bit model loaded here refuses to train under autocast
    (one line saying to call ``profile.prepare(trainer.model)``) while any trained weight is still 16-bit.
    ``for_training`` is kept for the notebooks' readability: it loads the same dtype.
    Every name goes through the same ``from_pretrained`` calls; only where the files come from differs.
    ``load_in_4bit=True`` quantises the linear layers to NF4 with bitsandbytes (QLoRA; CUDA only).
    """
    import torch
    from transformers import AutoModelForCausalLM

    source = resolve(name)
    is_local = Path(source).is_dir()
    device = profile.device if profile is not None else "cpu"
    dtype = profile.torch_dtype if profile is not None else torch.float32
    extra = {}
    if load_in_4bit:
        extra = _four_bit(device, profile)
        dtype = extra["quantization_config"].bnb_4bit_compute_dtype  # norms and embeddings stay in compute dtype
    try:
        if device == "cuda":  # refuse a model that cannot fit before downloading its weights
            from transformers import AutoConfig

            config = AutoConfig.from_pretrained(source, local_files_only=is_local or _offline())
            check_fits(config, torch.cuda.mem_get_info()[0], dtype=str(dtype).replace("torch.", ""), name=source,
                       method="qlora" if load_in_4bit else "full", precision=_precision(profile))
        tokenizer = _tokenizer(source, is_local)
        with hf_progress_bars_off():
            model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype, local_files_only=is_local or _offline(),
                                                         **extra)
    except OSError as err:
        if not is_local and _offline():
            raise ModelNotFoundError(
                f"{source!r} is a hub model, and this session is offline (the cpu profile sets HF_HUB_OFFLINE=1), "
                "so it cannot be downloaded. Use 'tiny-base' / 'tiny-chat', or switch to the gpu profile with "
                "internet (FTLAB_PROFILE=gpu), or download it elsewhere and pass its folder.") from None
        raise ModelNotFoundError(f"Could not load {source!r}: {err}") from None
    try:
        if not load_in_4bit:  # a quantised model is placed by device_map and cannot be moved
            model.to(device)
    except torch.OutOfMemoryError:
        gib = sum(p.numel() * p.element_size() for p in model.parameters()) / 2**30
        free = torch.cuda.mem_get_info()[0] / 2**30 if torch.cuda.is_available() else 0.0
        raise ModelTooBigError(f"{source!r} needs {gib:.1f} GiB for its weights alone, and the GPU has {free:.1f} GiB "
                               "free. Pick a smaller model (e.g. HuggingFaceTB/SmolLM2-135M), free memory "
                               "(restart the kernel), or load it in 4-bit (lesson 3, QLoRA).") from None
    model.eval()
    if profile is not None and profile.mixed_precision is not None and not load_in_4bit:
        guard_precision(model, profile.mixed_precision)
    return model, tokenizer


def guard_precision(model, mixed_precision: str) -> None:
    """Make ``model`` refuse, at its first training forward pass under autocast, to train 16-bit weights.

    Plain TRL with ``profile.trl_defaults()`` runs autocast, but leaves the weights as loaded: bf16 weights
    would give bf16 AdamW states (small updates round away), fp16 ones break fp16's loss scaler. The check
    runs on the input embeddings' forward (inside the model's forward, so inside autocast even where
    accelerate wraps ``model.forward``), covers adapters PEFT adds later, and removes itself once passed."""
    import torch

    target = model.get_input_embeddings()
    if target is None:
        return
    handle = None

    def check(module, args):
        if not (module.training and torch.is_grad_enabled()):
            return
        if not any(torch.is_autocast_enabled(kind) for kind in ("cuda", "cpu")):
            return  # a hand-written loop without autocast trains in the weights' own dtype, knowingly
        wrong = [(n, p.dtype) for n, p in model.named_parameters() if p.requires_grad and p.dtype != torch.float32]
        if wrong:
            name, dtype = wrong[0]
            why = ("fp16's loss scaler cannot unscale 16-bit gradients" if mixed_precision == "fp16"
                   else "AdamW would keep 16-bit states and round small updates away")
            raise RuntimeError(
                f"{len(wrong)} trained weight tensors are {str(dtype).replace('torch.', '')} (e.g. {name}) under "
                f"{mixed_precision} mixed precision: {why}. Call profile.prepare(trainer.model) after building the "
                "trainer and before trainer.train() (ftlab.training's train_* do it for you).")
        handle.remove()

    handle = target.register_forward_pre_hook(check)


def _precision(profile) -> str:
    from ftlab.memory import precision_of

    return precision_of(profile) if profile is not None else "32-true"


def _four_bit(device: str, profile) -> dict:
    """``from_pretrained`` arguments for NF4 weights with double-quantised scales (the QLoRA recipe)."""
    import torch

    if device != "cuda":
        raise RuntimeError("4-bit loading (QLoRA) needs a CUDA GPU; this is the cpu profile. Train a LoRA "
                           "adapter on the full-precision model instead (lora_config), or run on a GPU.")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise ImportError("4-bit loading (QLoRA) needs bitsandbytes: `pip install bitsandbytes`, then restart "
                          "the kernel.") from None
    from transformers import BitsAndBytesConfig

    # bf16 compute where the GPU has it natively; a T4 computes in fp16
    compute = torch.bfloat16 if profile is not None and profile.mixed_precision == "bf16" else torch.float16
    quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                               bnb_4bit_compute_dtype=compute)
    return {"quantization_config": quant, "device_map": {"": torch.cuda.current_device()}}


def _tokenizer(source: str, is_local: bool):
    """The tokenizer every ftlab model gets: a pad token, and a chat template with generation markers."""
    from transformers import AutoTokenizer

    with hf_progress_bars_off():
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=is_local or _offline())
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    with_generation_markers(tokenizer)
    return tokenizer


def load_tokenizer(name: str | os.PathLike):
    """Just the tokenizer of ``name`` (bundled, local folder or hub id), set up as ``load_model`` sets it up."""
    source = resolve(name)
    try:
        return _tokenizer(source, Path(source).is_dir())
    except OSError as err:
        raise ModelNotFoundError(f"Could not load the tokenizer of {source!r}: {err}") from None


def check_fits(config, free_bytes: float, dtype: str = "bfloat16", name: str = "model", method: str = "full",
               precision: str = "bf16-mixed") -> None:
    """Raise ``ModelTooBigError`` when the weights alone (as ``method`` stores them: "full" in ``dtype``,
    "qlora" in 4 bits) need more than ``free_bytes``, with the memory calculator's figures for full
    fine-tuning, LoRA and QLoRA in ``precision``, and what to try. Configs the calculator cannot read
    (not Llama-like) pass: loading itself decides then."""
    from ftlab.memory import GIB, ConfigError, estimate, parameter_counts, read_config

    try:
        cfg = read_config(config)
    except ConfigError:
        return
    if method not in ("full", "qlora"):
        raise ValueError("method must be 'full' (weights in dtype) or 'qlora' (weights in 4 bits)")
    size = {"float32": 4, "bfloat16": 2, "float16": 2}.get(dtype)
    if size is None:
        raise ValueError(f"dtype must be 'float32', 'bfloat16' or 'float16', not {dtype!r}.")
    full, lora, qlora = (estimate(cfg, m, precision=precision) for m in ("full", "lora", "qlora"))
    weights = parameter_counts(cfg)["total"] * size
    if (qlora.breakdown["weights"] if method == "qlora" else weights) <= free_bytes:
        return
    raise ModelTooBigError(
        f"{name} does not fit: {full.parameters / 1e9:.2f}B parameters need {weights / GIB:.1f} GiB "
        f"for the weights alone in {dtype}, and the GPU has {free_bytes / GIB:.1f} GiB free. A training step "
        f"(batch 1, 512 tokens, {precision}) needs about {full.total / GIB:.1f} GiB for full fine-tuning, "
        f"{lora.total / GIB:.1f} GiB with LoRA and {qlora.total / GIB:.1f} GiB with QLoRA. Try QLoRA (lesson 3) if "
        "that fits, a smaller model (e.g. HuggingFaceTB/SmolLM2-360M), or free GPU memory (restart the kernel).")


def count_parameters(model, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def save_model(model, tokenizer, folder: str | os.PathLike | None = None) -> str:
    """Save a model and its tokenizer (to a new temporary folder when none is given) so that
    ``load_model(folder)`` loads them again; returns the folder."""
    import tempfile

    folder = str(folder or tempfile.mkdtemp(prefix="ftlab-model-"))
    with hf_progress_bars_off():
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
    return folder
