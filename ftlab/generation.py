"""Generation and looking inside: continue prompts, read next-token probabilities, score answers."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Generation:
    prompt: str
    text: str
    stopped: bool  # the model produced a stop token before running out of new tokens
    new_tokens: int


def end_of_turn_id(tokenizer) -> int:
    """The token a chat template puts right after an assistant reply (``<|im_end|>`` for ChatML)."""
    if tokenizer.chat_template is None:
        return tokenizer.eos_token_id
    text = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "REPLY"}],
                                         tokenize=False)
    after = text[text.rindex("REPLY") + len("REPLY"):]
    ids = tokenizer(after, add_special_tokens=False)["input_ids"]
    return ids[0] if ids else tokenizer.eos_token_id


def chat_prompt(tokenizer, user_message: str | list[dict]) -> str:
    """The text a chat model sees before it answers: the template plus the assistant header."""
    messages = [{"role": "user", "content": user_message}] if isinstance(user_message, str) else user_message
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


@torch.no_grad()
def generate(model, tokenizer, prompts: list[str], max_new_tokens: int = 32, stop_ids: list[int] | None = None,
             do_sample: bool = False, temperature: float = 1.0, top_p: float = 1.0, batch_size: int = 64,
             seed: int | None = None) -> list[Generation]:
    """Continue each prompt (batched, left-padded). Stops at ``stop_ids`` (default: the model's EOS ids)."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a whole number of prompts, 1 or more (e.g. 64), not {batch_size!r}.")
    if stop_ids is None:
        eos = model.generation_config.eos_token_id
        stop_ids = list(eos) if isinstance(eos, (list, tuple)) else [eos if eos is not None else tokenizer.eos_token_id]
    if seed is not None:
        torch.manual_seed(seed)
    sampling = dict(do_sample=True, temperature=temperature, top_p=top_p, top_k=0) if do_sample else dict(
        do_sample=False, temperature=None, top_p=None, top_k=None)
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    out: list[Generation] = []
    try:
        for i in range(0, len(prompts), batch_size):
            chunk = prompts[i:i + batch_size]
            enc = tokenizer(chunk, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
            ids = model.generate(**enc, max_new_tokens=max_new_tokens, eos_token_id=stop_ids,
                                 pad_token_id=tokenizer.pad_token_id, **sampling)
            for prompt, row in zip(chunk, ids[:, enc["input_ids"].shape[1]:].tolist()):
                stop_at = next((j for j, t in enumerate(row) if t in stop_ids), None)
                kept = row if stop_at is None else row[:stop_at]
                out.append(Generation(prompt, tokenizer.decode(kept, skip_special_tokens=True), stop_at is not None,
                                      len(kept) + (stop_at is not None)))
    finally:
        tokenizer.padding_side = side
    return out


@torch.no_grad()
def next_token_probs(model, tokenizer, text: str, k: int = 10) -> list[tuple[str, float]]:
    """The ``k`` most likely next tokens after ``text`` and their probabilities."""
    ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"].to(model.device)
    probs = torch.softmax(model(ids).logits[0, -1].float(), dim=-1)
    top = torch.topk(probs, k)
    return [(tokenizer.decode([i]), p) for i, p in zip(top.indices.tolist(), top.values.tolist())]


@torch.no_grad()
def answer_logprob(model, tokenizer, prompt: str, answer: str) -> float:
    """log p(answer | prompt), summed over the answer's tokens."""
    p_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    a_ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([p_ids + a_ids], device=model.device)
    logprobs = torch.log_softmax(model(ids).logits[0, :-1].float(), dim=-1)
    targets = ids[0, len(p_ids):]
    return logprobs[len(p_ids) - 1:].gather(1, targets[:, None]).sum().item()
