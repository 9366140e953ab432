"""Sabotage "wrong data": training runs, but every answer belongs to another row's question.

Put this folder first on ``PYTHONPATH`` and Python imports this module at start-up (``sitecustomize``).
When TRL's trainer modules are imported, each trainer's ``__init__`` is wrapped so that its
``train_dataset`` is re-paired before training: the rows are put in a seeded random order, and each row
gets the answers of the next row in that order (so never its own):

* ``messages`` (chat SFT): every assistant turn's content; the user turns stay;
* ``prompt``/``completion``: the completion;
* ``prompt``/``chosen``/``rejected`` (reward model, DPO): the chosen and rejected replies, together;
* online RL (RLOO, GRPO): every column but ``prompt`` (e.g. the answer a verifier checks against).

Optimizer steps, losses and logging all run as usual; only the pairing of question and answer is wrong.
Hand-written training loops in a lesson are left alone. tests/test_checks_catch_sabotage.py runs each
lesson under it and expects a check cell to fail.
"""

import importlib.abc
import importlib.util
import inspect
import random
import sys

TRAINERS = {"trl.trainer.sft_trainer": "SFTTrainer", "trl.trainer.dpo_trainer": "DPOTrainer",
            "trl.trainer.reward_trainer": "RewardTrainer", "trl.trainer.rloo_trainer": "RLOOTrainer",
            "trl.trainer.grpo_trainer": "GRPOTrainer"}
ONLINE = {"RLOOTrainer", "GRPOTrainer"}


def _assistant_contents(value):
    return [m["content"] for m in value if isinstance(m, dict) and m.get("role") == "assistant"]


def _with_answers(value, answers):
    """``value`` (a conversation or a string) with its answers taken from ``answers`` (cycled)."""
    if isinstance(value, list):
        if not answers:
            return value
        out, k = [], 0
        for m in value:
            if isinstance(m, dict) and m.get("role") == "assistant":
                m = {**m, "content": answers[k % len(answers)]}
                k += 1
            out.append(m)
        return out
    return answers[0] if answers else value


def _answers(value):
    return _assistant_contents(value) if isinstance(value, list) else [value]


def mispair(dataset, online: bool = False):
    """``dataset`` with each row's answers taken from another row (seeded; see the module docstring)."""
    try:
        columns = list(dataset.column_names)
        n = len(dataset)
    except (AttributeError, TypeError):
        return dataset
    if n < 2:
        return dataset
    if online:
        moved = [c for c in columns if c != "prompt"]
    elif "messages" in columns:
        moved = ["messages"]
    elif "completion" in columns:
        moved = ["completion"]
    elif "chosen" in columns:
        moved = [c for c in ("chosen", "rejected") if c in columns]
    else:
        moved = []
    if not moved:
        return dataset
    order = list(range(n))
    random.Random(0).shuffle(order)
    donor = {order[i]: order[(i + 1) % n] for i in range(n)}
    rows = dataset.to_dict()
    for column in moved:
        values = rows[column]
        if online:
            rows[column] = [values[donor[i]] for i in range(n)]
        else:
            rows[column] = [_with_answers(values[i], _answers(values[donor[i]])) for i in range(n)]
    return type(dataset).from_dict(rows, features=None)


def _patch(module):
    cls = getattr(module, TRAINERS[module.__name__], None)
    if cls is None or getattr(cls.__init__, "_ftlab_sabotage", False):
        return
    original = cls.__init__
    signature = inspect.signature(original)
    online = cls.__name__ in ONLINE

    def __init__(self, *args, **kwargs):
        bound = signature.bind_partial(self, *args, **kwargs)
        if bound.arguments.get("train_dataset") is not None:
            bound.arguments["train_dataset"] = mispair(bound.arguments["train_dataset"], online)
        return original(*bound.args, **bound.kwargs)

    __init__._ftlab_sabotage = True
    cls.__init__ = __init__


class _PatchAfterImport(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name not in TRAINERS:
            return None
        sys.meta_path.remove(self)
        try:
            spec = importlib.util.find_spec(name)
        finally:
            sys.meta_path.insert(0, self)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_and_patch(module):
            exec_module(module)
            _patch(module)

        spec.loader.exec_module = exec_and_patch
        return spec


sys.meta_path.insert(0, _PatchAfterImport())
sys.FTLAB_SABOTAGE = "wrong_data"  # lets a test (or a kernel) see that the sabotage is active
