"""The bundled evaluation tasks (``facts``, ``qa``, ``domain``) and how answers are matched.

A reply to a chat question counts as correct only if it mentions the right answer *and* the model
ended its turn on its own: a model that rambles on is not chatting. Both halves are also reported
apart (``mentions``, ``ended``). The ``qa`` task counts the end-of-text token as an ending too (how a
base model ends a document), so a base model has a fair way to stop.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ftlab.generation import chat_prompt, end_of_turn_id, generate
from ftlab.world import World

TASKS = {
    "facts": "plain-text completion of each fact in a sentence form the corpus never used for it (greedy)",
    "qa": "chat questions; correct = right answer and the turn ended; facts held out of all fine-tuning reported apart",
    "domain": "lesson 3's narrow domain (chemical symbols) asked in the chat format, held-out elements",
}


class UnknownTaskError(ValueError):
    pass


_ARTICLE = re.compile(r"^(the|a|an)\s+", re.IGNORECASE)


def completes_with(continuation: str, answer: str) -> bool:
    """``" an owlet, and"`` completes with ``"owlet"``: the first words, articles skipped, are the answer."""
    text = _ARTICLE.sub("", continuation.strip())
    return text.lower().startswith(answer.lower()) and not text[len(answer):len(answer) + 1].isalnum()


def mentions(reply: str, answer: str) -> bool:
    """The answer appears in the reply as a whole word or phrase."""
    return re.search(r"(?<!\w)" + re.escape(answer.lower()) + r"(?!\w)", reply.lower()) is not None


@dataclass
class EvalResult:
    task: str
    model: str
    accuracy: float
    n: int
    metrics: dict[str, float] = field(default_factory=dict)
    rows: list[dict] = field(default_factory=list)

    def summary(self) -> dict:
        return {"task": self.task, "model": self.model, "accuracy": round(self.accuracy, 4), "n": self.n,
                **{k: round(v, 4) if isinstance(v, float) else v for k, v in self.metrics.items()}}


def score_facts(model, tokenizer, world: World | None = None, name: str = "model") -> EvalResult:
    data = (world or World()).facts_eval()
    gens = generate(model, tokenizer, list(data["prompt"]), max_new_tokens=6, stop_ids=[])
    rows = [{"prompt": g.prompt, "output": g.text, "answer": a, "correct": completes_with(g.text, a)}
            for g, a in zip(gens, data["answer"])]
    return _result("facts", name, rows)


def end_tokens(tokenizer) -> list[int]:
    """The tokens that end a reply: end-of-turn, and end-of-text (how a base model ends a document)."""
    eot = end_of_turn_id(tokenizer)
    return [eot] + [t for t in [tokenizer.eos_token_id] if t is not None and t != eot]


def score_chat(model, tokenizer, questions: list[str], answers: list[str], max_new_tokens: int = 32,
               stop_ids: list[int] | None = None, **decoding) -> list[dict]:
    """Ask each question in the chat format; a reply is correct if it names the answer and ends its turn.

    The turn ends at one of ``stop_ids`` (default: the end-of-turn token only; ``end_tokens(tokenizer)``
    adds end-of-text). ``decoding`` goes to ``generate`` (e.g. ``do_sample=True, temperature=0.7, seed=0``)."""
    gens = generate(model, tokenizer, [chat_prompt(tokenizer, q) for q in questions], max_new_tokens=max_new_tokens,
                    stop_ids=stop_ids or [end_of_turn_id(tokenizer)], **decoding)
    rows = [{"prompt": q, "output": g.text, "answer": a, "ended": g.stopped, "mentions": mentions(g.text, a)}
            for q, g, a in zip(questions, gens, answers)]
    return [{**r, "correct": r["ended"] and r["mentions"]} for r in rows]


def score_qa(model, tokenizer, world: World | None = None, name: str = "model") -> EvalResult:
    data = (world or World()).qa_eval()
    rows = score_chat(model, tokenizer, list(data["question"]), list(data["answer"]), stop_ids=end_tokens(tokenizer))
    for row, seen in zip(rows, data["fact_in_finetuning"]):
        row["fact_in_finetuning"] = seen
    unseen = [r["correct"] for r in rows if not r["fact_in_finetuning"]]
    seen = [r["correct"] for r in rows if r["fact_in_finetuning"]]
    return _result("qa", name, rows, {
        "accuracy_unseen_facts": sum(unseen) / max(1, len(unseen)), "n_unseen_facts": len(unseen),
        "accuracy_seen_facts": sum(seen) / max(1, len(seen)), "n_seen_facts": len(seen),
        "ended_turn": sum(r["ended"] for r in rows) / len(rows),
        "mentions_answer": sum(r["mentions"] for r in rows) / len(rows)})


def score_domain(model, tokenizer, world: World | None = None, name: str = "model") -> EvalResult:
    test = (world or World()).domain()["test"]
    rows = score_chat(model, tokenizer, [m[0]["content"] for m in test["messages"]], list(test["answer"]))
    return _result("domain", name, rows)


def _result(task: str, name: str, rows: list[dict], metrics: dict | None = None) -> EvalResult:
    return EvalResult(task, name, sum(r["correct"] for r in rows) / max(1, len(rows)), len(rows), metrics or {}, rows)


SCORERS = {"facts": score_facts, "qa": score_qa, "domain": score_domain}


def evaluate(model, tokenizer, task: str, name: str = "model", world: World | None = None) -> EvalResult:
    """Score a loaded model on one bundled task."""
    if task not in SCORERS:
        raise UnknownTaskError(f"Unknown task {task!r}. Tasks: " + "; ".join(f"{k} ({v})" for k, v in TASKS.items()))
    return SCORERS[task](model, tokenizer, world, name)


def assistant_loss(model, tokenizer, conversations: list[list[dict]], batch_size: int = 32) -> float:
    """Mean cross-entropy (nats per token) on the assistant's tokens of ``conversations``: the held-out
    loss of SFT, where only what the assistant says is learned (``formatting.assistant_labels``)."""
    import torch

    from ftlab.formatting import IGNORE_INDEX, assistant_labels

    total, count = 0.0, 0
    for i in range(0, len(conversations), batch_size):
        pairs = [assistant_labels(tokenizer, c) for c in conversations[i:i + batch_size]]
        width = max(len(ids) for ids, _ in pairs)
        pad = tokenizer.pad_token_id
        ids = torch.tensor([x + [pad] * (width - len(x)) for x, _ in pairs], device=model.device)
        labels = torch.tensor([y + [IGNORE_INDEX] * (width - len(y)) for _, y in pairs], device=model.device)
        mask = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x, _ in pairs], device=model.device)
        with torch.no_grad():
            logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
        targets = labels[:, 1:]
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                                                 ignore_index=IGNORE_INDEX, reduction="sum")
        total += loss.item()
        count += int((targets != IGNORE_INDEX).sum())
    return total / max(1, count)


@dataclass
class PairedDifference:
    """Mean of ``a - b`` and its bootstrap confidence interval; ``different`` when the interval excludes 0."""

    difference: float
    low: float
    high: float
    confidence: float

    @property
    def different(self) -> bool:
        return self.low > 0 or self.high < 0

    def __str__(self) -> str:
        verdict = "different" if self.different else "no measurable difference"
        return (f"{self.difference:+.2f} ({self.confidence:.0%} interval {self.low:+.2f} to {self.high:+.2f}): "
                f"{verdict}")


def paired_bootstrap(a, b, n_resamples: int = 4000, confidence: float = 0.95, seed: int = 0) -> PairedDifference:
    """Is arm ``a`` different from arm ``b``? A paired bootstrap over seeds and questions.

    ``a`` and ``b`` are per-question scores (1/0 for right/wrong), shaped (seeds, questions) or (questions,),
    paired: ``a[s, q]`` and ``b[s, q]`` come from the same seed (data order) and the same question. Each
    resample draws the seeds with replacement and the questions with replacement (one draw of questions for
    all seeds, since every seed is asked the same questions), and takes the mean of ``a - b`` over the draw.
    The interval is the central ``confidence`` share of those means; the arms are ``different`` when it
    excludes 0. ``b`` may be one row (a single model, e.g. the model before tuning) paired with every seed of ``a``."""
    import numpy as np

    a, b = np.atleast_2d(np.asarray(a, dtype=float)), np.atleast_2d(np.asarray(b, dtype=float))
    b = np.broadcast_to(b, a.shape)
    diff = a - b
    seeds, questions = diff.shape
    rng = np.random.default_rng(seed)
    s = rng.integers(0, seeds, size=(n_resamples, seeds))
    q = rng.integers(0, questions, size=(n_resamples, questions))
    means = diff[s[:, :, None], q[:, None, :]].mean(axis=(1, 2))
    tail = (1 - confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return PairedDifference(float(diff.mean()), float(low), float(high), confidence)
