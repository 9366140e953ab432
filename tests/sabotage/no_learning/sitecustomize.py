"""Sabotage "no learning": every optimizer step leaves the parameters exactly as they were.

Put this folder first on ``PYTHONPATH`` and Python imports this module at start-up (``sitecustomize``).
It registers torch's *global* optimizer step hooks, which run around ``step()`` of every
``torch.optim.Optimizer`` (AdamW, fused or not, SGD, ..., and so whatever TRL/transformers/accelerate
build): before a step the parameters are copied, after it they are copied back. Gradients, optimizer state
and learning-rate schedules still run, so nothing crashes; the model just never changes.
tests/test_checks_catch_sabotage.py runs each lesson under it and expects a check cell to fail.
"""

import torch
from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook

_saved: dict[int, list[tuple[torch.Tensor, torch.Tensor]]] = {}


def _before(optimizer, args, kwargs):
    _saved[id(optimizer)] = [(p, p.detach().clone()) for group in optimizer.param_groups for p in group["params"]]


@torch.no_grad()
def _after(optimizer, args, kwargs):
    for p, old in _saved.pop(id(optimizer), []):
        p.copy_(old)


register_optimizer_step_pre_hook(_before)
register_optimizer_step_post_hook(_after)
torch.optim.FTLAB_SABOTAGE = "no_learning"  # lets a test (or a kernel) see that the sabotage is active
