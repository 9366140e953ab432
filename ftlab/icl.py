"""In-context learning: k-shot prompts, the context window, and scoring predictions.

A demonstration is one ``input -> output`` line, the list format the tiny base model read in
pre-training. ``build_prompt`` refuses (or, if asked, visibly truncates) a prompt that does not fit
the model's context window: an over-long prompt must never become a silent wrong answer.
``new_facts`` is a mapping no pre-training text contains (lesson 5's "new facts"); ``coverage`` is the
share of queries whose own fact is in the prompt, the most that even a perfect copier could answer.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import torch

from ftlab.generation import answer_logprob, generate


class ContextWindowError(ValueError):
    pass


#: the labels of ``new_facts``: short animal names the tiny models know as words
MASCOTS = ("owl", "fox", "bear", "wolf", "lion", "deer", "swan", "goose", "eagle", "seal",
           "frog", "duck", "horse", "sheep", "goat", "pig", "cow", "cat", "dog", "mouse")


def made_up_word(rng: random.Random) -> str:
    """A pronounceable word of 2-3 consonant-vowel syllables, e.g. ``Kelobu``."""
    consonants, vowels = "bcdfghklmnprstvz", "aeiou"
    return "".join(rng.choice(consonants) + rng.choice(vowels) for _ in range(rng.randint(2, 3))).capitalize()


def new_facts(seed: int = 0, n: int = 99) -> list[tuple[str, str]]:
    """``(word, animal)`` pairs: ``n`` words of an invented language, each naming an animal, drawn at random.

    The words are made up (none is a name in the world), so no pre-training text pairs them with anything:
    a model can only answer them from the prompt (in-context) or from training on them.
    """
    from ftlab.facts import COUNTRIES

    taken = {name for row in COUNTRIES for name in row if name}
    rng = random.Random(f"made-up-{seed}")
    words: list[str] = []
    while len(words) < n:
        word = made_up_word(rng)
        if word not in words and word not in taken:
            words.append(word)
    return [(word, rng.choice(MASCOTS)) for word in words]


def coverage(demos: list[tuple[str, str]], queries: list[tuple[str, str]]) -> float:
    """Share of ``queries`` whose own pair is among ``demos``: the ceiling of a perfect copier."""
    shown = set(demos)
    return sum(q in shown for q in queries) / max(1, len(queries))


def max_demos(tokenizer, demos: list[tuple[str, str]], query: str, window: int, reserve: int = 8) -> int:
    """How many of ``demos`` (taken from the front) fit in one prompt with ``query``."""
    lo, hi = 0, len(demos)
    while lo < hi:  # the prompt grows with every demonstration, so bisect on the count
        mid = (lo + hi + 1) // 2
        try:
            build_prompt(tokenizer, demos[:mid], query, window, reserve)
            lo = mid
        except ContextWindowError:
            hi = mid - 1
    return lo


def plateau(curve: dict[int, float], tolerance: float) -> int:
    """The smallest k whose accuracy is within ``tolerance`` of the best k: where more demonstrations stop paying."""
    best = max(curve.values())
    return min(k for k, acc in curve.items() if acc >= best - tolerance)


@dataclass
class Prompt:
    text: str
    k: int  # demonstrations actually in the prompt
    dropped: int  # demonstrations removed to fit the context window
    tokens: int


def demo_line(x: str, y: str) -> str:
    return f"{x} -> {y}\n"


def context_window(tokenizer, model=None) -> int:
    """The number of positions the model was trained on (what fits in one prompt)."""
    if model is not None and getattr(model.config, "max_position_embeddings", None):
        return int(model.config.max_position_embeddings)
    return int(tokenizer.model_max_length)


def build_prompt(tokenizer, demos: list[tuple[str, str]], query: str, window: int, reserve: int = 8,
                 on_overflow: str = "error") -> Prompt:
    """``demos`` as lines, then ``query ->``. ``reserve`` tokens are kept free for the answer.

    If the prompt does not fit in ``window``: ``on_overflow="error"`` raises a ``ContextWindowError``
    that says how many demonstrations fit; ``"truncate"`` drops the oldest demonstrations and
    reports how many in ``Prompt.dropped``.
    """
    lines = [demo_line(x, y) for x, y in demos]
    tail = f"{query} ->"
    sizes = [len(tokenizer(line, add_special_tokens=False)["input_ids"]) for line in lines]
    budget = window - reserve - len(tokenizer(tail, add_special_tokens=False)["input_ids"])
    fits = 0
    while fits < len(lines) and sum(sizes[len(lines) - fits - 1:]) <= budget:
        fits += 1
    if fits < len(lines):
        if on_overflow == "error":
            raise ContextWindowError(
                f"{len(lines)} demonstrations need {sum(sizes) + window - budget} tokens, but the context window is "
                f"{window} tokens: at most {fits} demonstrations fit. Use fewer (k <= {fits}), use "
                "on_overflow='truncate' to drop the oldest ones visibly, or fine-tune instead of prompting.")
        if on_overflow != "truncate":
            raise ValueError("on_overflow must be 'error' or 'truncate'")
    kept = lines[len(lines) - fits:]
    text = "".join(kept) + tail
    return Prompt(text, fits, len(lines) - fits, len(tokenizer(text, add_special_tokens=False)["input_ids"]))


def sample_demos(pool: list[tuple[str, str]], k: int, seed: int, exclude: str | None = None) -> list[tuple[str, str]]:
    """``k`` demonstrations drawn from ``pool`` (never the query itself), reproducibly."""
    candidates = [d for d in pool if d[0] != exclude]
    return random.Random(seed).sample(candidates, k)


@dataclass
class Prediction:
    text: str
    probability: float  # of the whole predicted answer, token by token


@torch.no_grad()
def predict(model, tokenizer, prompts: list[str], max_new_tokens: int = 8, with_probability: bool = True) -> list[Prediction]:
    """Greedy answer to each prompt (the first line of the continuation) and, optionally, its probability."""
    gens = generate(model, tokenizer, prompts, max_new_tokens=max_new_tokens, stop_ids=[])
    preds = []
    for prompt, g in zip(prompts, gens):
        answer = g.text.split("\n")[0].strip()
        prob = _probability(model, tokenizer, prompt, " " + answer) if answer and with_probability else float("nan")
        preds.append(Prediction(answer, prob))
    return preds


def _probability(model, tokenizer, prompt: str, answer: str) -> float:
    return math.exp(answer_logprob(model, tokenizer, prompt, answer))


def accuracy(predictions: list[Prediction], answers: list[str]) -> float:
    return sum(p.text == a for p, a in zip(predictions, answers)) / max(1, len(answers))
