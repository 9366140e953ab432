"""Thin wrappers over TRL: real ``SFTConfig``/``SFTTrainer`` objects with the profile's defaults.

The notebook decides *what* to train (data, masking, budget); this module only fills in the
plumbing (device, precision, output folder, logging) and records what happened.
"""

from __future__ import annotations

import functools
import tempfile
import time
from dataclasses import dataclass, field

from ftlab.models import hf_progress_bars_off


@dataclass
class TrainRun:
    """What a training run did: the trainer, wall time, and the logged losses."""

    trainer: object
    seconds: float
    steps: int
    losses: list[tuple[int, float]] = field(default_factory=list)  # (step, training loss)
    eval_losses: list[tuple[int, float]] = field(default_factory=list)
    history: list[dict] = field(default_factory=list)  # everything the trainer logged (reward, kl, ...)

    @property
    def model(self):
        return self.trainer.model

    @property
    def seconds_per_step(self) -> float:
        return self.seconds / max(1, self.steps)

    def logged(self, key: str) -> list[tuple[int, float]]:
        """``(step, value)`` for one logged metric, e.g. ``run.logged("kl")``."""
        return [(h["step"], h[key]) for h in self.history if key in h]


def sft_config(profile, **overrides):
    """An ``SFTConfig`` starting from the profile's defaults; any field can be overridden."""
    from trl import SFTConfig

    return SFTConfig(**_base_args(profile, "sft", {"learning_rate": profile.learning_rates["sft"], "max_length": 256,
                                                   **overrides}))


def train_sft(model, tokenizer, dataset, profile, eval_dataset=None, callbacks=None, peft_config=None,
              quiet: bool = False, **overrides) -> TrainRun:
    """Supervised fine-tuning with TRL's ``SFTTrainer`` (as ``sft_trainer_class`` computes its training loss).
    ``overrides`` go into ``SFTConfig``; a ``peft_config`` (e.g. ``peft.LoraConfig``) trains an adapter instead
    of every weight.
    ``quiet=True`` shows neither progress nor logs (for many short runs in a loop)."""
    from ftlab.formatting import check_conversations, check_template

    if "messages" in dataset.column_names or overrides.get("assistant_only_loss"):
        check_conversations(dataset)
    if overrides.get("assistant_only_loss"):
        check_template(tokenizer)
    if eval_dataset is not None:
        overrides.setdefault("eval_strategy", "steps")
        overrides.setdefault("eval_steps", overrides.get("logging_steps", 10))
    if peft_config is not None:
        overrides.setdefault("learning_rate", profile.learning_rates["lora"])
    config = sft_config(profile, quiet=quiet, **overrides)
    trainer = sft_trainer_class()(model=model, args=config, train_dataset=dataset, eval_dataset=eval_dataset,
                                  processing_class=tokenizer, callbacks=callbacks, peft_config=peft_config)
    return _run(trainer, quiet)


# TRL internals the loss override reads or writes (TRL 1.16); when a release lacks one, the override steps aside
TRL_PRIVATE = ("_total_train_tokens", "_metrics", "aux_loss_enabled", "_is_vision_dataset")
_warned_missing: set = set()


def _trl_private_missing(trainer) -> list[str]:
    """The TRL internals the override needs that ``trainer`` lacks (a renamed attribute in another release)."""
    missing = [name for name in TRL_PRIVATE if not hasattr(trainer, name)]
    if "_metrics" not in missing and not (isinstance(trainer._metrics, dict) and "train" in trainer._metrics):
        missing.append("_metrics['train']")
    if not hasattr(trainer.args, "loss_type"):
        missing.append("args.loss_type")
    return missing


@functools.cache
def sft_trainer_class() -> type:
    """TRL's ``SFTTrainer`` with the model's own loss in training: what ``train_sft`` builds.

    TRL 1.16 computes the SFT loss through a chunked "fused" LM head that also works out, on every step,
    each token's entropy and whether its label is the top-1 token (the ``entropy`` and
    ``mean_token_accuracy`` metrics), and recomputes the logits in its backward pass. On the course's tiny
    models on a CPU that head took 32% of a full fine-tuning step's CPU time and 30% of a LoRA step's
    (``torch.profiler``, 2026-11-30; steps 446 -> 360 ms and 479 -> 384 ms without it; README, Benchmarks). The loss is the one the model computes from ``labels``: the summed negative
    log-likelihood of the next tokens whose label is not -100, divided by their count in the batch (TRL's
    dataset preparation and collator put -100 on padding, on prompts under ``assistant_only_loss`` or
    completion-only loss, and on each packed sequence's first token). So a training step calls the model
    with its labels, as a hand-written loop does, and counts ``num_tokens`` as TRL does; it logs no
    ``entropy`` nor ``mean_token_accuracy`` (no lesson reads them). Evaluation, and anything that needs
    TRL's own loss (another ``loss_type``, label smoothing, ``compute_loss_func``, an MoE auxiliary loss,
    several processes or parallelism, vision data, PEFT prompt learning), keep TRL's ``compute_loss``.

    The override touches TRL internals (``TRL_PRIVATE``). When this TRL lacks any of them (renamed in a later
    release), it warns once and takes TRL's own ``compute_loss``: slower, never a different loss.
    tests/test_sft_loss.py compares loss, trained weights and token counts with TRL's ``SFTTrainer`` under
    both ``make test`` and ``make test-compat`` (newest and oldest TRL)."""
    import warnings
    import torch
    from trl import SFTTrainer

    class ModelLossSFTTrainer(SFTTrainer):
        def _trl_loss_needed(self, inputs: dict) -> bool:
            peft = getattr(self.model, "active_peft_config", None)
            return (not self.model.training or self.args.loss_type != "nll" or self.label_smoother is not None
                    or self.compute_loss_func is not None or self.aux_loss_enabled or not self.model_accepts_loss_kwargs
                    or self.accelerator.num_processes > 1 or self.accelerator.parallelism_config is not None
                    or self._is_vision_dataset or getattr(peft, "is_prompt_learning", False)
                    or "labels" not in inputs or "shift_labels" in inputs
                    or not ("attention_mask" in inputs or "position_ids" in inputs))

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            missing = self.__dict__.get("_ftlab_trl_missing")
            if missing is None:  # once per trainer, at its first loss: the attributes do not come and go
                missing = self._ftlab_trl_missing = _trl_private_missing(self)
            if missing:
                if tuple(missing) not in _warned_missing:
                    _warned_missing.add(tuple(missing))
                    warnings.warn(f"This TRL ({__import__('trl').__version__}) has no {', '.join(missing)}: ftlab's "
                                  "faster SFT loss steps aside and TRL's own compute_loss is used (same loss, "
                                  "slower).", RuntimeWarning, stacklevel=2)
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            if return_outputs or num_items_in_batch is None or self._trl_loss_needed(inputs):
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            # summed over the tokens with a label, divided by their count in the whole (accumulated) batch, at least 1:
            # TRL's division, so gradient accumulation and a batch without a labelled token behave as in TRL
            count = torch.as_tensor(num_items_in_batch).clamp(min=1)
            loss = model(**{**inputs, "use_cache": False, "num_items_in_batch": count}).loss
            # real tokens, padding excluded (a padding-free batch is one row with no padding), as TRL counts them
            mask = inputs.get("attention_mask")
            self._total_train_tokens += int(mask.sum()) if mask is not None else inputs["position_ids"].size(1)
            self._metrics["train"]["num_tokens"] = [self._total_train_tokens]
            return loss

    return ModelLossSFTTrainer


def fp32_trainables(model) -> None:
    """Mixed precision trains fp32 weights; autocast does the compute in bf16 or fp16 (``Profile.prepare``).

    Trained weights in 16 bits would lose small updates: ``torch.optim.AdamW`` keeps its states in the
    parameters' dtype, and an update below half a bf16 step (about 0.4% of the weight) rounds away —
    most of them at the gpu profile's learning rates. fp16's loss scaler cannot even unscale 16-bit
    gradients. So every weight that trains goes to fp32 here (a bf16-loaded model, TRL's bf16 QLoRA
    adapters, a bf16 reward model); frozen weights (LoRA's base) stay 16-bit, as loaded."""
    import torch

    for param in model.parameters():
        if param.requires_grad and param.dtype != torch.float32:
            param.data = param.data.float()


def _base_args(profile, kind: str, overrides: dict) -> dict:
    """The profile's defaults, a temporary output folder, and this kind of run's budget, then ``overrides``."""
    args = dict(profile.trl_defaults(), output_dir=tempfile.mkdtemp(prefix="ftlab-"), per_device_train_batch_size=16,
                lr_scheduler_type="cosine", warmup_steps=5, max_steps=profile.steps[kind])
    if overrides.pop("quiet", False):
        args["disable_tqdm"] = True
    args.update(overrides)
    if profile.smoke_steps:  # a smoke run (FTLAB_SMOKE_STEPS): every run stops early, whatever it asked for
        args["max_steps"] = min(args["max_steps"], profile.smoke_steps)
        args["warmup_steps"] = min(args.get("warmup_steps") or 0, profile.smoke_steps - 1)
    return args


def _run(trainer, quiet: bool = False) -> TrainRun:
    if trainer.args.fp16 or trainer.args.bf16:  # mixed precision: fp32 trained weights, 16-bit autocast
        fp32_trainables(trainer.model)  # what Profile.prepare does, after TRL built (and maybe cast) the model
    if quiet:
        from transformers.trainer_callback import PrinterCallback

        trainer.remove_callback(PrinterCallback)
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    trainer.model.eval()
    history = trainer.state.log_history
    return TrainRun(trainer, seconds, trainer.state.global_step,
                    [(h["step"], h["loss"]) for h in history if "loss" in h],
                    [(h["step"], h["eval_loss"]) for h in history if "eval_loss" in h], list(history))


def _check_pairs(dataset, needed=("prompt", "chosen", "rejected")) -> None:
    missing = [c for c in needed if c not in dataset.column_names]
    if missing:
        raise ValueError(f"A preference dataset needs the columns {list(needed)}; this one has "
                         f"{dataset.column_names} (missing {missing}). Rename yours with "
                         "dataset.rename_column(old, new), e.g. 'question' -> 'prompt', 'good' -> 'chosen'.")


def train_reward_model(model, tokenizer, pairs, profile, quiet: bool = False, **overrides) -> TrainRun:
    """Train a reward model (a sequence-classification model with one output) on preference pairs with
    TRL's ``RewardTrainer`` (Bradley–Terry loss). Extra columns (e.g. ``axis``) are dropped."""
    from trl import RewardConfig, RewardTrainer

    _check_pairs(pairs)
    pairs = pairs.select_columns(["prompt", "chosen", "rejected"])
    args = _base_args(profile, "reward", {"learning_rate": profile.learning_rates["reward"], "max_length": 128,
                                               "quiet": quiet, **overrides})
    trainer = RewardTrainer(model=model, args=RewardConfig(**args), train_dataset=pairs, processing_class=tokenizer)
    return _run(trainer, quiet)


def checkpoint_differs(model, tensors: int = 4) -> str | None:
    """The checkpoint ``model.config`` names (``_name_or_path``: what TRL reloads a reference model from) when a
    few of the model's tensors differ from that checkpoint's files, else None.

    Cheap: ``tensors`` tensors spread over the checkpoint are read from its safetensors files and compared, each
    in the narrower of the two dtypes (a bf16 checkpoint loaded in fp32 compares exactly; a bf16-loaded model
    upcast to fp32 for training too). A PEFT model (whose reference is the base with its adapter off), or a
    checkpoint whose files are not on this machine, cannot differ in this sense: None."""
    import torch

    if hasattr(model, "peft_config") or getattr(model, "config", None) is None:
        return None
    name = getattr(model.config, "_name_or_path", "") or ""
    files = _checkpoint_files(name)
    if not files:
        return None
    from safetensors import safe_open

    mine = dict(model.state_dict())
    keys = []
    for path in files:
        with safe_open(str(path), framework="pt") as f:
            keys += [(path, k) for k in f.keys() if k in mine]
    if not keys:
        return None
    for path, key in [keys[i * (len(keys) - 1) // max(1, tensors - 1)] for i in range(min(tensors, len(keys)))]:
        with safe_open(str(path), framework="pt") as f:
            saved = f.get_tensor(key)
        current = mine[key].detach().to("cpu")
        if saved.shape != current.shape:
            return name
        if saved.dtype == current.dtype or saved.element_size() != current.element_size():
            narrow = saved.dtype if saved.element_size() <= current.element_size() else current.dtype
            same = torch.equal(saved.to(narrow), current.to(narrow))
        else:  # bf16 against fp16: each rounds the other; a fine-tuned tensor moves further than that
            same = torch.allclose(saved.float(), current.float(), rtol=2**-7, atol=1e-7)
        if not same:
            return name
    return None


def _checkpoint_files(name: str) -> list:
    """The safetensors files of a local folder or of a hub id already in the local cache ([] when neither)."""
    import json
    from pathlib import Path

    folder = Path(name).expanduser() if name else None
    if folder is not None and folder.is_dir():
        return sorted(folder.glob("*.safetensors"))
    if not name or name.count("/") != 1:
        return []
    from huggingface_hub import try_to_load_from_cache

    single = try_to_load_from_cache(name, "model.safetensors")
    if isinstance(single, str):
        return [Path(single)]
    index = try_to_load_from_cache(name, "model.safetensors.index.json")
    if not isinstance(index, str):
        return []
    shards = sorted(set(json.loads(Path(index).read_text())["weight_map"].values()))
    found = [try_to_load_from_cache(name, shard) for shard in shards]
    return [Path(f) for f in found if isinstance(f, str)]


def _save_first(name: str, trainer: str) -> str:
    return (f"This policy's weights differ from {name!r}, the checkpoint its config names, and {trainer} reloads its "
            f"reference model from there: the reference would silently be that checkpoint, not the model you "
            f"start from. Save the policy first and load it from its folder: policy.save_pretrained(folder) and "
            f"tokenizer.save_pretrained(folder) (or ftlab.models.save_model(policy, tokenizer, folder)), then "
            f"policy, tokenizer = ftlab.load_model(folder, profile, for_training=True).")


def train_rloo(policy, tokenizer, prompts, reward_model, reward_tokenizer, profile, beta: float,
               callbacks=None, quiet: bool = False, **overrides) -> TrainRun:
    """Online RL with TRL's ``RLOOTrainer``: sample ``num_generations`` replies per prompt, score them with
    ``reward_model``, and push up the ones that beat the others' average (the leave-one-out baseline).
    ``beta`` weighs the KL penalty to the starting model (0: no leash, and no reference model is kept)."""
    from trl import RLOOConfig, RLOOTrainer

    if "prompt" not in prompts.column_names:
        raise ValueError(f"Online RL needs a 'prompt' column; this dataset has {prompts.column_names}.")
    # TRL 1.16's RLOOTrainer takes no reference model: it reloads one from the policy's config when beta > 0
    changed = checkpoint_differs(policy) if overrides.get("beta", beta) else None
    if changed is not None:
        raise ValueError(_save_first(changed, "RLOOTrainer"))
    args = _base_args(profile, "rl", {"learning_rate": profile.learning_rates["rl"], "beta": beta, "num_generations": 4,
                                           "max_completion_length": 24, "temperature": 1.0, "quiet": quiet, **overrides})
    with hf_progress_bars_off():  # TRL loads the reference model again from the policy's folder
        trainer = RLOOTrainer(model=policy, reward_funcs=reward_model, args=RLOOConfig(**args),
                              train_dataset=prompts.select_columns(["prompt"]), processing_class=tokenizer,
                              reward_processing_classes=reward_tokenizer, callbacks=callbacks)
    return _run(trainer, quiet)


def train_dpo(policy, tokenizer, pairs, profile, beta: float = 0.1, quiet: bool = False, **overrides) -> TrainRun:
    """Direct preference optimisation with TRL's ``DPOTrainer``: no reward model, no sampling; the
    starting model, frozen, is the reference. TRL reloads that reference from the checkpoint the policy's
    config names; when the policy's weights differ from it (fine-tuned in memory), a frozen copy of the
    policy as it is now is passed as ``ref_model`` instead."""
    import copy

    from trl import DPOConfig, DPOTrainer

    _check_pairs(pairs)
    reference = None
    if checkpoint_differs(policy) is not None:
        reference = copy.deepcopy(policy).eval().requires_grad_(False)
    args = _base_args(profile, "dpo", {"learning_rate": profile.learning_rates["dpo"], "beta": beta, "max_length": 128,
                                            "quiet": quiet, **overrides})
    with hf_progress_bars_off():  # TRL loads the reference model again from the policy's folder
        trainer = DPOTrainer(model=policy, ref_model=reference, args=DPOConfig(**args), processing_class=tokenizer,
                             train_dataset=pairs.select_columns(["prompt", "chosen", "rejected"]))
    return _run(trainer, quiet)
