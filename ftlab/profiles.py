"""Runtime profiles: one call at the top of every notebook decides how the lesson runs.

``cpu``: the bundled tiny models, fp32, offline (no network is ever attempted).
``gpu``: real hub models (SmolLM2), bigger step budgets; weights loaded in bf16 where the GPU has it
natively (bf16 autocast), else in fp16 (a T4: fp16 autocast with loss scaling). In both, what trains
is fp32 (``Profile.prepare``) and a frozen base stays 16-bit. ``FTLAB_PROFILE=cpu|gpu`` overrides the choice;
``FTLAB_BASE_MODEL`` / ``FTLAB_CHAT_MODEL`` swap in another base/chat pair (hub ids or folders).

Release checks without a GPU (``make test-real-lessons``): ``FTLAB_PROFILE=gpu FTLAB_DEVICE=cpu`` runs the gpu
profile's code path (16-bit weights, fp32 trainables, bf16 autocast) on the CPU, and ``FTLAB_SMOKE_STEPS=N``
caps every training run at N steps and reports, instead of raising, a lesson check that fails (``ftlab.smoke``).
"""

from __future__ import annotations

import os
import random
import sys
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

PROFILES = ("cpu", "gpu")


@dataclass(frozen=True)
class Profile:
    """What a lesson needs to know about where it runs."""

    name: str
    reason: str
    device: str
    dtype: str  # dtype to load weights in: "float32", "bfloat16" or "float16"
    base_model: str
    chat_model: str
    offline: bool
    mixed_precision: str | None = None  # None, "bf16" or "fp16" (autocast during training)
    steps: dict[str, int] = field(default_factory=dict)
    learning_rates: dict[str, float] = field(default_factory=dict)  # full fine-tuning ("sft") and "lora"
    seed: int = 0
    smoke_steps: int | None = None  # FTLAB_SMOKE_STEPS: every training run capped at this many steps

    @property
    def torch_dtype(self):
        import torch

        return getattr(torch, self.dtype)

    def trl_defaults(self) -> dict:
        """Keyword arguments every TRL config in the course starts from.

        TRL's own defaults (bf16 and gradient checkpointing) are wrong on a CPU: slower, and bf16
        is emulated there. Pass these into ``SFTConfig(**profile.trl_defaults(), ...)``, and call
        ``profile.prepare(trainer.model)`` before ``trainer.train()`` (fp32 weights that train).
        """
        from dataclasses import fields

        from transformers import TrainingArguments

        # transformers >= 5.2x renamed gradient_checkpointing; use whichever name this version knows
        names = {f.name for f in fields(TrainingArguments)}
        checkpointing = "activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing"
        return dict(
            bf16=self.mixed_precision == "bf16",
            fp16=self.mixed_precision == "fp16",
            **{checkpointing: False},
            use_cpu=self.device == "cpu",
            report_to="none",
            save_strategy="no",
            seed=self.seed,
            data_seed=self.seed,
            dataloader_num_workers=0,
            logging_steps=10,
        )

    def prepare(self, model):
        """The course's precision policy, applied to ``model`` just before it trains; returns ``model``.

        Under bf16 or fp16 mixed precision every parameter that trains becomes fp32 (so AdamW's states,
        made in the parameters' dtype, are fp32 too, and fp16's loss scaler gets fp32 gradients), while
        frozen weights (a LoRA base) keep the 16-bit dtype they were loaded in; autocast does the 16-bit
        compute. Without mixed precision (the cpu profile) nothing changes.

        Call it on what will train, after the trainer is built (TRL wraps a ``peft_config`` into the model,
        and casts QLoRA adapters to bf16, inside its constructor)::

            trainer = SFTTrainer(model=model, args=SFTConfig(**profile.trl_defaults(), ...), ...)
            profile.prepare(trainer.model)
            trainer.train()

        ``ftlab.training``'s ``train_*`` call it themselves. A model from ``ftlab.load_model`` in 16 bits
        refuses to train under autocast until it has been called."""
        from ftlab.training import fp32_trainables

        if self.mixed_precision is not None:
            fp32_trainables(model)
        return model

    def describe(self) -> str:
        text = (f"ftlab profile '{self.name}' ({self.reason}): base {model_label(self.base_model)} / chat "
                f"{model_label(self.chat_model)} on {self.device}, {self.dtype}"
                f"{' + ' + self.mixed_precision + ' autocast' if self.mixed_precision else ''}"
                f"{', offline' if self.offline else ''}.")
        if self.base_model == self.chat_model:
            text += (" No pretrained-only base model is available here, so the chat model stands in for the base: "
                     "what the lesson says about the base model does not apply to this run.")
        if self.smoke_steps:
            text += (f" Smoke run (FTLAB_SMOKE_STEPS={self.smoke_steps}): every training run stops after "
                     f"{self.smoke_steps} steps, and a check that fails is reported, not raised.")
        return text

    def models(self) -> str:
        """Which model is the base (pretrained only) and which the chat model (instruction-tuned), in words."""
        return (f"base model (pretrained only, not tuned to chat): {model_label(self.base_model)}\n"
                f"chat model (instruction-tuned): {model_label(self.chat_model)}")


def model_label(name: str) -> str:
    """A model's name as a lesson should print it: bundled, hub id, the real-model folder, or a folder."""
    import json
    from pathlib import Path

    from ftlab.models import BUNDLED

    if name in BUNDLED:
        return f"{name} (bundled)"
    source = Path(name).expanduser() / "ftlab-source.json"
    if source.is_file():  # built by `ftlab real-model`
        return f"{json.loads(source.read_text())['model']} at {name}"
    return name


# lesson 4 trains two reward models, two RLOO policies and one DPO policy in its 90 seconds: 40/20/12 steps
# (measured: reward-model held-out accuracy 0.9 at 50 steps, 0.87 at 30, and the learner's labels carried over to
# new pairs by 6 of 24 at 40 steps, 3 at 30; unleashed RLOO hacked the reward in 30 steps at 1e-3, not at 8e-4,
# and still in 20 (true measure 0.36 -> 0.16, KL 2.8 times the leashed run's); DPO won over SFT 0.62 of the time
# at 12 steps (with the SFT term: 0.62 at 12, under 0.60 at 8); a TRL step of these tiny models costs about the same
# whatever the batch, so steps are the budget)
CPU_STEPS = {"sft": 100, "lora": 150, "reward": 40, "rl": 20, "dpo": 12}
# sized for a T4 with SmolLM2-135M: each lesson's training under ~9 minutes (tests/test_profiles.py has the sums)
GPU_STEPS = {"sft": 150, "lora": 150, "reward": 100, "rl": 25, "dpo": 100}
# a 2M-parameter model trained from a small init wants large steps; a 135M pretrained one would be wrecked by them
CPU_LR = {"sft": 1e-3, "lora": 2e-3, "reward": 1e-3, "rl": 1e-3, "dpo": 3e-4}
GPU_LR = {"sft": 5e-5, "lora": 2e-4, "reward": 2e-5, "rl": 3e-6, "dpo": 1e-6}


def choose_profile(requested: str | None = None, seed: int = 0) -> Profile:
    """Pick a profile from ``requested``, else ``$FTLAB_PROFILE``, else the hardware. No side effects."""
    import torch

    requested = requested or os.environ.get("FTLAB_PROFILE") or None
    has_cuda = torch.cuda.is_available()
    if requested is not None and requested not in PROFILES:
        raise ValueError(f"Unknown profile {requested!r}: use one of {', '.join(PROFILES)} "
                         "(or unset FTLAB_PROFILE to choose from the hardware).")
    forced_cpu = _forced_cpu()
    if requested == "gpu" and not has_cuda and not forced_cpu:
        raise RuntimeError("The 'gpu' profile needs a CUDA GPU and none is visible. "
                           "Use FTLAB_PROFILE=cpu, or on Colab pick Runtime > Change runtime type > GPU.")
    name = requested or ("gpu" if has_cuda else "cpu")
    chosen = _profile(name, requested, has_cuda and not forced_cpu, seed, forced_cpu)
    smoke = _smoke_steps()
    if smoke:
        chosen = replace(chosen, smoke_steps=smoke)
    # FTLAB_BASE_MODEL / FTLAB_CHAT_MODEL: another pair (a hub id or a local folder), same code path
    chosen = replace(chosen, base_model=os.environ.get("FTLAB_BASE_MODEL", chosen.base_model),
                     chat_model=os.environ.get("FTLAB_CHAT_MODEL", chosen.chat_model))
    # learning rates belong to the model, not the hardware: tiny models need large steps wherever they run
    small = _parameters(chosen.base_model)
    if small is not None:
        chosen = replace(chosen, learning_rates=dict(CPU_LR if small < SMALL_MODEL else GPU_LR))
    return chosen


def _forced_cpu() -> bool:
    """``FTLAB_DEVICE=cpu``: the gpu profile's code path on the CPU (a release check; see the module docstring)."""
    device = os.environ.get("FTLAB_DEVICE", "").strip().lower()
    if device not in ("", "cpu", "cuda"):
        raise ValueError(f"FTLAB_DEVICE={device!r}: use cpu (the gpu profile's code path on the CPU), or unset it.")
    return device == "cpu"


def _smoke_steps() -> int | None:
    raw = os.environ.get("FTLAB_SMOKE_STEPS", "").strip()
    if not raw:
        return None
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"FTLAB_SMOKE_STEPS={raw!r}: give a whole number of training steps, at least 1, or unset it.")
    return int(raw)


SMALL_MODEL = 50_000_000  # parameters; below this a model gets the tiny models' learning rates


def _parameters(name: str) -> int | None:
    """Parameter count from a bundled or local model's config.json (None for a hub id: not read offline)."""
    import json
    from pathlib import Path

    from ftlab.models import BUNDLED, MODELS_DIR

    folder = MODELS_DIR / name if name in BUNDLED else Path(name).expanduser()
    config = folder / "config.json"
    if not config.is_file():
        return None
    from ftlab.memory import ConfigError, parameter_counts, read_config

    try:
        return parameter_counts(read_config(json.loads(config.read_text())))["total"]
    except ConfigError:
        return None


def _profile(name: str, requested: str | None, has_cuda: bool, seed: int, forced_cpu: bool = False) -> Profile:
    import torch

    reason = f"FTLAB_PROFILE={requested}" if requested else ("a CUDA GPU is visible" if has_cuda else "no CUDA GPU found")
    if not has_cuda and "google.colab" in sys.modules:
        reason = ("this Colab runtime has no GPU, so the lesson runs on the bundled tiny models; for real models "
                  "pick Runtime > Change runtime type > T4 GPU and run the notebook again")
    if name == "cpu":
        return Profile("cpu", reason, "cpu", "float32", "tiny-base", "tiny-chat", offline=True,
                       steps=dict(CPU_STEPS), learning_rates=dict(CPU_LR), seed=seed)
    if forced_cpu:  # the gpu profile's code path on the CPU, in bf16 autocast (which CPUs run)
        native_bf16, device, gpu = True, "cpu", "FTLAB_DEVICE=cpu, the gpu profile's code path on the CPU"
    else:
        # a T4 answers True through (slow) emulation unless asked for native support only
        native_bf16, device, gpu = torch.cuda.is_bf16_supported(including_emulation=False), "cuda", torch.cuda.get_device_name(0)
    # weights in 16 bits either way: a frozen base stays so, what trains goes to fp32 (Profile.prepare);
    # ftlab.memory's "16-mixed" regime assumes the same fp16 frozen base
    return Profile("gpu", f"{reason}: {gpu}", device, "bfloat16" if native_bf16 else "float16",
                   "HuggingFaceTB/SmolLM2-135M", "HuggingFaceTB/SmolLM2-135M-Instruct", offline=False,
                   mixed_precision="bf16" if native_bf16 else "fp16", steps=dict(GPU_STEPS), learning_rates=dict(GPU_LR), seed=seed)


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def setup(profile: str | None = None, seed: int = 0, quiet: bool = False) -> Profile:
    """Choose the profile, configure the process for it, seed everything, print one line.

    In the ``cpu`` profile this sets ``HF_HUB_OFFLINE=1`` so nothing reaches for the network,
    and uses every core for PyTorch (or ``OMP_NUM_THREADS`` of them, when set).
    """
    chosen = choose_profile(profile, seed)
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    chosen, fallback = without_hub(chosen)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if chosen.offline:
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["HF_DATASETS_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
        _refresh_hub_offline_flag()
    import datasets
    import torch

    datasets.disable_progress_bars()  # "Tokenizing train dataset" bars are plumbing, not the lesson
    # deprecation notices from inside transformers/peft say nothing a learner can act on
    warnings.filterwarnings("ignore", message=".*is deprecated and will be removed.*", category=FutureWarning)
    if chosen.device == "cpu":
        torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS") or os.cpu_count() or 1)))
    seed_everything(seed)
    if chosen.smoke_steps:
        from ftlab.smoke import install

        install(chosen.smoke_steps)
    if not quiet:
        if fallback:
            print(fallback)
        print(chosen.describe())
    return chosen


def _hub_reachable(repo_id: str) -> bool:
    """True when ``repo_id``'s config is in the local hub cache, or the hub answers about it within 10 s."""
    from huggingface_hub import model_info, try_to_load_from_cache

    if isinstance(try_to_load_from_cache(repo_id, "config.json"), str):
        return True
    try:
        model_info(repo_id, timeout=10)
        return True
    except Exception:  # no network, a proxy, DNS, the hub down: all mean "cannot download"
        return False


def without_hub(chosen: Profile) -> tuple[Profile, str | None]:
    """The gpu profile on a machine that cannot reach the hub (offline flags set, or the first lookup fails):
    the bundled tiny pair instead of hub ids, offline from then on, and one line saying so (else None)."""
    from ftlab.models import _offline, resolve

    hub_ids = [m for m in (chosen.base_model, chosen.chat_model) if not Path(resolve(m)).is_dir()]
    if chosen.offline or not hub_ids:
        return chosen, None
    if _offline():
        why = "HF_HUB_OFFLINE is set"
    elif not _hub_reachable(hub_ids[0]):
        why = f"the Hugging Face hub did not answer for {hub_ids[0]}"
    else:
        return chosen, None
    base = chosen.base_model if chosen.base_model not in hub_ids else "tiny-base"
    chat = chosen.chat_model if chosen.chat_model not in hub_ids else "tiny-chat"
    small = _parameters(base)
    rates = dict(CPU_LR if small is not None and small < SMALL_MODEL else chosen.learning_rates)
    from ftlab.real_model import cached

    real = cached()
    hint = (f" (a real chat model is built at {real}: FTLAB_CHAT_MODEL={real})" if real
            else " (for a real SmolLM2-135M-Instruct without the hub: `ftlab real-model`, then FTLAB_CHAT_MODEL=<its folder>)")
    for key in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        os.environ[key] = "1"
    _refresh_hub_offline_flag()
    line = f"No model hub here ({why}): using {base} / {chat} instead of {' / '.join(hub_ids)}{hint}."
    return replace(chosen, base_model=base, chat_model=chat, offline=True, learning_rates=rates), line


def _refresh_hub_offline_flag() -> None:
    """huggingface_hub reads HF_HUB_OFFLINE at import time; make an already-imported hub see it."""
    import sys

    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:
        constants.HF_HUB_OFFLINE = True
