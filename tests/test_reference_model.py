"""TRL's DPO and RLOO reload the reference model from ``config._name_or_path`` (issue 30, item 4): a policy
fine-tuned in memory would silently get the pre-fine-tuning checkpoint as its reference. ``ftlab.training``
passes DPO a frozen copy of the policy as it is, and refuses RLOO (TRL 1.16's RLOOTrainer takes no
reference model) with the way out; a saved-then-loaded policy goes through as before."""

import pytest
import torch

import ftlab
from ftlab.models import save_model
from ftlab.training import checkpoint_differs, train_dpo, train_rloo

STEPS = dict(max_steps=1, per_device_train_batch_size=4, quiet=True)


def _tuned_in_memory(profile):
    policy, tok = ftlab.load_model("tiny-chat", profile, for_training=True)
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(0.01 * torch.randn_like(p))  # as any fine-tuning moves every tensor
    return policy, tok


def test_the_check_reads_the_checkpoint_the_config_names(profile, tmp_path):
    policy, tok = ftlab.load_model("tiny-chat", profile, for_training=True)
    assert checkpoint_differs(policy) is None
    tuned, _ = _tuned_in_memory(profile)
    assert checkpoint_differs(tuned) == tuned.config._name_or_path
    reloaded, _ = ftlab.load_model(save_model(tuned, tok, tmp_path / "tuned"), profile, for_training=True)
    assert checkpoint_differs(reloaded) is None


def test_dpo_gets_the_in_memory_policy_as_its_reference(profile, world):
    policy, tok = _tuned_in_memory(profile)
    start = {n: p.detach().clone() for n, p in policy.named_parameters()}
    run = train_dpo(policy, tok, world.preferences()["train"].select(range(4)), profile, **STEPS)
    reference = dict(run.trainer.ref_model.named_parameters())
    assert all(torch.equal(reference[n].detach(), start[n]) for n in start)  # the policy as it started, not tiny-chat


def test_dpo_on_a_saved_then_loaded_policy_lets_trl_load_the_reference(profile, world, tmp_path):
    tuned, tok = _tuned_in_memory(profile)
    folder = save_model(tuned, tok, tmp_path / "tuned")
    policy, _ = ftlab.load_model(folder, profile, for_training=True)
    start = {n: p.detach().clone() for n, p in policy.named_parameters()}
    run = train_dpo(policy, tok, world.preferences()["train"].select(range(4)), profile, **STEPS)
    reference = dict(run.trainer.ref_model.named_parameters())
    assert run.trainer.ref_model.config._name_or_path == folder
    assert all(torch.equal(reference[n].detach(), start[n]) for n in start)


def test_rloo_refuses_an_in_memory_policy_and_says_to_save_it_first(profile, world, tmp_path):
    policy, tok = _tuned_in_memory(profile)
    prompts = world.preferences()["train"].select(range(8))

    def reward(prompts, completions, **kwargs):
        return [0.0] * len(completions)

    with pytest.raises(ValueError, match=r"save_pretrained\(folder\)") as err:
        train_rloo(policy, tok, prompts, reward, None, profile, beta=0.1, **STEPS)
    assert "tiny-chat" in str(err.value) and "\n" not in str(err.value)
    # beta=0 keeps no reference: nothing to get wrong
    train_rloo(policy, tok, prompts, reward, None, profile, beta=0.0, max_completion_length=4, **STEPS)
    folder = save_model(policy, tok, tmp_path / "tuned")
    saved, _ = ftlab.load_model(folder, profile, for_training=True)
    run = train_rloo(saved, tok, prompts, reward, None, profile, beta=0.1, max_completion_length=4, **STEPS)
    assert run.steps == 1
