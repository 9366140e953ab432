import math

import torch

from ftlab.generation import answer_logprob, chat_prompt, generate, next_token_probs
from ftlab.training import sft_config, train_sft


def test_next_token_probs_are_a_distribution_head(tiny_base):
    probs = next_token_probs(*tiny_base, "The capital of France is", k=5)
    assert len(probs) == 5 and probs[0][0] == " Paris"
    assert all(a[1] >= b[1] for a, b in zip(probs, probs[1:])) and sum(p for _, p in probs) <= 1.0 + 1e-6


def test_answer_logprob_matches_the_token_probabilities(tiny_base):
    model, tok = tiny_base
    top = dict(next_token_probs(model, tok, "The capital of France is", k=3))
    assert math.isclose(answer_logprob(model, tok, "The capital of France is", " Paris"), math.log(top[" Paris"]),
                        rel_tol=1e-4)
    assert answer_logprob(model, tok, "The capital of France is", " Paris") > answer_logprob(
        model, tok, "The capital of France is", " Rome")


def test_generate_is_batched_padded_and_reports_stopping(tiny_chat):
    model, tok = tiny_chat
    prompts = [chat_prompt(tok, "What is the capital of France?"), chat_prompt(tok, "What is the opposite of hot? Tell me.")]
    together = generate(model, tok, prompts, max_new_tokens=20)
    alone = [generate(model, tok, [p], max_new_tokens=20)[0] for p in prompts]
    assert [g.text for g in together] == [g.text for g in alone]
    assert all(g.stopped for g in together) and "Paris" in together[0].text
    short = generate(model, tok, prompts[:1], max_new_tokens=2)[0]
    assert not short.stopped and short.new_tokens == 2
    a = generate(model, tok, prompts, do_sample=True, temperature=1.5, seed=3)
    b = generate(model, tok, prompts, do_sample=True, temperature=1.5, seed=3)
    assert [g.text for g in a] == [g.text for g in b]  # seeded sampling is reproducible


def test_sft_config_uses_the_profile(profile):
    config = sft_config(profile, learning_rate=5e-4)
    assert config.learning_rate == 5e-4 and config.max_steps == profile.steps["sft"]
    assert config.bf16 is False and config.use_cpu


def test_train_sft_records_losses_and_learns(profile, world):
    import ftlab

    model, tok = ftlab.load_model("tiny-base", profile, for_training=True)
    before = [p.detach().clone() for p in model.parameters()]
    run = train_sft(model, tok, world.instructions()["train"].select(range(64)), profile, max_steps=8,
                    logging_steps=2, assistant_only_loss=True, disable_tqdm=True)
    assert run.steps == 8 and len(run.losses) == 4 and run.losses[-1][1] < run.losses[0][1]
    assert any(not torch.equal(a, b) for a, b in zip(before, run.model.parameters()))
    assert not run.model.training


def test_fp16_mixed_precision_trains_fp32_weights_even_where_trl_casts_them_to_bf16(profile):
    """TRL casts a quantised model's LoRA weights to bf16; fp16's loss scaler cannot unscale those (seen on a
    GPU in the T4 path): the trainable weights go back to fp32, the frozen ones stay as they are."""
    from peft import LoraConfig, get_peft_model

    import ftlab
    from ftlab.training import fp32_trainables

    model = get_peft_model(ftlab.load_model("tiny-chat", profile)[0], LoraConfig(r=4, target_modules=["q_proj"]))
    for name, param in model.named_parameters():
        if param.requires_grad or "embed" in name:
            param.data = param.data.to(torch.bfloat16)
    fp32_trainables(model)
    dtypes = {(p.requires_grad, p.dtype) for n, p in model.named_parameters() if p.requires_grad or "embed" in n}
    assert dtypes == {(True, torch.float32), (False, torch.bfloat16)}
