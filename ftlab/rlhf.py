"""Learning from preferences: scoring replies with a reward model, the true measure the fact base
gives, sampling replies from a policy, and comparing policies (win rate, KL to a reference).

The trainers themselves (``RewardTrainer``, ``RLOOTrainer``, ``DPOTrainer``) are wrapped in
``ftlab.training``; this module is what a lesson needs around them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from transformers import TrainerCallback

from ftlab.generation import chat_prompt, end_of_turn_id, generate


def load_reward_model(name: str | os.PathLike, profile=None, seed: int = 0):
    """``(model, tokenizer)``: ``name``'s transformer with a fresh one-output head on its last token.

    The head is new (random, drawn from ``seed``, so two reward models loaded alike start alike), so
    transformers reports it as newly initialised; training gives it meaning. Loaded in the profile's
    dtype (not the checkpoint's); under mixed precision the trainers train it in fp32 (``ftlab.training``).
    """
    from transformers import AutoModelForSequenceClassification

    from ftlab.models import hf_progress_bars_off, load_tokenizer, resolve

    tokenizer = load_tokenizer(name)  # set up as every ftlab model's tokenizer
    source = resolve(name)
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # "some weights were newly initialized": yes, the reward head, on purpose
    try:
        with hf_progress_bars_off(), torch.random.fork_rng(devices=[]):  # the caller's random state is left alone
            torch.manual_seed(seed)
            dtype = profile.torch_dtype if profile is not None else torch.float32
            model = AutoModelForSequenceClassification.from_pretrained(source, num_labels=1, dtype=dtype)
    finally:
        hf_logging.set_verbosity(level)
    model.config.pad_token_id = tokenizer.pad_token_id
    device = profile.device if profile is not None else "cpu"
    return model.to(device).eval(), tokenizer


def _conversation(prompt: str | list[dict], reply: str | list[dict]) -> list[dict]:
    prompt = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
    reply = [{"role": "assistant", "content": reply}] if isinstance(reply, str) else list(reply)
    return prompt + reply


@torch.no_grad()
def reward_scores(model, tokenizer, prompts: list, replies: list, batch_size: int = 64) -> torch.Tensor:
    """The reward model's score for each (prompt, reply); prompts/replies are strings or message lists,
    formatted with the chat template exactly as TRL's trainers format them."""
    if len(prompts) != len(replies):
        raise ValueError(f"{len(prompts)} prompts but {len(replies)} replies: pass one reply per prompt.")
    texts = [tokenizer.apply_chat_template(_conversation(p, r), tokenize=False) for p, r in zip(prompts, replies)]
    side, tokenizer.padding_side = tokenizer.padding_side, "right"
    out = []
    try:
        for i in range(0, len(texts), batch_size):
            enc = tokenizer(texts[i:i + batch_size], return_tensors="pt", padding=True, add_special_tokens=False)
            out.append(model(**enc.to(model.device)).logits[:, 0].float().cpu())
    finally:
        tokenizer.padding_side = side
    return torch.cat(out) if out else torch.empty(0)


@dataclass
class PairAccuracy:
    accuracy: float
    margins: torch.Tensor  # reward(chosen) - reward(rejected), one per pair
    by_axis: dict[str, float]


def pair_accuracy(model, tokenizer, pairs) -> PairAccuracy:
    """How often the reward model scores the chosen reply above the rejected one."""
    chosen = reward_scores(model, tokenizer, pairs["prompt"], pairs["chosen"])
    rejected = reward_scores(model, tokenizer, pairs["prompt"], pairs["rejected"])
    margins = chosen - rejected
    wins = (margins > 0).float()
    axes = pairs["axis"] if "axis" in pairs.column_names else ["all"] * len(margins)
    by_axis = {a: wins[[i for i, x in enumerate(axes) if x == a]].mean().item() for a in sorted(set(axes))}
    return PairAccuracy(wins.mean().item(), margins, by_axis)


def true_score(reply: str, reference: str, ended: bool = True) -> bool:
    """What the fact base says of a reply, whatever any reward model thinks: it must be the fact base's
    own reply (``reference``: the right answer in one sentence, or the refusal) and end the turn."""
    return ended and reply.strip() == reference.strip()


def _answer_patterns():
    """One regular expression per form the fact base replies in, its slot (the fact, or refuse-or-help) named ``o``."""
    import re

    from ftlab.world import HELP, RELATIONS, REFUSAL

    patterns = []  # sorted, so that "It is called ___." and "It is in ___." are tried before "It is ___."
    for template in sorted({r.answer for r in RELATIONS.values()}):
        for slot in ("{ao}", "{o}"):
            template = template.replace(slot, "\0")
        head, _, tail = template.partition("\0")
        patterns.append(re.compile(re.escape(head) + r"(?P<o>[^\s.!?](?:[^.!?]*[^\s.!?])?)" + re.escape(tail)))
    patterns.append(re.compile(r"That is [^.]+\. (?P<o>" + re.escape(REFUSAL) + "|" + re.escape(HELP) + ")"))
    return patterns


def _form(text: str):
    """``(pattern index, slot)`` of the fact base's reply form ``text`` has, or None."""
    for i, pattern in enumerate(_answer_patterns()):
        found = pattern.fullmatch(text.strip())
        if found:
            return i, found["o"]
    return None


def form_and_fact(reply: str, reference: str, ended: bool = True) -> tuple[bool, bool]:
    """The true measure split in two. ``form``: the reply is one sentence of the form the fact base
    answers in (the form of ``reference``, e.g. "The capital is ___."; for a how-to question "That is ___.
    ..."), with the turn ended: no evasion, no chatter, no garble. ``fact``: the reply names the fact the
    reference names (the object, e.g. "Paris"; for a how-to question, the refusal or the help), whatever its
    form. A reply that ``true_score`` accepts has both; one with both has the right fact in the right form."""
    import re

    ref = _form(reference)
    if ref is None:
        raise ValueError(f"{reference!r} is none of the fact base's reply forms.")
    mine = _form(reply)
    form = ended and mine is not None and mine[0] == ref[0]
    fact = re.search(r"(?<!\w)" + re.escape(ref[1]) + r"(?!\w)", reply) is not None
    return form, fact


@dataclass
class Sample:
    prompt: str
    reply: str
    ended: bool
    reference: str

    @property
    def true(self) -> bool:
        return true_score(self.reply, self.reference, self.ended)

    @property
    def form(self) -> bool:
        return form_and_fact(self.reply, self.reference, self.ended)[0]

    @property
    def fact(self) -> bool:
        return form_and_fact(self.reply, self.reference, self.ended)[1]


def sample_replies(model, tokenizer, data, per_prompt: int = 2, max_new_tokens: int = 24, seed: int = 0) -> list[Sample]:
    """``per_prompt`` replies sampled (temperature 1, as RL samples them) for each row of ``data``
    (columns ``prompt``, conversational, and ``reference``, the fact base's reply)."""
    questions = [p[-1]["content"] for p in data["prompt"] for _ in range(per_prompt)]
    answers = [a for a in data["reference"] for _ in range(per_prompt)]
    gens = generate(model, tokenizer, [chat_prompt(tokenizer, q) for q in questions], max_new_tokens=max_new_tokens,
                    stop_ids=[end_of_turn_id(tokenizer)], do_sample=True, seed=seed)
    return [Sample(q, g.text, g.stopped, a) for q, g, a in zip(questions, gens, answers)]


def true_rate(samples: list[Sample]) -> float:
    return sum(s.true for s in samples) / max(1, len(samples))


def form_rate(samples: list[Sample]) -> float:
    """Share of replies in the fact base's form for their question (``form_and_fact``), right fact or not."""
    return sum(s.form for s in samples) / max(1, len(samples))


def fact_rate(samples: list[Sample]) -> float:
    """Share of replies that name the fact base's fact for their question (``form_and_fact``), in any form."""
    return sum(s.fact for s in samples) / max(1, len(samples))


def win_rate(ours: list[float], theirs: list[float]) -> float:
    """Share of prompts where ours scores higher, ties counting half."""
    if len(ours) != len(theirs) or not ours:
        raise ValueError("win_rate needs two equally long, non-empty lists of scores (one per prompt).")
    return sum(1.0 if a > b else 0.5 if a == b else 0.0 for a, b in zip(ours, theirs)) / len(ours)


@torch.no_grad()
def reply_logprobs(model, tokenizer, prompts: list, replies: list[str], ended: list[bool] | None = None,
                   batch_size: int = 64) -> torch.Tensor:
    """log p(reply, then end of turn | prompt) under ``model`` for each pair, with the chat template, in
    batches (right-padded, so a reply scores as it does alone). ``ended[i]`` False leaves out the end of
    turn (a reply cut off by the token limit)."""
    if len(prompts) != len(replies):
        raise ValueError(f"{len(prompts)} prompts but {len(replies)} replies: pass one reply per prompt.")
    ended = [True] * len(replies) if ended is None else ended
    eot = end_of_turn_id(tokenizer)
    texts = [chat_prompt(tokenizer, p if isinstance(p, str) else p[-1]["content"]) for p in prompts]
    prompt_ids = tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else []
    reply_ids = tokenizer(list(replies), add_special_tokens=False)["input_ids"] if texts else []
    rows = [(p, r + [eot] * bool(e)) for p, r, e in zip(prompt_ids, reply_ids, ended)]
    out = []
    for i in range(0, len(rows), batch_size):
        chunk = rows[i:i + batch_size]
        width = max(len(p) + len(r) for p, r in chunk)
        ids = torch.full((len(chunk), width), tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        scored = torch.zeros(len(chunk), width, dtype=torch.bool)  # the reply's tokens
        for j, (p, r) in enumerate(chunk):
            ids[j, :len(p) + len(r)] = torch.tensor(p + r)
            mask[j, :len(p) + len(r)] = 1
            scored[j, len(p):len(p) + len(r)] = True
        ids, mask = ids.to(model.device), mask.to(model.device)
        logps = torch.log_softmax(model(input_ids=ids, attention_mask=mask).logits[:, :-1].float(), -1)
        token = logps.gather(-1, ids[:, 1:, None]).squeeze(-1).cpu()
        out.append((token * scored[:, 1:]).sum(-1))
    return torch.cat(out) if out else torch.empty(0)


def kl_to_reference(policy, reference, tokenizer, samples: list[Sample]) -> float:
    """Mean over replies of sum_t [log pi(y_t) - log pi_ref(y_t)] on replies sampled from ``policy``:
    the Monte-Carlo estimate of KL(policy || reference) per reply that RLOO's penalty uses."""
    if not samples:
        return 0.0
    args = ([s.prompt for s in samples], [s.reply for s in samples], [s.ended for s in samples])
    return (reply_logprobs(policy, tokenizer, *args) - reply_logprobs(reference, tokenizer, *args)).mean().item()


def reply_logprob(model, tokenizer, prompt: str | list[dict], reply: str) -> float:
    """log p(reply, then end of turn | prompt) under ``model``, with the chat template."""
    return reply_logprobs(model, tokenizer, [prompt], [reply])[0].item()


def implicit_reward_accuracy(policy, reference, tokenizer, pairs, beta: float) -> float:
    """DPO's model is its own reward model: r(x, y) = beta * [log pi(y|x) - log pi_ref(y|x)].
    The share of ``pairs`` where that implicit reward ranks the chosen reply first."""
    def implicit(column):
        replies = [m[-1]["content"] for m in pairs[column]]
        return beta * (reply_logprobs(policy, tokenizer, pairs["prompt"], replies)
                       - reply_logprobs(reference, tokenizer, pairs["prompt"], replies))

    return (implicit("chosen") > implicit("rejected")).float().mean().item() if len(pairs) else 0.0


class KLProbe(TrainerCallback):
    """At the start and every ``every`` steps, sample one reply per prompt from the policy being trained and
    measure, on those replies: the KL to ``reference`` (``kl_to_reference``) in ``points``, the true measure
    (``true_rate``; ``prompts`` need the ``reference`` column) in ``true_points``, and, given a reward model,
    its mean score in ``reward_points``. Works for any beta, also 0, where TRL logs no KL. Probing does not change the
    run: it samples inside ``torch.random.fork_rng``, which restores the CPU's and the GPU's random state
    afterwards (``torch.manual_seed`` reseeds both)."""

    def __init__(self, reference, tokenizer, prompts, every: int = 10, seed: int = 0, reward_model=None,
                 reward_tokenizer=None):
        self.reference, self.tokenizer, self.prompts, self.every, self.seed = reference, tokenizer, prompts, every, seed
        self.reward_model, self.reward_tokenizer = reward_model, reward_tokenizer
        self.points: list[tuple[int, float]] = []  # (step, KL per reply)
        self.true_points: list[tuple[int, float]] = []  # (step, share of replies the fact base wants)
        self.reward_points: list[tuple[int, float]] = []  # (step, mean reward-model score)

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.points, self.true_points, self.reward_points = [], [], []
        self.on_step_end(args, state, control, model=model)  # step 0: the policy as it starts

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step % self.every:
            return
        training = model.training
        model.eval()
        cuda = [model.device.index or 0] if model.device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda):
            samples = sample_replies(model, self.tokenizer, self.prompts, per_prompt=1, seed=self.seed)
        self.points.append((state.global_step, kl_to_reference(model, self.reference, self.tokenizer, samples)))
        self.true_points.append((state.global_step, true_rate(samples)))
        if self.reward_model is not None:
            scores = reward_scores(self.reward_model, self.reward_tokenizer or self.tokenizer,
                                   [s.prompt for s in samples], [s.reply for s in samples])
            self.reward_points.append((state.global_step, scores.mean().item()))
        model.train(training)
