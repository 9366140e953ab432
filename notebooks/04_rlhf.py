# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lesson 4 — Learning from human preferences: reward models, online RL with a KL leash, and DPO
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/ftlab-course/ftlab/blob/main/notebooks/04_rlhf.ipynb)
#
# **Goal.** Turn people's *comparisons* ("this reply is better than that one") into a better
# model, three ways, and measure what each buys and what each can break.
#
# **The idea.** Supervised fine-tuning copies demonstrations, good and bad alike. Preferences
# say which of two replies is better, which is easier to give than a perfect demonstration. We
#
# 1. collect preference pairs (from the bundled world, plus your own labels);
# 2. train a **reward model** to score replies so that preferred ones score higher (the
#    Bradley–Terry loss);
# 3. run **online RL**: sample replies from the model, score them with the reward model, and push
#    up the better ones, with a **KL penalty** that keeps the model near where it started;
# 4. watch **reward hacking** when that leash is off: the reward model's score climbs while the
#    replies get worse;
# 5. do the same with **DPO**, which needs neither a reward model nor sampling.
#
# The reward model is a learned *stand-in* for people. The world gives us something people in
# real RLHF do not have: a **true measure**. For every prompt the fact base knows the reply it
# wants (the right answer in one sentence, or a refusal for a weapon request), so we can always
# check whether a higher reward-model score means a better reply.

# %%
# Set-up for Colab: installs ftlab and TRL next to Colab's own torch, transformers and
# ipywidgets (nothing to restart). Anywhere else this cell does nothing: `make lab` installed it all.
import sys

if "google.colab" in sys.modules:
    import subprocess

    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet",
                    "ftlab @ git+https://github.com/ftlab-course/ftlab@main"], check=True)

# %%
import tempfile

import matplotlib.pyplot as plt
import torch
from datasets import concatenate_datasets
from datasets import Dataset

import ftlab
from ftlab import rlhf
from ftlab.display import html_table
from ftlab.models import save_model
from ftlab.training import train_dpo, train_reward_model, train_rloo, train_sft
from ftlab.world import World

profile = ftlab.setup()
world = World(seed=0)
prefs = world.preferences()
print({split: len(rows) for split, rows in prefs.items()})
html_table([{"axis": r["axis"], "prompt": r["prompt"][0]["content"], "chosen": r["chosen"][0]["content"],
             "rejected": r["rejected"][0]["content"]} for r in prefs["train"].select(range(6))])

# %% [markdown]
# Each pair is one prompt and two replies; the **axis** says what separates them: a right vs a
# wrong fact (`correct`), an answer vs an evasion (`helpful`), an answer vs the same answer padded
# with chatter (`concise`), a refusal vs compliance for a weapon request (`harmless`). The `test`
# pairs are new: a different wording of the question and a different wrong reply, and weapons
# `train` never names.
#
# ## 1. The model we start from: imitation copies everyone
#
# Suppose the demonstrations came from many writers: some careful, some evasive, some chatty,
# some wrong. Supervised fine-tuning has no way to know which is which, so it learns the mix. We
# make that model here: tiny-chat fine-tuned on *both* replies of every training pair.

# %%
train = prefs["train"]
demos = Dataset.from_list([{"messages": p + reply} for p, c, r in zip(train["prompt"], train["chosen"], train["rejected"])
                           for reply in (c, r)]).shuffle(seed=0)
sft, tok = ftlab.load_model(profile.chat_model, profile, for_training=True)
sft_run = train_sft(sft, tok, demos, profile, max_steps=60, assistant_only_loss=True, quiet=True)
sft_dir = save_model(sft, tok)  # each method below starts from a fresh copy of this model

evalset = prefs["test"]  # prompts no training pair used; 2 sampled replies each, temperature 1, as RL samples
before = rlhf.sample_replies(sft, tok, evalset, per_prompt=2, seed=1)
print(f"SFT model, {sft_run.seconds:.0f} s of training: {rlhf.true_rate(before):.2f} of its replies are what the fact base wants")
html_table([{"prompt": s.prompt, "reply": s.reply, "true measure": s.true} for s in before[:8]])

# %% [markdown]
# ## 2. Your preferences
#
# Label some pairs yourself. These are about facts that **no** training pair covers, so your
# labels teach the reward model something new. Click **A**, **B** or **Tie**. Each click is appended
# to `my_preferences.jsonl` beside this notebook at once: restart the kernel and you continue where
# you stopped; label a pair again and the newer label wins; a damaged line is reported and skipped,
# never taken for a label.

# %%
from ftlab.widgets import PreferenceLabeler

to_label = prefs["unseen_facts"].select(range(24))
labeler = PreferenceLabeler(to_label, path="my_preferences.jsonl")
labeler

# %% [markdown]
# When this notebook runs without you (in the course's tests), nobody clicks. The next cell then
# drives the widget from Python exactly as clicks would, as a careful labeller who checks every
# answer against the fact base. If you labelled pairs yourself, it leaves your labels alone.

# %%
if labeler.count == 0:
    right = set(to_label["reference"])
    while (item := labeler.current()) is not None:
        prompt, a, b = item
        labeler.choose("A" if a in right else "B")
mine = labeler.log.to_pairs()
print(f"{labeler.count} of {len(to_label)} pairs labelled; {len(mine)} usable (ties say nothing and are left out)")
for problem in labeler.log.problems:
    print("note:", problem)
train_pairs = concatenate_datasets([train.select_columns(["prompt", "chosen", "rejected"]),
                                    mine.cast(train.select_columns(["prompt", "chosen", "rejected"]).features)])
print(f"reward-model training pairs: {len(train)} from the world + {len(mine)} of yours = {len(train_pairs)}")

# %% [markdown]
# ## 3. A reward model, and the Bradley–Terry loss
#
# A reward model reads a prompt and a reply and outputs one number. It is the language model
# with its next-token head replaced by a single output read at the last token. Its training
# signal is only *which reply won*. Bradley and Terry (1952) model the chance that reply *c*
# beats reply *r* as σ(r(c) − r(r)), so the loss is the negative log of that:
#
# $$\mathcal{L} = -\log \sigma\big(r_\theta(x, y_{chosen}) - r_\theta(x, y_{rejected})\big)$$
#
# Only differences matter: adding a constant to every score changes nothing. Here it is in a few
# lines, checked against the loss TRL's `RewardTrainer` computes on the same batch.
#
# We start the reward model from the SFT stage (tiny-chat), as InstructGPT did: the scoring head
# is new, and the transformer under it already reads the chat format and knows the facts. (Try
# `profile.base_model` instead: it works too, with a smaller margin on the hard axis.)

# %%
from trl import RewardConfig, RewardTrainer


def bradley_terry_loss(rewards_chosen, rewards_rejected):
    return -torch.nn.functional.logsigmoid(rewards_chosen - rewards_rejected).mean()


rm, rm_tok = rlhf.load_reward_model(profile.chat_model, profile)
check = RewardTrainer(model=rm, processing_class=rm_tok, train_dataset=train_pairs.select(range(8)),
                      args=RewardConfig(output_dir=tempfile.mkdtemp(), **profile.trl_defaults(),
                                        per_device_train_batch_size=8, max_length=128))
batch = next(iter(check.get_train_dataloader()))  # TRL puts the 8 chosen first, then the 8 rejected
rewards = rm(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.squeeze(-1)
ours = bradley_terry_loss(*rewards.chunk(2))
theirs = check.compute_loss(rm, dict(batch))
print(f"hand-written Bradley–Terry loss {ours.item():.6f}, TRL's RewardTrainer {theirs.item():.6f}")
assert abs(ours.item() - theirs.item()) < 1e-5

# %%
rm_run = train_reward_model(rm, rm_tok, train_pairs, profile)
test_acc = rlhf.pair_accuracy(rm, rm_tok, prefs["test"])
not_labelled = prefs["unseen_facts"].select(range(len(to_label), len(prefs["unseen_facts"])))
unseen_acc = rlhf.pair_accuracy(rm, rm_tok, not_labelled)
print(f"reward model: {rm_run.seconds:.0f} s; held-out pair accuracy {test_acc.accuracy:.3f}")
html_table([{"axis": axis, "held-out pairs": acc, "pairs about facts no preference covers": unseen_acc.by_axis.get(axis, "")}
            for axis, acc in test_acc.by_axis.items()])

# %%
fig, ax = plt.subplots(figsize=(6, 3.2))
axes_names = sorted(test_acc.by_axis)
margins = test_acc.margins.numpy()
ax.hist([margins[[a == name for a in prefs["test"]["axis"]]] for name in axes_names], bins=25, stacked=True,
        label=axes_names)
ax.axvline(0, color="black", lw=1)
ax.set_xlabel("reward(chosen) − reward(rejected), held-out pairs")
ax.set_ylabel("pairs")
ax.set_title("reward margins: right of 0 means the reward model agrees with people")
ax.legend()
fig.tight_layout()

# %% [markdown]
# Evasions, chatter and compliance with a weapon request are easy to spot: they look alike
# whatever the question. Wrong facts are the hard axis: the reward model must *know* the fact. On
# facts that no preference covered it does much worse: **a reward model only knows what its
# preference data taught it.** That weakness is what RL will find.
#
# ## 4. Online RL against the reward model, with a KL leash (RLOO)
#
# The original RLHF recipe (Ziegler et al. 2019, InstructGPT 2022) optimised the policy with
# **PPO**: sample a reply, score it with the reward model minus β·KL(policy ‖ reference), and
# update with a clipped policy-gradient step whose baseline comes from a learned *value model*, a
# second network as big as the policy. **RLOO** (REINFORCE Leave-One-Out; Ahmadian et al. 2024)
# keeps the same objective, reward minus a KL penalty to the starting model, but drops the value
# model: it samples k replies per prompt and uses the mean reward of the *other* k−1 as each
# one's baseline. Fewer networks, fewer hyper-parameters, and for language models about as good.
# TRL 1.x has no PPO trainer any more; `RLOOTrainer` (and `GRPOTrainer`, which normalises by the
# group's spread instead) are its online methods.
#
# The KL penalty is the **leash**: each sampled reply's reward is reduced by β × Σₜ log
# π(yₜ)/π_ref(yₜ), which grows as the policy drifts from the SFT model. We train with β = 2 and
# measure the KL ourselves every 10 steps (`KLProbe`) on 40 fixed prompts.

# %%
probe_prompts = evalset.select(range(40))
leash_probe = rlhf.KLProbe(sft, tok, probe_prompts)
leashed, _ = ftlab.load_model(sft_dir, profile, for_training=True)
leash_run = train_rloo(leashed, tok, train, rm, rm_tok, profile, beta=2.0, callbacks=[leash_probe])
after_leash = rlhf.sample_replies(leashed, tok, evalset, per_prompt=2, seed=1)


def rm_scores(samples):
    return rlhf.reward_scores(rm, rm_tok, [s.prompt for s in samples], [s.reply for s in samples])


score = {"SFT": rm_scores(before), "RLOO, β = 2": rm_scores(after_leash)}
true = {"SFT": rlhf.true_rate(before), "RLOO, β = 2": rlhf.true_rate(after_leash)}
for name in score:
    print(f"{name:12s} reward-model score {score[name].mean():+.2f}   true measure {true[name]:.2f}")

# %% [markdown]
# ## 5. Reward hacking: the same run without the leash
#
# Same data, same reward model, same learning rate and steps, same seed; only β = 0.

# %%
free_probe = rlhf.KLProbe(sft, tok, probe_prompts)
unleashed, _ = ftlab.load_model(sft_dir, profile, for_training=True)
free_run = train_rloo(unleashed, tok, train, rm, rm_tok, profile, beta=0.0, callbacks=[free_probe])
after_free = rlhf.sample_replies(unleashed, tok, evalset, per_prompt=2, seed=1)
score["RLOO, β = 0"] = rm_scores(after_free)
true["RLOO, β = 0"] = rlhf.true_rate(after_free)
for name in score:
    print(f"{name:12s} reward-model score {score[name].mean():+.2f}   true measure {true[name]:.2f}")

# %%
fig, ax = plt.subplots(1, 2, figsize=(11, 3.5))
for name, run, probe in (("β = 2", leash_run, leash_probe), ("β = 0", free_run, free_probe)):
    steps, values = zip(*run.logged("reward"))
    ax[0].plot(steps, values, marker="o", label=name)
    steps, values = zip(*probe.points)
    ax[1].plot(steps, values, marker="o", label=name)
ax[0].set_title("mean reward-model score of the sampled replies")
ax[1].set_title("KL(policy ‖ SFT model) per reply, nats")
for a in ax:
    a.set_xlabel("RL step")
    a.legend()
fig.tight_layout()

# %%
rows = []
for i in range(0, 24, 3):
    rows.append({"prompt": before[i].prompt, "fact base": before[i].reference,
                 "SFT": before[i].reply, "RLOO β=2": after_leash[i].reply,
                 "RLOO β=0": f"{after_free[i].reply}  [score {score['RLOO, β = 0'][i]:+.1f}]"})
html_table(rows)

# %% [markdown]
# Without the leash the policy finds replies the reward model scores highly that are not what
# anyone wanted: half-sentences, wrong words in the right place, whatever the reward model failed
# to learn to dislike. Its score goes **up** while the true measure goes **down**. The KL penalty
# makes every step away from the SFT model cost reward, so the policy can only move where the
# gain is real enough to pay for it.
#
# ## 6. DPO: the same preferences, no reward model, no sampling
#
# Rafailov et al. (2023) showed that the KL-regularised RL objective has a closed-form optimum,
# π*(y|x) ∝ π_ref(y|x) · exp(r(x,y)/β). Turn it around and the reward is
# r(x, y) = β · log π(y|x)/π_ref(y|x) + const; put that into the Bradley–Terry loss and the
# reward model disappears:
#
# $$\mathcal{L}_{DPO} = -\log\sigma\Big(\beta\log\frac{\pi(y_c|x)}{\pi_{ref}(y_c|x)} - \beta\log\frac{\pi(y_r|x)}{\pi_{ref}(y_r|x)}\Big)$$
#
# It trains on the fixed pairs, like supervised learning: no reward model, no generation.
#
# One known weakness: the loss only asks that the chosen reply gain on the rejected one, and it
# can meet that by pushing *both* down, the rejected faster. Probability then leaks to replies
# that are in neither. A common remedy (RPO, Pang et al. 2024; also used in Llama 3's recipe) adds
# the ordinary SFT loss on the chosen reply; in TRL that is `loss_type=["sigmoid", "sft"]`.

# %%
dpo_model, _ = ftlab.load_model(sft_dir, profile, for_training=True)
dpo_run = train_dpo(dpo_model, tok, train_pairs, profile, beta=0.1, loss_type=["sigmoid", "sft"])
after_dpo = rlhf.sample_replies(dpo_model, tok, evalset, per_prompt=2, seed=1)
score["DPO"] = rm_scores(after_dpo)
true["DPO"] = rlhf.true_rate(after_dpo)
implicit = rlhf.implicit_reward_accuracy(dpo_model, sft, tok, prefs["test"], beta=0.1)
print(f"DPO: {dpo_run.seconds:.0f} s; its implicit reward β·log π/π_ref ranks the held-out pairs right {implicit:.2f} of the time")


def wins(samples):
    """Win rate over the SFT model on the same prompts and samples: by the true measure, by the reward model."""
    by_true = rlhf.win_rate([float(s.true) for s in samples], [float(s.true) for s in before])
    by_rm = rlhf.win_rate(rm_scores(samples).tolist(), score["SFT"].tolist())
    return by_true, by_rm


for name, samples in (("RLOO, β = 2", after_leash), ("RLOO, β = 0", after_free), ("DPO", after_dpo)):
    by_true, by_rm = wins(samples)
    print(f"{name:12s} win rate over SFT: {by_true:.2f} by the true measure, {by_rm:.2f} by the reward model")

# %% [markdown]
# ## 7. Side by side
#
# KL is measured the same way for every model: replies sampled from it for the 84 test prompts,
# Σₜ log π(yₜ)/π_SFT(yₜ), averaged.

# %%
kl = {name: rlhf.kl_to_reference(model, sft, tok, samples) for name, model, samples in
      (("RLOO, β = 2", leashed, after_leash), ("RLOO, β = 0", unleashed, after_free), ("DPO", dpo_model, after_dpo))}
kl["SFT"] = 0.0
needs = {"SFT": ("no", "no", "no"), "RLOO, β = 2": ("yes", "yes", "yes"),
         "RLOO, β = 0": ("yes", "yes", "no"), "DPO": ("no", "no", "yes")}
seconds = {"SFT": sft_run.seconds, "RLOO, β = 2": leash_run.seconds, "RLOO, β = 0": free_run.seconds,
           "DPO": dpo_run.seconds}
html_table([{"method": name, "reward model?": needs[name][0], "sampling?": needs[name][1],
             "reference model?": needs[name][2], "training time (s)": round(seconds[name], 1),
             "reward-model score": round(score[name].mean().item(), 2), "true measure": round(true[name], 3),
             "KL to SFT (nats/reply)": round(kl[name], 2)} for name in ("SFT", "RLOO, β = 2", "RLOO, β = 0", "DPO")])

# %% [markdown]
# ## 8. Check: what this lesson claims, measured

# %%
# CHECK
dpo_win, _ = wins(after_dpo)
assert abs(ours.item() - theirs.item()) < 1e-5                          # our Bradley–Terry loss is TRL's
assert test_acc.accuracy >= 0.85, test_acc                              # the reward model generalises to new pairs
assert score["RLOO, β = 2"].mean() > score["SFT"].mean()                # RL raises the reward ...
assert true["RLOO, β = 2"] >= true["SFT"], true                         # ... and, leashed, the truth does not fall
assert score["RLOO, β = 0"].mean() > score["SFT"].mean()                # unleashed, the reward rises too ...
assert true["RLOO, β = 0"] < true["SFT"], true                          # ... while the truth falls: reward hacking
assert kl["RLOO, β = 0"] > kl["RLOO, β = 2"], kl                        # the leash is what kept it close
assert dpo_win >= 0.65, dpo_win                                         # DPO beats SFT by the true measure
print("All checks passed.")

# %% [markdown]
# ## Summary
#
# * A **reward model** learns a score from comparisons alone (the Bradley–Terry loss, a few lines);
#   it generalises to new pairs about what its data covered, and much less to what it did not.
# * **Online RL** (RLOO here; PPO in the original papers) samples replies and pushes up the ones
#   the reward model prefers. With a **KL penalty** to the starting model it improved both the
#   reward and the true measure.
# * Without the penalty it **hacked the reward**: the reward model's score rose while the replies
#   got worse, and the KL to the starting model shot up. A learned reward is only trustworthy
#   near the data it was trained on; the leash keeps the policy there.
# * **DPO** reached a better model from the same pairs with no reward model and no sampling, at
#   the cost of being offline: it can only learn from the pairs it is given.
#
# **Try next:** lower β (0.5, 0.1) and watch where hacking starts; run DPO with
# `loss_type=["sigmoid"]` alone and compare its true measure; label some pairs wrongly on
# purpose and retrain the reward model; start the reward model from `profile.base_model`.
