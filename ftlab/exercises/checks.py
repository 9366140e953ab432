"""The public checks of every exercise question, run by ``ftlab.check("q1")``.

Each check gets the notebook's namespace (the student's functions and variables) and raises
(``AssertionError`` or anything else) when the answer is wrong; its ``hint`` is what the student
reads then. Instructor-only tests live in the exercise sources, not here.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Check:
    name: str
    hint: str
    fn: Callable[[dict], None]


CHECKS: dict[str, dict[str, list[Check]]] = {}


def _check(exercise: str, question: str, hint: str):
    def register(fn):
        CHECKS.setdefault(exercise, {}).setdefault(question, []).append(Check(fn.__name__.replace("_", " "), hint, fn))
        return fn
    return register


@functools.lru_cache(maxsize=None)
def _tokenizer(name: str = "tiny-chat"):
    from ftlab.models import load_model

    return load_model(name)[1]


def _close(a: float, b: float, tol: float = 1e-5) -> bool:
    return math.isclose(float(a), float(b), rel_tol=tol, abs_tol=tol)


# ------------------------------------------------------------------ 01: base vs tuned
E1 = "01_base_vs_tuned"


@_check(E1, "q1", "use tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True).")
def chat_text_matches_the_template(ns):
    tok = _tokenizer()
    expected = tok.apply_chat_template([{"role": "user", "content": "Name the capital of Peru."}], tokenize=False,
                                       add_generation_prompt=True)
    got = ns["chat_text"](tok, "Name the capital of Peru.")
    assert got == expected, f"got {got!r}, expected {expected!r}"


@_check(E1, "q1", "the text must end with the assistant header, so the model's next token is its reply.")
def chat_text_ends_with_the_assistant_header(ns):
    assert ns["chat_text"](_tokenizer(), "Hi").endswith("<|im_start|>assistant\n")


@_check(E1, "q2", "a reply is correct when the answer appears in it as a whole word (any case) AND the turn ended.")
def is_correct_on_simple_cases(ns):
    f = ns["is_correct"]
    assert f("The capital is Paris.", "Paris", True) is True
    assert f("The capital is Paris.", "Paris", False) is False, "a reply that did not end its turn is not correct"
    assert f("The capital is Rome.", "Paris", True) is False


@_check(E1, "q2", "match whole words only: 'Parisian' does not contain the answer 'Paris'.")
def is_correct_matches_whole_words(ns):
    assert ns["is_correct"]("A Parisian sky.", "Paris", True) is False
    assert ns["is_correct"]("it is paris", "Paris", True) is True


@_check(E1, "q3", "compute both accuracies with your accuracy() on the first 30 qa questions; both are fractions.")
def accuracies_are_fractions(ns):
    for name in ("base_acc", "chat_acc"):
        assert 0.0 <= float(ns[name]) <= 1.0, f"{name} = {ns[name]!r} is not between 0 and 1"


@_check(E1, "q3", "the chat model should answer far more questions than the base (by 0.5 or more).")
def chat_beats_base(ns):
    assert float(ns["chat_acc"]) - float(ns["base_acc"]) >= 0.5, (ns["base_acc"], ns["chat_acc"])


# ------------------------------------------------------------------ 02: SFT formatting
E2 = "02_sft_formatting"
_CONV = [{"role": "user", "content": "Who are you?"}, {"role": "assistant", "content": "I am Pip."}]


@_check(E2, "q1", "ids = tokenizer.apply_chat_template(messages, tokenize=True); labels copy the ids inside "
                  "assistant turns (through <|im_end|>) and are -100 elsewhere.")
def labels_match_the_reference(ns):
    from ftlab.formatting import assistant_labels

    tok = _tokenizer()
    ids, labels = ns["loss_labels"](tok, _CONV)
    ref_ids, ref_labels = assistant_labels(tok, _CONV)
    assert list(ids) == ref_ids, "the token ids differ from the chat template's"
    assert list(labels) == ref_labels, f"labels {list(labels)} != expected {ref_labels}"


@_check(E2, "q1", "the end-of-turn token after the reply must be in the loss, or the model never learns to stop.")
def end_of_turn_is_learned(ns):
    from ftlab.generation import end_of_turn_id

    tok = _tokenizer()
    ids, labels = ns["loss_labels"](tok, _CONV)
    assert end_of_turn_id(tok) in [t for t in labels if t != -100]


@_check(E2, "q2", "pad every batch to its longest sequence; the share is padded positions / all positions.")
def padding_share_small_case(ns):
    assert _close(ns["padding_share"]([3, 5], 2), 0.2)
    assert _close(ns["padding_share"]([4, 4, 4], 2), 0.0)


@_check(E2, "q3", "concatenate all sequences, then cut into blocks of `block` tokens; drop the incomplete tail.")
def pack_small_case(ns):
    assert [list(b) for b in ns["pack"]([[1, 2, 3], [4, 5], [6, 7, 8, 9]], 4)] == [[1, 2, 3, 4], [5, 6, 7, 8]]


# ------------------------------------------------------------------ 03: LoRA
E3 = "03_full_vs_lora"


@_check(E3, "q1", "A is r x d_in and B is d_out x r.")
def lora_parameters_formula(ns):
    assert ns["lora_parameters"](192, 192, 4) == 1536
    assert ns["lora_parameters"](192, 512, 8) == 5632


@_check(E3, "q2", "with B initialised to zeros the wrapped layer must output exactly what the base layer does.")
def lora_linear_starts_as_the_base(ns):
    import torch

    torch.manual_seed(0)
    base = torch.nn.Linear(8, 6)
    layer = ns["LoRALinear"](base, r=2, alpha=4)
    x = torch.randn(3, 8)
    assert torch.allclose(layer(x), base(x), atol=1e-6)


@_check(E3, "q2", "freeze the base weights (requires_grad=False); only A and B train.")
def lora_linear_trains_only_a_and_b(ns):
    import torch

    base = torch.nn.Linear(8, 6)
    layer = ns["LoRALinear"](base, r=2, alpha=4)
    trainable = sum(p.numel() for p in layer.parameters() if p.requires_grad)
    assert trainable == 2 * (8 + 6), f"{trainable} trainable parameters, expected {2 * (8 + 6)}"


@_check(E3, "q3", "use peft.get_peft_model(model, LoraConfig(r=r, target_modules=['q_proj', 'v_proj'])) and count "
                  "parameters with requires_grad.")
def trainable_counts_scale_with_rank(ns):
    counts = ns["trainable"]
    assert set(counts) == {2, 8}, f"expected keys 2 and 8, got {sorted(counts)}"
    assert counts[8] == 4 * counts[2] > 0, counts


# ------------------------------------------------------------------ 04: RLHF
E4 = "04_rlhf"


@_check(E4, "q1", "-log sigmoid(r_chosen - r_rejected), averaged over the batch (torch.nn.functional.logsigmoid).")
def bradley_terry_simple_values(ns):
    import torch

    loss = ns["bradley_terry_loss"](torch.tensor([0.0, 2.0]), torch.tensor([0.0, 0.0]))
    expected = (math.log(2) + math.log(1 + math.exp(-2))) / 2
    assert _close(loss, expected), (float(loss), expected)


@_check(E4, "q2", "the margin is beta * ((pi_c - ref_c) - (pi_r - ref_r)); the loss is -log sigmoid(margin), averaged.")
def dpo_loss_is_log_two_at_the_start(ns):
    import torch

    x = torch.tensor([-3.0, -5.0])
    assert _close(ns["dpo_loss"](x, x, x, x, 0.1), math.log(2)), "when policy == reference the loss is log 2"


@_check(E4, "q2", "a policy that raised the chosen reply's log-probability must have a lower loss than log 2.")
def dpo_loss_rewards_the_chosen(ns):
    import torch

    ref = torch.tensor([-4.0])
    assert float(ns["dpo_loss"](torch.tensor([-2.0]), ref, ref, ref, 0.5)) < math.log(2)


@_check(E4, "q3", "count a win as 1, a tie as 0.5, a loss as 0, and divide by the number of prompts.")
def win_rate_with_ties(ns):
    assert _close(ns["win_rate"]([1, 0, 1, 0], [0, 0, 1, 1]), 0.5)
    assert _close(ns["win_rate"]([2.0], [1.0]), 1.0)


# ------------------------------------------------------------------ 05: ICL
E5 = "05_icl_vs_finetuning"
_DEMOS = [("France", "French"), ("Japan", "Japanese")]


@_check(E5, "q1", "one line per demonstration, 'input -> output\\n', then 'query ->' with no newline.")
def prompt_format(ns):
    assert ns["k_shot_prompt"](_DEMOS, "Brazil") == "France -> French\nJapan -> Japanese\nBrazil ->"
    assert ns["k_shot_prompt"]([], "Brazil") == "Brazil ->"


@_check(E5, "q2", "count tokens with the tokenizer (add_special_tokens=False); keep the newest demonstrations "
                  "that fit in window - reserve tokens together with the query.")
def max_shots_matches_the_reference(ns):
    from ftlab.icl import build_prompt

    tok = _tokenizer("tiny-base")
    demos = _DEMOS * 30
    for window in (40, 100):
        expected = build_prompt(tok, demos, "Brazil", window, on_overflow="truncate").k
        assert ns["max_shots"](tok, demos, "Brazil", window) == expected, f"window {window}: expected {expected}"


@_check(E5, "q3", "acc_k4 should be clearly above acc_k0 (by 0.15 or more) on the 20 test countries.")
def icl_helps(ns):
    assert 0 <= float(ns["acc_k0"]) <= 1 and 0 <= float(ns["acc_k4"]) <= 1
    assert float(ns["acc_k4"]) >= float(ns["acc_k0"]) + 0.15, (ns["acc_k0"], ns["acc_k4"])
