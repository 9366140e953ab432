"""Thin wrappers over TRL: real ``SFTConfig``/``SFTTrainer`` objects with the profile's defaults.

The notebook decides *what* to train (data, masking, budget); this module only fills in the
plumbing (device, precision, output folder, logging) and records what happened.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field


@dataclass
class TrainRun:
    """What a training run did: the trainer, wall time, and the logged losses."""

    trainer: object
    seconds: float
    steps: int
    losses: list[tuple[int, float]] = field(default_factory=list)  # (step, training loss)
    eval_losses: list[tuple[int, float]] = field(default_factory=list)

    @property
    def model(self):
        return self.trainer.model

    @property
    def seconds_per_step(self) -> float:
        return self.seconds / max(1, self.steps)


def sft_config(profile, **overrides):
    """An ``SFTConfig`` starting from the profile's defaults; any field can be overridden."""
    from trl import SFTConfig

    args = dict(profile.trl_defaults(), output_dir=tempfile.mkdtemp(prefix="ftlab-"),
                per_device_train_batch_size=16, learning_rate=profile.learning_rates["sft"], lr_scheduler_type="cosine",
                warmup_steps=5, max_steps=profile.steps["sft"], max_length=256)
    args.update(overrides)
    return SFTConfig(**args)


def train_sft(model, tokenizer, dataset, profile, eval_dataset=None, callbacks=None, peft_config=None,
              quiet: bool = False, **overrides) -> TrainRun:
    """Supervised fine-tuning with TRL's ``SFTTrainer``. ``overrides`` go into ``SFTConfig``;
    a ``peft_config`` (e.g. ``peft.LoraConfig``) trains an adapter instead of every weight.
    ``quiet=True`` shows neither progress nor logs (for many short runs in a loop)."""
    from trl import SFTTrainer

    from ftlab.formatting import check_conversations, check_template

    if "messages" in dataset.column_names or overrides.get("assistant_only_loss"):
        check_conversations(dataset)
    if overrides.get("assistant_only_loss"):
        check_template(tokenizer)
    if eval_dataset is not None:
        overrides.setdefault("eval_strategy", "steps")
        overrides.setdefault("eval_steps", overrides.get("logging_steps", 10))
    if quiet:
        overrides["disable_tqdm"] = True
    if peft_config is not None:
        overrides.setdefault("learning_rate", profile.learning_rates["lora"])
    config = sft_config(profile, **overrides)
    trainer = SFTTrainer(model=model, args=config, train_dataset=dataset, eval_dataset=eval_dataset,
                         processing_class=tokenizer, callbacks=callbacks, peft_config=peft_config)
    if quiet:
        from transformers.trainer_callback import PrinterCallback

        trainer.remove_callback(PrinterCallback)
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    model.eval()
    history = trainer.state.log_history
    return TrainRun(trainer, seconds, trainer.state.global_step,
                    [(h["step"], h["loss"]) for h in history if "loss" in h],
                    [(h["step"], h["eval_loss"]) for h in history if "eval_loss" in h])
