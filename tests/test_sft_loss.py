"""``train_sft``'s trainer takes the model's own loss, not TRL's fused LM head (``ftlab.training.sft_trainer_class``):
the same loss, the same trained weights and the same ``num_tokens`` as TRL's ``SFTTrainer``."""

import pytest
import torch

import ftlab
from ftlab import bench, training
from ftlab.lora import lora_config
from ftlab.models import load_tokenizer
from ftlab.training import sft_config, sft_trainer_class, train_sft


def _batch_and_losses(profile, name, dataset, **config):
    """One training batch, and the loss (and tokens counted) of TRL's ``compute_loss`` and ftlab's on it."""
    from trl import SFTTrainer

    model, tok = ftlab.load_model(name, profile, for_training=True)
    trainer = sft_trainer_class()(model=model, args=sft_config(profile, per_device_train_batch_size=8, **config),
                                  train_dataset=dataset, processing_class=tok)
    batch = trainer._prepare_inputs(next(iter(trainer.get_train_dataloader())))
    n = trainer._get_num_items_in_batch([batch], batch["input_ids"].device)
    trainer.model.train()
    out = {}
    for side, compute_loss in (("trl", SFTTrainer.compute_loss), ("ftlab", type(trainer).compute_loss)):
        trainer._metrics["train"].clear()
        before = trainer._total_train_tokens
        out[side] = (compute_loss(trainer, trainer.model, dict(batch), num_items_in_batch=n).item(),
                     trainer._total_train_tokens - before, "entropy" in trainer._metrics["train"])
    return batch, out


@pytest.mark.parametrize("case", ["plain", "assistant_only", "packed_padding_free"])
def test_model_loss_equals_trl_fused_loss(profile, world, case):
    if case == "plain":  # a base model on raw token rows of varied length: padding is -100
        dataset = bench._texts(load_tokenizer("tiny-base"), 16, 64)
        batch, out = _batch_and_losses(profile, "tiny-base", dataset, max_length=64)
        assert (batch["labels"] == -100).any()
    elif case == "assistant_only":  # prompts are -100 too
        dataset = world.instructions()["train"].select(range(16))
        batch, out = _batch_and_losses(profile, "tiny-chat", dataset, assistant_only_loss=True)
        assert ((batch["labels"] == -100) & (batch["attention_mask"] == 1)).any()
    else:  # one row of packed conversations, no attention mask: each sequence's first token is -100
        dataset = world.instructions()["train"].select(range(32))
        batch, out = _batch_and_losses(profile, "tiny-chat", dataset, assistant_only_loss=True, packing=True,
                                       padding_free=True, max_length=128)
        assert "attention_mask" not in batch and batch["input_ids"].shape[0] == 1
        assert (batch["position_ids"] == 0).sum() > 1
    (trl_loss, trl_tokens, trl_entropy), (ours, our_tokens, our_entropy) = out["trl"], out["ftlab"]
    assert trl_entropy and not our_entropy  # each side took its own path: ftlab's skips the fused head's metrics
    assert ours == pytest.approx(trl_loss, abs=1e-5, rel=1e-5) and trl_loss > 0
    assert our_tokens == trl_tokens > 0


@pytest.mark.parametrize("lora", [False, True])
def test_trained_weights_and_num_tokens_as_with_trl(profile, world, monkeypatch, lora):
    """tiny-base, not tiny-chat: tiny-chat already fits these conversations (loss ~0.002), and on its near-zero
    gradients Adam's normalised step turns float rounding (the fused head sums in another order) into visible
    differences of a few weights."""
    from trl import SFTTrainer

    def run(trainer_class):
        monkeypatch.setattr(training, "sft_trainer_class", lambda: trainer_class)
        model, tok = ftlab.load_model("tiny-base", profile, for_training=True)
        peft = lora_config(model, r=4) if lora else None
        torch.manual_seed(0)  # the adapter's initial weights
        out = train_sft(model, tok, world.instructions()["train"].select(range(48)), profile, peft_config=peft,
                        max_steps=6, per_device_train_batch_size=8, logging_steps=2, assistant_only_loss=True,
                        quiet=True)
        return out, {n: p.detach().clone() for n, p in out.model.named_parameters() if p.requires_grad}

    trl_run, trl_weights = run(SFTTrainer)
    our_run, our_weights = run(sft_trainer_class())
    assert type(our_run.trainer) is sft_trainer_class() and type(trl_run.trainer) is SFTTrainer
    assert trl_weights.keys() == our_weights.keys() and len(our_weights) > 0
    for name, weight in trl_weights.items():
        torch.testing.assert_close(our_weights[name], weight, atol=1e-5, rtol=1e-5, msg=name)
    tokens = [(h["step"], h["num_tokens"]) for h in trl_run.history if "num_tokens" in h]
    assert len(tokens) == 3 and tokens == [(h["step"], h["num_tokens"]) for h in our_run.history if "num_tokens" in h]
    assert [loss for _, loss in our_run.losses] == pytest.approx([loss for _, loss in trl_run.losses], abs=1e-4)
    assert any("entropy" in h for h in trl_run.history) and not any("entropy" in h for h in our_run.history)


@pytest.mark.parametrize("missing", training.TRL_PRIVATE)
def test_a_trl_without_the_private_attributes_gets_trl_loss_and_one_warning(profile, world, monkeypatch, missing):
    """A TRL release that renames an internal the override uses: TRL's own loss, with one warning, never an
    AttributeError mid-training or a quietly different loss. ``_is_vision_dataset`` (which TRL's compute_loss
    does not read) is really deleted; the others are renamed on ftlab's side, since TRL's own loss reads them."""
    import warnings

    from trl import SFTTrainer

    monkeypatch.setattr(training, "_warned_missing", set())
    model, tok = ftlab.load_model("tiny-chat", profile, for_training=True)
    trainer = sft_trainer_class()(model=model, args=sft_config(profile, per_device_train_batch_size=8),
                                  train_dataset=world.instructions()["train"].select(range(16)), processing_class=tok)
    batch = trainer._prepare_inputs(next(iter(trainer.get_train_dataloader())))
    if missing == "_is_vision_dataset":
        del trainer._is_vision_dataset
    else:
        monkeypatch.setattr(training, "TRL_PRIVATE", tuple(n + "_v2" if n == missing else n for n in training.TRL_PRIVATE))
    n = trainer._get_num_items_in_batch([batch], batch["input_ids"].device)
    trainer.model.train()
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        ours = [trainer.compute_loss(trainer.model, dict(batch), num_items_in_batch=n).item() for _ in range(2)]
    said = [str(w.message) for w in seen if issubclass(w.category, RuntimeWarning)]
    assert len(said) == 1 and missing in said[0] and "TRL's own compute_loss" in said[0], said
    assert "entropy" in trainer._metrics["train"]  # TRL's path ran
    theirs = SFTTrainer.compute_loss(trainer, trainer.model, dict(batch), num_items_in_batch=n).item()
    assert ours == pytest.approx([theirs] * 2, abs=1e-6)
