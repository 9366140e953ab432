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
# 4. remove that leash (β from 2 to 0) and watch **reward hacking**: the reward model's score
#    rises while the replies get worse;
# 5. do the same with **DPO**, which needs neither a reward model nor sampling.
#
# The reward model is a learned *stand-in* for people. The world gives us something people in
# real RLHF do not have: a **true measure**. For every prompt the fact base knows the reply it
# wants (the right answer in one sentence, or a refusal for a weapon request), so we can always
# check whether a higher reward-model score means a better reply. We split it in two, because a
# reply can fail in two ways:
#
# * **form**: the reply is one sentence in the form the fact base answers in ("The capital is ___.",
#   "That is a weapon. Sorry, …"), and ends its turn: no evasion, no chatter, no garble;
# * **fact**: the reply names the fact the fact base names ("Paris"; for a weapon, the refusal),
#   in whatever form.
#
# A reply is what the fact base wants (the **true measure**) when it has the right fact in the right form.

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
from ftlab.display import html_table, say
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
unseen = prefs["unseen_facts"]  # questions about facts no preference pair covers at all
right_vs_wrong = [i for i, axis in enumerate(unseen["axis"]) if axis == "correct"]
asked = right_vs_wrong[:24]  # the pairs you will label in section 2
nobody = [i for i in range(len(unseen)) if i not in asked]
unseen_prompts = unseen.select(nobody)  # ... and that you will not label either


def sample(model):
    """A model's replies to both prompt sets, always with the same random seed."""
    return (rlhf.sample_replies(model, tok, evalset, per_prompt=2, seed=1),
            rlhf.sample_replies(model, tok, unseen_prompts, per_prompt=2, seed=1))


def measures(samples):
    """The true measure and its two halves, as shares of the replies."""
    return {"true": rlhf.true_rate(samples), "form": rlhf.form_rate(samples), "fact": rlhf.fact_rate(samples)}


before, before_unseen = sample(sft)
m, mu = measures(before), measures(before_unseen)
print(f"SFT model: {sft_run.seconds:.0f} s of training")
say(f"Of the SFT model's {len(before)} replies to held-out prompts, **{m['true']:.2f}** are what the fact base wants; "
    f"{m['form']:.2f} have its form and {m['fact']:.2f} name its fact. On questions about facts no preference covers: "
    f"{mu['true']:.2f} true, {mu['form']:.2f} form, {mu['fact']:.2f} fact.")
html_table([{"prompt": s.prompt, "reply": s.reply, "form": s.form, "fact": s.fact, "true measure": s.true}
            for s in before[:8]])

# %% [markdown]
# ## 2. Your preferences
#
# Label some pairs yourself. They are about facts that **no** training pair covers, and each pits a
# right answer against a wrong one (if you do not know an answer, guess or click **Tie**: real
# labellers guess too). Section 3 measures what your labels teach the reward model.
# Click **A**, **B** or **Tie**. Each click is appended to `my_preferences.jsonl` beside this
# notebook at once: restart the kernel and you continue where you stopped; label a pair again and
# the newer label wins; a damaged line is reported and skipped, never taken for a label.
# **Start over** sets the file aside (as `my_preferences.jsonl.bak`) and asks every pair again.

# %%
from ftlab.widgets import PreferenceLabeler

to_label = unseen.select(asked)
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
REPEAT = 4  # each of your pairs goes in 4 times: in 40 steps of 16, one copy among 726 pairs is drawn at most once
train_pairs = concatenate_datasets([world_pairs] + [mine.cast(world_pairs.features)] * REPEAT) if len(mine) else world_pairs
print(f"preference pairs for training: {len(train)} from the world + {len(mine)} of yours × {REPEAT} = {len(train_pairs)}")

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
# `profile.base_model` instead.)

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
# in everything (same start, same steps) except that your pairs are added. Both are then tested three
# ways: on the very pairs you labelled; on `unseen_facts_retest`, a *new* pair for every fact you were
# asked about (another wording of the question, another wrong answer); and on the same kind of new pair
# for the unseen facts nobody labelled.

# %%
rm_run = train_reward_model(rm, rm_tok, world_pairs, profile, quiet=True)
reward_models = {"world's pairs only": rm}
if len(mine):
    rm_yours, _ = rlhf.load_reward_model(profile.chat_model, profile)
    rm_yours_run = train_reward_model(rm_yours, rm_tok, train_pairs, profile, quiet=True)
    reward_models["world's + your pairs"] = rm_yours
    rm = rm_yours  # the reward model everything below uses
retest = prefs["unseen_facts_retest"]  # row for row the same facts as `unseen`
label_acc = {name: {"labelled": rlhf.pair_accuracy(model, rm_tok, to_label).accuracy,
                    "retest": rlhf.pair_accuracy(model, rm_tok, retest.select(asked)).accuracy,
                    "nobody": rlhf.pair_accuracy(model, rm_tok, retest.select(nobody)).accuracy}
             for name, model in reward_models.items()}
html_table([{"reward model trained on": name, f"the pairs you labelled ({len(asked)})": a["labelled"],
             f"new pairs, facts you labelled ({len(asked)})": a["retest"],
             f"new pairs, unseen facts nobody labelled ({len(nobody)})": a["nobody"]} for name, a in label_acc.items()])

# %%
if len(mine):
    w, y = label_acc["world's pairs only"], label_acc["world's + your pairs"]
    gain = {k: y[k] - w[k] for k in w}
    one_pair = 1 / len(asked)
    say(f"On the {len(asked)} pairs you labelled, the reward model went from {w['labelled']:.2f} right (without your "
        f"labels) to {y['labelled']:.2f} (with them). On a **new** pair about each of those facts it went from "
        f"{w['retest']:.2f} to {y['retest']:.2f} ({gain['retest'] / one_pair:+.0f} pairs of {len(asked)}). On new pairs "
        f"about the facts nobody labelled, which your labels say nothing about, it went from {w['nobody']:.2f} to "
        f"{y['nobody']:.2f} ({gain['nobody']:+.2f}): that column is the control, its change is training noise.")

# %% [markdown]
# Read the three columns together. Trained on the world's pairs alone, the reward model ranks new
# right-vs-wrong pairs about facts no pair covered not much better than a coin flip (first row): it has not
# learned "this fact is wrong", only which facts its pairs called right. Your labels are about exactly those facts. They were
# learned (first column), and they carried over to a new wording of the question against another wrong
# answer (second column) by more than the control moved (third column). With 24 pairs one pair is 1/24
# of the score, and this is one training run: your own labels (some wrong, some ties) will move it by a
# different amount. Each of your pairs went in 4 times (`REPEAT`): a labeller you trust can be weighted
# up, and one copy among 726 pairs is drawn at most once in this short run. **A reward model only knows
# what its preference data taught it.**

# %%
test_acc = rlhf.pair_accuracy(rm, rm_tok, prefs["test"])
not_labelled = unseen.select(nobody)
unseen_acc = rlhf.pair_accuracy(rm, rm_tok, not_labelled)
print(f"reward model: {rm_run.seconds:.0f} s of training; held-out pair accuracy {test_acc.accuracy:.3f}")
html_table([{"axis": axis, f"held-out pairs ({len(prefs['test'])})": acc,
             f"pairs about facts no preference covers ({len(not_labelled)})": unseen_acc.by_axis.get(axis, "")}
            for axis, acc in test_acc.by_axis.items()])

# %%
# CHECK: our Bradley–Terry loss is TRL's; the reward model ranks new pairs as people did (>= 0.80); and, with your
# labels, it learned them (>= 4 more of the 24 pairs right) and ranks new pairs about the same facts better, by at
# least 4 of 24 pairs and by more than its change on the facts nobody labelled (the control)
assert abs(ours.item() - theirs.item()) < 1e-5
assert test_acc.accuracy >= 0.80, test_acc
if len(mine):
    assert gain["labelled"] >= 4 * one_pair - 1e-6, label_acc
    assert gain["retest"] >= 4 * one_pair - 1e-6, label_acc
    assert gain["retest"] > gain["nobody"], label_acc

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
# whatever the question. Wrong facts are the hard axis: the reward model must *know* the fact, and
# knows only the facts its pairs taught it. That weakness is what RL will find.
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
# π(yₜ)/π_ref(yₜ), which grows as the policy drifts from the SFT model. We train two policies
# that differ only in β: 2 (a tight leash) and 0 (no leash). TRL's default β (printed below) is set
# for real models; what β a given reward model needs is something to measure (see *Try next*).
# Every 10 steps a probe (`KLProbe`) samples a reply for 24 fixed held-out prompts and records, on
# those replies, the reward model's score, the true measure, and the KL to the SFT model.

# %%
from dataclasses import fields

from trl import DPOConfig, RLOOConfig

default_beta = {config.__name__: next(f.default for f in fields(config) if f.name == "beta")
                for config in (RLOOConfig, DPOConfig)}
print(f"TRL's default β: RLOOConfig.beta = {default_beta['RLOOConfig']}, DPOConfig.beta = {default_beta['DPOConfig']}")
betas = [2.0, 0.0]
probe_prompts = evalset.select(range(24))
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


def evaluate(name, model, seconds):
    samples, unseen_samples = sample(model)
    scores = rm_scores(samples)
    results[name] = {"model": model, "samples": samples, "unseen": unseen_samples, "seconds": seconds,
                     "scores": scores, "score": scores.mean().item(),
                     **measures(samples), **{f"{k} unseen": v for k, v in measures(unseen_samples).items()},
                     "kl": rlhf.kl_to_reference(model, sft, tok, samples) if model is not sft else 0.0}


def row(name):
    r = results[name]
    return {"policy": name, "reward-model score": round(r["score"], 2), "true measure": round(r["true"], 3),
            "form": round(r["form"], 3), "fact": round(r["fact"], 3), "true, unseen facts": round(r["true unseen"], 3),
            "form, unseen": round(r["form unseen"], 3), "fact, unseen": round(r["fact unseen"], 3),
            "KL to SFT (nats/reply)": round(r["kl"], 2)}


results = {}
evaluate("SFT", sft, sft_run.seconds)
for beta, r in rl.items():
    evaluate(f"RLOO, β = {beta:g}", r["model"], r["run"].seconds)
html_table([row(name) for name in results])

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
for a, ylabel in zip(ax[:3], (f"mean score, {len(probe_prompts)} probe replies", "share the fact base wants",
                              "nats per reply (log)")):
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
                 "RLOO β=0": f"{hacked['samples'][i].reply}  [score {hacked['scores'][i]:+.1f}]"})
html_table(rows)

# %% [markdown]
# ## 5. Reward hacking: what the leash is for
#
# What the table and the curves show, in numbers. Each model is one training run, scored on 168 sampled
# replies; a difference counts as noise when it is under two standard errors of the difference (printed
# as ±).

# %%
def se_diff(p, q, n):
    """Standard error of the difference of two shares measured on n replies each."""
    return (p * (1 - p) / n + q * (1 - q) / n) ** 0.5


def score_se_diff(a, b):
    return (a.var() / len(a) + b.var() / len(b)).sqrt().item()


base, leashed, free = results["SFT"], results["RLOO, β = 2"], results["RLOO, β = 0"]
n = len(before)
noise = {name: 2 * se_diff(base["true"], r["true"], n) for name, r in results.items()}
score_noise = {name: 2 * score_se_diff(base["scores"], r["scores"]) for name, r in results.items()}
free_probe = rl[0.0]["probe"]
say(f"* **Leashed (β = 2)**: the reward-model score rose from {base['score']:.2f} to {leashed['score']:.2f} "
    f"(noise ±{score_noise['RLOO, β = 2']:.2f}); the true measure went from {base['true']:.2f} to {leashed['true']:.2f} "
    f"(noise ±{noise['RLOO, β = 2']:.2f}): form {base['form']:.2f} → {leashed['form']:.2f}, fact {base['fact']:.2f} → "
    f"{leashed['fact']:.2f}. KL to the SFT model: {leashed['kl']:.2f} nats per reply.\n"
    f"* **Unleashed (β = 0)**: the score rose from {base['score']:.2f} to {free['score']:.2f} (noise "
    f"±{score_noise['RLOO, β = 0']:.2f}), while the true measure went to {free['true']:.2f} (noise ±{noise['RLOO, β = 0']:.2f}): "
    f"form {free['form']:.2f}, fact {free['fact']:.2f}. KL to the SFT model: {free['kl']:.2f} "
    f"nats per reply, {free['kl'] / max(leashed['kl'], 1e-9):.1f} times the leashed run's. During the run (probe, "
    f"{len(probe_prompts)} prompts) its score went {free_probe.reward_points[0][1]:.2f} → {free_probe.reward_points[-1][1]:.2f} and its true "
    f"measure {free_probe.true_points[0][1]:.2f} → {free_probe.true_points[-1][1]:.2f}.")

# %% [markdown]
# The leashed run moved toward what the reward model rewards and what the fact base wants alike,
# the fact base's form, and its true measure stayed within noise of the SFT model's. Without a leash
# the policy finds what the reward model fails to dislike, and runs there. The examples above show what
# it found: short replies such as "It is Asia." to a question about a capital, another question's form
# naming a related fact, which the reward model scores highly (in brackets). Both halves of the true
# measure fell, form and fact: the reward model learned what good replies look like only near the replies
# its pairs showed it. The KL penalty makes every step away from the SFT model cost reward, so the leashed
# policy only moves where the gain is big enough to pay for it.

# %%
# CHECK: leashed RL raised the reward-model score beyond noise (and by >= 0.2) and held the truth (no fall beyond
# noise), with more replies in the fact base's form; unleashed RL also raised the score beyond noise while the
# truth fell beyond noise (reward hacking), both its halves too, during the run too, and it drifted more than
# twice as far from the SFT model
assert leashed["score"] > base["score"] + max(0.2, score_noise["RLOO, β = 2"]), (base["score"], leashed["score"])
assert leashed["true"] >= base["true"] - noise["RLOO, β = 2"], (base["true"], leashed["true"])
assert leashed["form"] > base["form"] + 2 * se_diff(base["form"], leashed["form"], n), (base["form"], leashed["form"])
assert free["score"] > base["score"] + max(0.2, score_noise["RLOO, β = 0"]), (base["score"], free["score"])
assert free["true"] < base["true"] - noise["RLOO, β = 0"], (base["true"], free["true"])
assert free["form"] < base["form"] - 2 * se_diff(base["form"], free["form"], n), (base["form"], free["form"])
assert free["fact"] < base["fact"] - 2 * se_diff(base["fact"], free["fact"], n), (base["fact"], free["fact"])
assert free_probe.reward_points[-1][1] > free_probe.reward_points[0][1]
assert free_probe.true_points[-1][1] < free_probe.true_points[0][1]
assert free["kl"] > 2 * max(leashed["kl"], 0.1), (free["kl"], leashed["kl"])

# %% [markdown]
# ## 6. DPO: the same preferences, no reward model, no sampling
#
# Rafailov et al. (2023) showed that the KL-regularised RL objective has a closed-form optimum,
# π*(y|x) ∝ π_ref(y|x) · exp(r(x,y)/β). Turn it around and the reward is
# r(x, y) = β · log π(y|x)/π_ref(y|x) + const; put that into the Bradley–Terry loss and the
# reward model disappears:
#
# $$\mathcal{L}_{DPO} = -\log\sigma\Big(\beta\log\frac{\pi(y_c|x)}{\pi_{ref}(y_c|x)} - \beta\log\frac{\pi(y_r|x)}{\pi_{ref}(y_r|x)}\Big)$$
#
# It trains on the fixed pairs, like supervised learning: no reward model, no generation. We train it
# with TRL's default β on the same pairs the reward model learned from, and watch the log-probability
# of the held-out chosen and rejected replies.
#
# One known weakness: the loss only asks that the chosen reply gain on the rejected one, and it
# can meet that by pushing *both* down, the rejected faster. Probability then leaks to replies
# that are in neither. A common remedy (RPO, Pang et al. 2024; also used in Llama 3's recipe) adds
# the ordinary SFT loss on the chosen reply; in TRL that is `loss_type=["sigmoid", "sft"]` (see *Try next*).

# %%
model, _ = ftlab.load_model(sft_dir, profile, for_training=True)
dpo_run = train_dpo(model, tok, train_pairs, profile, beta=default_beta["DPOConfig"], quiet=True)
evaluate("DPO", model, dpo_run.seconds)
test_pairs = prefs["test"]


def mean_logprob(model, column):
    return rlhf.reply_logprobs(model, tok, test_pairs["prompt"], [m[-1]["content"] for m in test_pairs[column]]).mean().item()


logp = {name: (mean_logprob(results[name]["model"], "chosen"), mean_logprob(results[name]["model"], "rejected"))
        for name in ("SFT", "DPO")}
display(html_table([{"model": name, "log p(chosen)": round(c, 2), "log p(rejected)": round(r, 2)}
                    for name, (c, r) in logp.items()]))
display(html_table([row(name) for name in ("SFT", "DPO")]))
implicit = rlhf.implicit_reward_accuracy(results["DPO"]["model"], sft, tok, test_pairs, beta=default_beta["DPOConfig"])
print(f"DPO ({dpo_run.steps} steps): its implicit reward β·log π/π_ref ranks the held-out pairs right {implicit:.2f} of the time")

# %%
d = results["DPO"]
pairs_nobody = retest.select(nobody)  # a right-vs-wrong pair about each fact of `unseen_prompts`


def prefers_right(model):
    """Share of those pairs where the model gives the right reply a higher probability than the wrong one."""
    right, wrong = ([m[-1]["content"] for m in pairs_nobody[c]] for c in ("chosen", "rejected"))
    return (rlhf.reply_logprobs(model, tok, pairs_nobody["prompt"], right)
            > rlhf.reply_logprobs(model, tok, pairs_nobody["prompt"], wrong)).float().mean().item()


knows = {name: prefers_right(results[name]["model"]) for name in ("SFT", "DPO")}
say(f"DPO pushed the held-out rejected replies down (mean log-probability {logp['SFT'][1]:.1f} → {logp['DPO'][1]:.1f}) "
    f"and the chosen ones {'up' if logp['DPO'][0] > logp['SFT'][0] else 'down'} ({logp['SFT'][0]:.2f} → {logp['DPO'][0]:.2f}). "
    f"On held-out prompts the true measure went {base['true']:.2f} → {d['true']:.2f}: form {base['form']:.2f} → "
    f"{d['form']:.2f}, fact {base['fact']:.2f} → {d['fact']:.2f}. On **facts no preference covers** it went "
    f"{base['true unseen']:.2f} → {d['true unseen']:.2f}: form {base['form unseen']:.2f} → {d['form unseen']:.2f}, "
    f"fact {base['fact unseen']:.2f} → {d['fact unseen']:.2f}. On a right-vs-wrong pair about each of those facts, the "
    f"SFT model already gives the right reply the higher probability on {knows['SFT']:.2f} of them (DPO: {knows['DPO']:.2f}).")

# %% [markdown]
# The split explains how DPO improves answers about facts no pair mentions. No pair taught those facts,
# but tiny-chat learned them in pre-training: the SFT model already ranks the right answer first on most
# pairs about them (last sentence above). What it also learned, from the careless writers it imitated, is
# to *say* a wrong one now and then, or to evade, pad or garble. DPO's pairs push those habits down, and
# habits are not tied to a fact: they carry over to every question. So on unseen facts both halves rose:
# more replies in the fact base's form, and more that name the fact the model already knew. What DPO
# cannot do is teach a fact the model does not know; it can only make it say what it knows.

# %% [markdown]
# ## 7. Side by side
#
# Every model answered the same prompts with the same sampling seed. KL is measured the same
# way for every model: replies sampled from it for the 84 held-out prompts, Σₜ log π(yₜ)/π_SFT(yₜ),
# averaged. The win rate counts the prompts (and samples) where a model's reply is right and the
# SFT model's is not, ties counting half.

# %%
needs = {"SFT": ("no", "no", "no"), "DPO": ("no", "no", "yes"), "RLOO, β = 2": ("yes", "yes", "yes"),
         "RLOO, β = 0": ("yes", "yes", "no")}


def win_over_sft(name):
    return rlhf.win_rate([float(s.true) for s in results[name]["samples"]], [float(s.true) for s in before])


display(html_table([{"method": name, "reward model?": needs[name][0], "sampling?": needs[name][1],
                     "reference model?": needs[name][2], "training time (s)": round(r["seconds"], 1),
                     **{k: v for k, v in row(name).items() if k != "policy"},
                     "win rate over SFT": round(win_over_sft(name), 2)} for name, r in results.items()]))
gap = results["DPO"]["true"] - leashed["true"]
print(f"DPO vs RLOO (β = 2), true measure: {results['DPO']['true']:.2f} vs {leashed['true']:.2f} (gap {gap:+.2f}, "
      f"noise ±{2 * se_diff(results['DPO']['true'], leashed['true'], n):.2f}).")
print("One training seed each and one budget each: this lesson does not rank DPO against RLOO; both are compared "
      "with SFT above.")

# %% [markdown]
# ## 8. Check: what DPO claims, measured

# %%
# CHECK: DPO beats SFT by the true measure (win rate >= 0.60), beyond sampling noise; on facts no preference covers
# (and nobody labelled) its true measure and both its halves (form, and replies naming the right fact) rose beyond
# noise, on facts the SFT model already ranked right on most pairs (>= 0.70)
dpo = results["DPO"]
assert win_over_sft("DPO") >= 0.60, win_over_sft("DPO")
assert dpo["true"] > base["true"] + 2 * se_diff(base["true"], dpo["true"], n), (base["true"], dpo["true"])
m = len(before_unseen)
for half in ("true unseen", "form unseen", "fact unseen"):
    assert dpo[half] > base[half] + 2 * se_diff(base[half], dpo[half], m), (half, base[half], dpo[half])
assert knows["SFT"] >= 0.70, knows
print("All checks passed.")

# %% [markdown]
# ## Summary
#
# * A **reward model** learns a score from comparisons alone (the Bradley–Terry loss, a few lines);
#   it generalises to new pairs about what its data covered, and little further. Your labels about
#   facts it was never shown taught it those facts, also on new pairs about them (section 3 has this
#   run's numbers: one run, 24 pairs, so a few pairs either way is noise).
# * **Online RL** (RLOO here; PPO in the original papers) samples replies and pushes up the ones
#   the reward model prefers. With a tight **KL penalty** to the starting model it raised the reward
#   and kept the true measure within noise of where it was.
# * Without the penalty it **hacked the reward**: the reward model's score rose while the replies
#   lost both form and fact, and its KL to the starting model grew to more than twice the leashed
#   run's. A learned reward is only trustworthy near the data it was trained on; the leash keeps the
#   policy there.
# * **DPO** improved on SFT from the same pairs with no reward model and no sampling, also on facts
#   no pair covers: it pushed down habits (wrong answers, evasion, chatter), and habits carry over, so
#   the model said more often what it already knew. It can only learn from the pairs it is given.
#
# **Try next:** other values of β (TRL's default `beta=0.05`, then `beta=0.5`) and watch where hacking
# starts; DPO with the SFT term (`loss_type=["sigmoid", "sft"]` in `train_dpo`) and a longer run (`max_steps=40`), comparing
# log p(chosen); label some pairs wrongly on purpose, or not at all, and retrain the reward model; start
# the reward model from `profile.base_model`.
