"""The gpu profile's library code on the real SmolLM2-135M-Instruct (``ftlab real-model``), on the CPU.
Small on purpose (few steps, short sequences): it checks that the code paths work on a real model with a
49k vocabulary and its own chat template, not what training achieves."""

import json
from dataclasses import replace

import pytest
import torch

import ftlab
from ftlab.generation import chat_prompt, end_of_turn_id, generate

CONVERSATION = [{"role": "system", "content": "You are brief."},
                {"role": "user", "content": "What is the capital of France?"},
                {"role": "assistant", "content": "The capital of France is Paris."},
                {"role": "user", "content": "And of Italy?"},
                {"role": "assistant", "content": "Rome."}]


def test_the_folder_is_a_plain_llama_with_its_source_recorded(real_folder, real_chat):
    source = json.loads(open(f"{real_folder}/ftlab-source.json").read())
    assert source["parameters"] == 134_515_008 and len(source["sha256"]) == 64
    model, tok = real_chat
    config = json.loads(open(f"{real_folder}/config.json").read())
    assert "quantization_config" not in config and type(model).__name__ == "LlamaForCausalLM"
    assert len(tok) == 49152 and ftlab.profiles.model_label(real_folder).startswith("SmolLM2-135M-Instruct")


def test_assistant_only_loss_masks_exactly_the_replies_of_the_real_template(real_folder, real_chat):
    """SmolLM2's own template has no {% generation %} markers; ftlab swaps in its ChatML template with them.
    Both must render the same text, and the mask must cover each reply and its <|im_end|>, nothing else."""
    from transformers import AutoTokenizer

    from ftlab.formatting import assistant_labels, has_generation_markers

    _, tok = real_chat
    original = AutoTokenizer.from_pretrained(real_folder)
    assert not has_generation_markers(original.chat_template) and has_generation_markers(tok.chat_template)
    assert tok.apply_chat_template(CONVERSATION, tokenize=False) == original.apply_chat_template(CONVERSATION,
                                                                                                 tokenize=False)
    ids, labels = assistant_labels(tok, CONVERSATION)
    assert ids == original.apply_chat_template(CONVERSATION, tokenize=True, return_dict=True)["input_ids"]
    # expected, token by token: the tokens of "<reply><|im_end|>" for each assistant turn, in order
    expected = []
    for reply in ("The capital of France is Paris.", "Rome."):
        expected += original(reply + "<|im_end|>", add_special_tokens=False)["input_ids"]
    assert [t for t, lab in zip(ids, labels) if lab != -100] == expected
    mask = tok.apply_chat_template(CONVERSATION, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    assert [t for t, m in zip(mask["input_ids"], mask["assistant_masks"]) if m] == expected  # what TRL uses


def test_generation_stops_at_im_end(real_chat):
    model, tok = real_chat
    assert tok.convert_ids_to_tokens(end_of_turn_id(tok)) == "<|im_end|>"
    out = generate(model, tok, [chat_prompt(tok, "What is the capital of France?")], max_new_tokens=24,
                   stop_ids=[end_of_turn_id(tok)])[0]
    assert out.stopped and "Paris" in out.text, out


def test_ftlab_eval_on_the_worlds_questions(real_folder, capsys):
    from ftlab.cli import main

    assert main(["eval", real_folder, "--task", "qa", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    print(summary)
    # measured 2026-11-30 (205 questions, 32 new tokens): mentions the answer 0.55, ends its turn 0.40, both 0.25.
    # SmolLM2 answers in whole sentences and runs past 32 tokens on many questions, so "ended" is well under 1;
    # a broken stop token gives 0 and a broken model mentions nothing
    assert summary["n"] >= 100 and summary["mentions_answer"] >= 0.4 and summary["ended_turn"] >= 0.25, summary
    assert summary["accuracy"] > 0.2, summary


def test_icl_prompts_with_its_vocabulary(real_chat, world):
    from ftlab.icl import accuracy, build_prompt, context_window, predict, sample_demos

    model, tok = real_chat
    task = world.icl_task()
    pool = list(zip(task["train"]["input"], task["train"]["output"]))
    queries = list(zip(task["test"]["input"], task["test"]["output"]))[:6]
    assert context_window(tok, model) == 8192
    prompts = [build_prompt(tok, sample_demos(pool, 8, seed=i, exclude=x), x, window=context_window(tok, model)).text
               for i, (x, _) in enumerate(queries)]
    preds = predict(model, tok, prompts, max_new_tokens=6)
    assert all(0.0 <= p.probability <= 1.0 for p in preds if p.text)
    assert accuracy(preds, [y for _, y in queries]) >= 0.5, [(p.text, y) for p, (_, y) in zip(preds, queries)]


def precisions(real_profile):
    bf16 = replace(real_profile, dtype="bfloat16", mixed_precision="bf16")
    return {"fp32": real_profile, "bf16-mixed": bf16}


SHORT = dict(max_steps=2, warmup_steps=0, per_device_train_batch_size=2, quiet=True)


@pytest.mark.parametrize("precision", ["fp32", "bf16-mixed"])
def test_a_few_steps_of_lora_sft_reward_and_dpo(real_profile, world, precision):
    from ftlab.lora import lora_config
    from ftlab.rlhf import load_reward_model
    from ftlab.training import train_dpo, train_reward_model, train_sft

    profile = precisions(real_profile)[precision]
    chats = world.instructions()["train"].select(range(4))
    pairs = world.preferences()["train"].select(range(4))
    model, tok = ftlab.load_model(profile.chat_model, profile, for_training=True)
    run = train_sft(model, tok, chats, profile, peft_config=lora_config(model, r=4), assistant_only_loss=True,
                    max_length=64, **SHORT)
    assert run.steps == 2 and all(torch.isfinite(torch.tensor(loss)) for _, loss in run.losses or [(0, 0.0)])
    rm, rm_tok = load_reward_model(profile.chat_model, profile)
    run = train_reward_model(rm, rm_tok, pairs, profile, max_length=64, **SHORT)
    assert run.steps == 2 and {p.dtype for p in run.model.parameters() if p.requires_grad} == {torch.float32}
    del rm, run
    policy, tok = ftlab.load_model(profile.chat_model, profile, for_training=True)
    run = train_dpo(policy, tok, pairs, profile, max_length=64, **SHORT)
    assert run.steps == 2 and {p.dtype for p in run.model.parameters() if p.requires_grad} == {torch.float32}


def test_memory_estimate_at_135m_scale(real_folder):
    """The calculator against a measured LoRA step (bf16 frozen base, fp32 adapters, bf16 autocast: what
    the gpu profile trains in) of the real 135M model."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from ftlab.memory import estimate, measure_peak

    model = AutoModelForCausalLM.from_pretrained(real_folder, dtype=torch.bfloat16).train()
    model = get_peft_model(model, LoraConfig(r=8, target_modules="all-linear"))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    x = torch.randint(0, model.config.vocab_size, (2, 128))

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = model(input_ids=x, labels=x).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    step()
    measured = measure_peak(model, step)
    predicted = estimate(model.config, "lora", batch=2, seq_len=128, precision="bf16-mixed", lora_r=8).total
    print(f"SmolLM2-135M LoRA bf16-mixed 2 x 128: estimate {predicted:,.0f} B, measured {measured:,} B, "
          f"{predicted / measured - 1:+.1%}")
    assert 0.75 * measured <= predicted <= 1.25 * measured, (predicted, measured)
