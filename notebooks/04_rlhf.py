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
# 4. watch **reward hacking** as the leash loosens (β from 2 to 0): the reward model's score climbs
#    while the replies get worse;
# 5. do the same with **DPO**, which needs neither a reward model nor sampling, with and without
#    an SFT term.
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
from IPython.display import display

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
# `train` never names. The `unseen_facts` pairs are about facts no `train` pair covers (you will
# label some of them), and `unseen_facts_retest` holds, row for row, a second right-vs-wrong pair
# about each of those facts, to test what labels taught.
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

# Two sets of prompts no training pair used, 2 replies sampled per prompt (temperature 1, as RL samples):
evalset = prefs["test"]  # new wordings of questions about facts the preferences cover, and new weapons
unseen_prompts = prefs["unseen_facts"]  # questions about facts no preference pair covers at all


def sample(model):
    """A model's replies to both prompt sets, always with the same random seed."""
    return (rlhf.sample_replies(model, tok, evalset, per_prompt=2, seed=1),
            rlhf.sample_replies(model, tok, unseen_prompts, per_prompt=2, seed=1))


before, before_unseen = sample(sft)
print(f"SFT model, {sft_run.seconds:.0f} s of training: {rlhf.true_rate(before):.2f} of its replies are what the fact "
      f"base wants ({rlhf.true_rate(before_unseen):.2f} on questions about facts no preference covers)")
html_table([{"prompt": s.prompt, "reply": s.reply, "true measure": s.true} for s in before[:8]])

# %% [markdown]
# ## 2. Your preferences
#
# Label some pairs yourself. They are about facts that **no** training pair covers, and each pits a
# right answer against a wrong one, so your labels teach the reward model facts it has no other
# way to learn (if you do not know an answer, guess or click **Tie**: real labellers guess too).
# Click **A**, **B** or **Tie**. Each click is appended to `my_preferences.jsonl` beside this
# notebook at once: restart the kernel and you continue where you stopped; label a pair again and
# the newer label wins; a damaged line is reported and skipped, never taken for a label.
# **Start over** sets the file aside (as `my_preferences.jsonl.bak`) and asks every pair again.

# %%
from ftlab.widgets import PreferenceLabeler

unseen = prefs["unseen_facts"]
right_vs_wrong = [i for i, axis in enumerate(unseen["axis"]) if axis == "correct"]
to_label = unseen.select(right_vs_wrong[:24])
labeler = PreferenceLabeler(to_label, path="my_preferences.jsonl")
labeler

# %% [markdown]
# **Label before you run the next cell.** If you ran the whole notebook at once (Run All), the
# cells below have already run without your labels: the reward model then learns from the
# world's pairs alone and the comparison "with and without your labels" is skipped. Label pairs
# above (all 24, or as many as you like), then select the next cell and use
# *Run > Run Selected Cell and All Below*.
#
# (The course's tests set `FTLAB_AUTOLABEL=1`: then, and only then, the next cell labels every
# pair from code, as a careful labeller who checks each answer against the fact base would.)

# %%
import os

if labeler.count == 0 and os.environ.get("FTLAB_AUTOLABEL") == "1":
    right = {p[-1]["content"]: ref for p, ref in zip(to_label["prompt"], to_label["reference"])}
    while (item := labeler.current()) is not None:
        prompt, a, b = item
        labeler.choose("A" if a == right[prompt] else "B")
    print("FTLAB_AUTOLABEL=1: the 24 pairs were labelled from code, as a careful labeller would.")
mine = labeler.log.to_pairs()
print(f"{labeler.count} of {len(to_label)} pairs labelled; {len(mine)} usable (ties say nothing and are left out)")
for problem in labeler.log.problems:
    print("note:", problem)
if len(mine) == 0:
    print("NOTE: no labels of yours yet. The reward model below learns from the world's pairs only, and the "
          "comparison with and without your labels is skipped. Label pairs above, then run from this cell down again.")
columns = ["prompt", "chosen", "rejected"]
world_pairs = train.select_columns(columns)
train_pairs = concatenate_datasets([world_pairs, mine.cast(world_pairs.features)]) if len(mine) else world_pairs
print(f"preference pairs for training: {len(train)} from the world + {len(mine)} of yours = {len(train_pairs)}")

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

# %% [markdown]
# We train the reward model on the world's pairs, and, if you labelled some, a second one, alike
# in everything (same start, same steps) except that your pairs are added. Both are then tested on
# `unseen_facts_retest`: for every fact you were asked about, a *new* pair (another wording of the
# question, another wrong answer), and the same kind of pair for the unseen facts nobody labelled.

# %%
rm_run = train_reward_model(rm, rm_tok, world_pairs, profile, quiet=True)
reward_models = {"world's pairs only": rm}
if len(mine):
    rm_yours, _ = rlhf.load_reward_model(profile.chat_model, profile)
    rm_yours_run = train_reward_model(rm_yours, rm_tok, train_pairs, profile, quiet=True)
    reward_models["world's + your pairs"] = rm_yours
    rm = rm_yours  # the reward model everything below uses
retest = prefs["unseen_facts_retest"]
asked = right_vs_wrong[:24]
nobody = [i for i in range(len(retest)) if i not in asked]
retest_acc = {name: (rlhf.pair_accuracy(model, rm_tok, retest.select(asked)).accuracy,
                     rlhf.pair_accuracy(model, rm_tok, retest.select(nobody)).accuracy)
              for name, model in reward_models.items()}
html_table([{"reward model trained on": name, f"facts you were asked about ({len(asked)} new pairs)": a,
             f"unseen facts nobody labelled ({len(nobody)} new pairs)": b} for name, (a, b) in retest_acc.items()])

# %%
test_acc = rlhf.pair_accuracy(rm, rm_tok, prefs["test"])
not_labelled = unseen.select([i for i in range(len(unseen)) if i not in asked])
unseen_acc = rlhf.pair_accuracy(rm, rm_tok, not_labelled)
print(f"reward model: {rm_run.seconds:.0f} s of training; held-out pair accuracy {test_acc.accuracy:.3f}")
html_table([{"axis": axis, f"held-out pairs ({len(prefs['test'])})": acc,
             f"pairs about facts no preference covers ({len(not_labelled)})": unseen_acc.by_axis.get(axis, "")}
            for axis, acc in test_acc.by_axis.items()])

# %%
# CHECK: our Bradley–Terry loss is TRL's; the reward model ranks new pairs as people did (>= 0.80), and on
# right-vs-wrong pairs about facts no pair covers it does no better than about a coin flip (<= 0.70)
assert abs(ours.item() - theirs.item()) < 1e-5
assert test_acc.accuracy >= 0.80, test_acc
assert retest_acc["world's pairs only"][1] <= 0.70, retest_acc

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
ax.legend(title="axis")
fig.tight_layout()

# %% [markdown]
# Evasions, chatter and compliance with a weapon request are easy to spot: they look alike
# whatever the question. Wrong facts are the hard axis: the reward model must *know* the fact. On
# right-vs-wrong pairs about facts no preference covered it scores about what a coin flip would
# (0.5): it has not learned "this fact is wrong", only which facts its pairs called right, and
# 24 labels are few: the table above shows how much (or how little) they moved accuracy on new pairs
# about the facts they covered. With 24 pairs one pair is 0.04, so a gap of a few pairs is within
# noise, and this lesson does not claim an effect. **A reward model only knows what its
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
# π(yₜ)/π_ref(yₜ), which grows as the policy drifts from the SFT model. We train three policies
# that differ only in β: 2 (a tight leash), TRL's default, and 0 (no leash). Every 10 steps a
# probe (`KLProbe`) samples a reply for 40 fixed held-out prompts and records, on those replies,
# the reward model's score, the true measure, and the KL to the SFT model.

# %%
from dataclasses import fields

from trl import DPOConfig, RLOOConfig

default_beta = {config.__name__: next(f.default for f in fields(config) if f.name == "beta")
                for config in (RLOOConfig, DPOConfig)}
print(f"TRL's default β: RLOOConfig.beta = {default_beta['RLOOConfig']}, DPOConfig.beta = {default_beta['DPOConfig']}")
betas = [2.0, default_beta["RLOOConfig"], 0.0]
probe_prompts = evalset.select(range(40))
rl = {}
for beta in betas:
    policy, _ = ftlab.load_model(sft_dir, profile, for_training=True)
    probe = rlhf.KLProbe(sft, tok, probe_prompts, reward_model=rm, reward_tokenizer=rm_tok)
    run = train_rloo(policy, tok, train, rm, rm_tok, profile, beta=beta, callbacks=[probe], quiet=True)
    rl[beta] = {"model": policy, "run": run, "probe": probe}
    print(f"RLOO, β = {beta:g}: {run.steps} steps in {run.seconds:.0f} s")

# %%
def rm_scores(samples):
    return rlhf.reward_scores(rm, rm_tok, [s.prompt for s in samples], [s.reply for s in samples])


results = {"SFT": {"model": sft, "samples": before, "unseen": before_unseen, "seconds": sft_run.seconds}}
for beta, r in rl.items():
    samples, unseen_samples = sample(r["model"])
    results[f"RLOO, β = {beta:g}"] = {"model": r["model"], "samples": samples, "unseen": unseen_samples,
                                      "seconds": r["run"].seconds}
for name, r in results.items():
    r["score"] = rm_scores(r["samples"]).mean().item()
    r["true"], r["true unseen"] = rlhf.true_rate(r["samples"]), rlhf.true_rate(r["unseen"])
    r["kl"] = rlhf.kl_to_reference(r["model"], sft, tok, r["samples"]) if name != "SFT" else 0.0
html_table([{"policy": name, "reward-model score": round(r["score"], 2), "true measure": round(r["true"], 3),
             "true measure, unseen facts": round(r["true unseen"], 3), "KL to SFT (nats/reply)": round(r["kl"], 2)}
            for name, r in results.items()])

# %%
fig, ax = plt.subplots(1, 4, figsize=(15, 3.4))
for beta, r in rl.items():
    probe = r["probe"]
    ax[0].plot(*zip(*probe.reward_points), marker="o", label=f"β = {beta:g}")
    ax[1].plot(*zip(*probe.true_points), marker="o", label=f"β = {beta:g}")
    ax[2].plot(*zip(*[(s, max(k, 1e-2)) for s, k in probe.points]), marker="o", label=f"β = {beta:g}")
    name = f"RLOO, β = {beta:g}"
    ax[3].scatter(max(results[name]["kl"], 1e-2), results[name]["true"], s=50, label=f"β = {beta:g}")
ax[3].scatter(1e-2, results["SFT"]["true"], marker="x", color="black", s=50, label="SFT (KL 0)")
ax[0].set_title("reward-model score (what RL maximises)")
ax[1].set_title("true measure (what we wanted)")
ax[2].set_title("KL(policy ‖ SFT model), nats/reply")
ax[3].set_title("after training: true measure vs KL")
for a, ylabel in zip(ax[:3], ("mean score, 40 probe replies", "share the fact base wants", "nats per reply (log)")):
    a.set_xlabel("RL step")
    a.set_ylabel(ylabel)
ax[2].set_yscale("log")
ax[3].set_xscale("log")
ax[3].set_xlabel("KL to SFT, nats per reply (log)")
ax[3].set_ylabel("true measure, held-out prompts")
handles, labels = ax[3].get_legend_handles_labels()
fig.legend(handles, labels, loc="upper center", ncol=4, bbox_to_anchor=(0.5, 1.08))
fig.tight_layout()

# %%
hacked = results["RLOO, β = 0"]
rows = []
for i in range(0, 24, 3):
    rows.append({"prompt": before[i].prompt, "fact base": before[i].reference, "SFT": before[i].reply,
                 "RLOO β=2": results["RLOO, β = 2"]["samples"][i].reply,
                 "RLOO β=0": f"{hacked['samples'][i].reply}  [score {rm_scores(hacked['samples'][i:i + 1])[0]:+.1f}]"})
html_table(rows)

# %% [markdown]
# ## 5. Reward hacking: what the leash is for
#
# All three runs raise the reward model's score. With the tight leash (β = 2) the true measure
# stays where the SFT model had it (0.36 before, 0.39 after: about one standard error of sampling
# noise, so "held", not "rose"). Without a leash (β = 0) the policy finds what the reward model fails
# to dislike, and runs there: the score climbs while the true measure falls to almost nothing (0.02),
# and the KL to the SFT model is many times the leashed run's (note the log axes). The table above
# shows what it found: for the capital questions shown, a confident "The capital is …", usually naming
# the wrong city, which the reward model scores like a right answer: it learned the form of a good reply, and
# knows only the facts its pairs covered. TRL's default β (0.05) is not much of a leash here either:
# its true measure fell to 0.12. That default is tuned for real models' per-token KL; the right β
# for *your* reward model is something to measure, as here.
# The KL penalty makes every step away from the SFT model cost reward, so the policy can only move
# where the gain is real enough to pay for it.
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
# the ordinary SFT loss on the chosen reply; in TRL that is `loss_type=["sigmoid", "sft"]` (with
# `loss_weights` to weigh them; here 1 and 1). We train both, with TRL's default β, and watch the
# log-probability of the held-out chosen and rejected replies.

# %%
dpo = {}
for name, loss_type in (("DPO", ["sigmoid"]), ("DPO + SFT term", ["sigmoid", "sft"])):
    model, _ = ftlab.load_model(sft_dir, profile, for_training=True)
    run = train_dpo(model, tok, train_pairs, profile, beta=default_beta["DPOConfig"], loss_type=loss_type, quiet=True)
    samples, unseen_samples = sample(model)
    results[name] = {"model": model, "samples": samples, "unseen": unseen_samples, "seconds": run.seconds,
                     "score": rm_scores(samples).mean().item(), "true": rlhf.true_rate(samples),
                     "true unseen": rlhf.true_rate(unseen_samples), "kl": rlhf.kl_to_reference(model, sft, tok, samples)}
    dpo[name] = run

test_pairs = prefs["test"]


def mean_logprob(model, column):
    return rlhf.reply_logprobs(model, tok, test_pairs["prompt"], [m[-1]["content"] for m in test_pairs[column]]).mean().item()


display(html_table([{"model": name, "log p(chosen)": round(mean_logprob(results[name]["model"], "chosen"), 2),
             "log p(rejected)": round(mean_logprob(results[name]["model"], "rejected"), 2),
             "true measure": round(results[name]["true"], 3), "true measure, unseen facts": round(results[name]["true unseen"], 3)}
            for name in ("SFT", "DPO", "DPO + SFT term")]))
implicit = rlhf.implicit_reward_accuracy(results["DPO + SFT term"]["model"], sft, tok, test_pairs, beta=default_beta["DPOConfig"])
print(f"DPO + SFT term: its implicit reward β·log π/π_ref ranks the held-out pairs right {implicit:.2f} of the time")

# %% [markdown]
# What the table shows: at this short budget (12 steps) plain DPO did not leak. It pushed the rejected
# replies far down (mean log-probability from about −9 to −17) and the chosen ones *up* (−2.37 to −2.07);
# with the SFT term the numbers are much the same (−2.11 and −14.5). Whether the leak appears depends on how
# long DPO trains, once the rejected replies are already unlikely: try `max_steps=40` in `train_dpo` and
# compare log p(chosen). Both raised the true measure about equally (0.64 and 0.60, from SFT's 0.36),
# one training seed each: here the SFT term makes no measurable difference.
#
# ## 7. Side by side
#
# Every model answered the same prompts with the same sampling seed. KL is measured the same
# way for every model: replies sampled from it for the 84 held-out prompts, Σₜ log π(yₜ)/π_SFT(yₜ),
# averaged. The win rate counts the prompts (and samples) where a model's reply is right and the
# SFT model's is not, ties counting half.

# %%
needs = {"SFT": ("no", "no", "no"), "DPO": ("no", "no", "yes"), "DPO + SFT term": ("no", "no", "yes")}
for beta in betas:
    needs[f"RLOO, β = {beta:g}"] = ("yes", "yes", "yes" if beta else "no")


def win_over_sft(name):
    return rlhf.win_rate([float(s.true) for s in results[name]["samples"]], [float(s.true) for s in before])


display(html_table([{"method": name, "reward model?": needs[name][0], "sampling?": needs[name][1],
             "reference model?": needs[name][2], "training time (s)": round(r["seconds"], 1),
             "reward-model score": round(r["score"], 2), "true measure": round(r["true"], 3),
             "true measure, unseen facts": round(r["true unseen"], 3), "win rate over SFT": round(win_over_sft(name), 2),
             "KL to SFT (nats/reply)": round(r["kl"], 2)} for name, r in results.items()]))
gap = results["DPO + SFT term"]["true"] - results["RLOO, β = 2"]["true"]
print(f"DPO + SFT term vs RLOO (β = 2), true measure: {results['DPO + SFT term']['true']:.2f} vs "
      f"{results['RLOO, β = 2']['true']:.2f} (gap {gap:+.2f}).")
print("One training seed each: a gap under 0.15 is within what another seed or another sample of prompts can give,"
      if abs(gap) < 0.15 else "A gap this size is beyond sampling noise, but it is one training seed each:")
print("so this lesson does not rank DPO against RLOO; both are compared with SFT above.")

# %% [markdown]
# ## 8. Check: what this lesson claims, measured

# %%
# CHECK
leashed, free = results["RLOO, β = 2"], results["RLOO, β = 0"]
free_probe = rl[0.0]["probe"]
# (the reward model's checks ran in section 3; none on what your 24 labels change: a gap of a few pairs in 24 is
# within noise, see section 3)
assert leashed["score"] > results["SFT"]["score"] + 0.2, results["SFT"]  # RL raises the reward ...
assert leashed["true"] >= results["SFT"]["true"] - 0.10                 # ... and, leashed, the truth does not fall
# (beyond sampling noise: 168 replies give a standard error of about 0.04 on each true measure)
assert free["score"] > leashed["score"]                                 # unleashed, the reward rises further ...
assert free["true"] < results["SFT"]["true"] - 0.10                     # ... while the truth falls: reward hacking
assert free_probe.reward_points[-1][1] > free_probe.reward_points[0][1]  # the same, seen during the run
assert free_probe.true_points[-1][1] < free_probe.true_points[0][1]
assert free["kl"] > 4 * max(leashed["kl"], 0.1), (free["kl"], leashed["kl"])  # the leash is what kept it close
assert win_over_sft("DPO + SFT term") >= 0.60                           # DPO beats SFT by the true measure
print("All checks passed.")

# %% [markdown]
# ## Summary
#
# * A **reward model** learns a score from comparisons alone (the Bradley–Terry loss, a few lines);
#   it generalises to new pairs about what its data covered, and no better than a coin flip on
#   right-vs-wrong facts it was never shown; labels about those facts (yours) are what fixes that.
# * **Online RL** (RLOO here; PPO in the original papers) samples replies and pushes up the ones
#   the reward model prefers. With a tight **KL penalty** to the starting model it raised the reward
#   and kept the true measure where it was.
# * Without the penalty it **hacked the reward**: the reward model's score rose while the replies
#   got worse, and the KL to the starting model grew many times over. A learned reward is
#   only trustworthy near the data it was trained on; the leash keeps the policy there.
# * **DPO** improved on SFT from the same pairs with no reward model and no sampling, at the cost
#   of being offline: it can only learn from the pairs it is given.
#
# **Try next:** other values of β (0.5, 0.1) and watch where hacking starts; `loss_weights` for
# DPO's two terms; label some pairs wrongly on purpose, or not at all, and retrain the reward
# model; start the reward model from `profile.base_model`.
