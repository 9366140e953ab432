"""The gpu profile trains in mixed precision: fp32 trained weights (and AdamW states), bf16 autocast for the
compute. Checked on the CPU, where bf16 autocast runs too, at the gpu profile's own learning rates, which
are small enough that bf16 weights would round most updates away (issue 17: 2% of a bf16 weight's
entries change at all in 10 AdamW steps at DPO's 1e-6)."""

from dataclasses import replace

import pytest
import torch

import ftlab
from ftlab.profiles import GPU_LR
from ftlab.training import train_dpo, train_reward_model, train_sft


@pytest.fixture(scope="module")
def bf16_profile(profile):
    """The gpu profile's precision and learning rates, on the CPU: bf16 weights loaded, bf16 autocast."""
    return replace(profile, dtype="bfloat16", mixed_precision="bf16", learning_rates=dict(GPU_LR))


def moved(before: dict, model) -> dict[str, float]:
    """Per trained tensor, the share of its entries that changed (embeddings: within the rows that changed)."""
    out = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        old = before[name]
        changed = param.detach().float() != old.float()
        if "embed" in name:  # rows of tokens absent from the batches get no gradient
            rows = changed.any(dim=-1)
            out[name] = changed[rows].float().mean().item() if rows.any() else 0.0
        else:
            out[name] = changed.float().mean().item()
    return out


def snapshot(model) -> dict:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


STEPS = dict(max_steps=3, warmup_steps=0, lr_scheduler_type="constant", per_device_train_batch_size=4, quiet=True)


@pytest.mark.parametrize("kind", ["sft", "lora", "reward", "dpo"])
def test_mixed_precision_moves_every_trained_tensor_at_the_gpu_learning_rates(bf16_profile, world, kind):
    from ftlab.lora import lora_config
    from ftlab.rlhf import load_reward_model

    if kind == "reward":
        model, tok = load_reward_model("tiny-chat", bf16_profile)
    else:
        model, tok = ftlab.load_model("tiny-chat", bf16_profile, for_training=True)
    assert next(model.parameters()).dtype == torch.bfloat16  # loaded as the gpu profile loads it
    if kind == "lora":
        from peft import get_peft_model

        model = get_peft_model(model, lora_config(model, r=4))
    before = snapshot(model)
    pairs = world.preferences()["train"].select(range(12))
    chats = world.instructions()["train"].select(range(12))
    if kind in ("sft", "lora"):
        lr = dict(learning_rate=GPU_LR["lora"]) if kind == "lora" else {}  # (wrapped here, to see its weights before)
        run = train_sft(model, tok, chats, bf16_profile, assistant_only_loss=True, **lr, **STEPS)
    elif kind == "reward":
        run = train_reward_model(model, tok, pairs, bf16_profile, **STEPS)
    else:
        run = train_dpo(model, tok, pairs, bf16_profile, **STEPS)
    assert run.trainer.args.bf16 and run.trainer.args.learning_rate == GPU_LR[kind]
    shares = moved(before, run.model)
    still = {n: round(s, 3) for n, s in shares.items() if s < 0.9}
    assert not still, f"trained tensors whose entries barely moved at lr {GPU_LR[kind]}: {still}"
    trained = {n: p for n, p in run.model.named_parameters() if p.requires_grad}
    assert trained and all(p.dtype == torch.float32 for p in trained.values())
    if kind == "lora":  # the frozen base stays 16-bit
        assert all(p.dtype == torch.bfloat16 for n, p in run.model.named_parameters() if not p.requires_grad)
