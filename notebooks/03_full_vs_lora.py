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
# # Lesson 3 — Full fine-tuning vs LoRA, measured side by side
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/ftlab-course/ftlab/blob/main/notebooks/03_full_vs_lora.ipynb)
#
# **Goal.** Specialise the chat model on a narrow domain two ways — updating every weight, or
# training a small low-rank add-on (LoRA) — and measure what each costs (parameters, memory, time,
# disk) and what each does to the model: how much of the domain it learns, and how much of
# everything else it forgets.
#
# **The idea.** A fine-tuning update ΔW to a weight matrix W (d_out × d_in) tends to have low
# "intrinsic rank". LoRA (Hu et al., 2021) freezes W and learns ΔW = B·A with A: r × d_in and
# B: d_out × r, r ≪ d. Only r·(d_in + d_out) numbers train per layer instead of d_in·d_out.
#
# **The domain:** chemical symbols ("What is the chemical symbol for gold?" → "The symbol is Au.").
# The base model read the symbols in pre-training; tiny-chat was never tuned on them. We test on
# elements absent from the domain training set, and measure "everything else" with the `qa` task.

# %%
# Set-up for Colab: installs ftlab and TRL next to Colab's own torch, transformers and
# ipywidgets (nothing to restart). Anywhere else this cell does nothing: `make lab` installed it all.
import sys

if "google.colab" in sys.modules:
    import subprocess

    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet",
                    "ftlab @ git+https://github.com/ftlab-course/ftlab@main"], check=True)

# %%
import os

# PyTorch's CPU threads meet after every operation, and by default one that arrives early spins for a long
# while (300,000 rounds) waiting for its partner. On a machine busy with other jobs the partner is often not
# running, and this tiny model's steps got 5 to 80 times slower; a short spin (then sleep) costs nothing on an
# idle machine. It must be set before torch is first imported (on Linux; macOS's OpenMP ignores it), and it
# changes no result (same threads, same arithmetic).
os.environ.setdefault("GOMP_SPINCOUNT", "10000")

import copy
import time

import matplotlib.pyplot as plt
import numpy as np
import torch

import ftlab
from ftlab.display import html_table
from ftlab.display import say
from ftlab.evaluation import paired_bootstrap, score_chat
from ftlab.lora import linear_modules, lora_config, saved_size, trainable_parameters
from ftlab.memory import bundled_configs, estimate, measure_peak
from ftlab.training import train_sft
from ftlab.world import World

profile = ftlab.setup()
world = World(seed=0)
domain = world.domain()
chat, tok = ftlab.load_model(profile.chat_model, profile)
print("linear layers LoRA can target:", linear_modules(chat))
print(domain["train"][0]["messages"])


# %% [markdown]
# ## 1. LoRA in twenty lines
#
# A LoRA layer wraps a frozen linear layer. `B` starts at zero, so at the start the wrapped layer
# computes exactly what the original did. The update is multiplied by `alpha / r`. Hu et al. keep alpha
# fixed when they change r, so that a larger r does not mean a larger update and the learning rate need not
# be tuned again. Many recipes, and this course's `ftlab.lora.lora_config`, set **alpha = 2r** instead:
# then `alpha / r` is 2 at every rank, and the division by r cancels out. The rank sweep in section 2 measures what
# that does as r grows, next to rsLoRA's scale `alpha / sqrt(r)` (Kalajdzievski, 2023; PEFT's `use_rslora=True`).

# %%
class LoRALinear(torch.nn.Module):
    def __init__(self, base: torch.nn.Linear, r: int, alpha: float):
        super().__init__()
        self.base = base
        self.base.weight.requires_grad_(False)                                   # W is frozen
        self.A = torch.nn.Parameter(torch.randn(r, base.in_features) / base.in_features ** 0.5)
        self.B = torch.nn.Parameter(torch.zeros(base.out_features, r))           # B = 0: no change at start
        self.scale = alpha / r

    def forward(self, x):
        return self.base(x) + (x @ self.A.T @ self.B.T) * self.scale            # W x + (alpha/r) B A x


reference = copy.deepcopy(chat).float().cpu()  # compare the maths in fp32 on the CPU, whatever the profile
q_proj = reference.model.layers[0].self_attn.q_proj
mine = LoRALinear(copy.deepcopy(q_proj), r=4, alpha=8)
n_lora = sum(p.numel() for p in mine.parameters() if p.requires_grad)
print(f"q_proj is {q_proj.in_features} -> {q_proj.out_features}: {q_proj.weight.numel():,} weights; "
      f"LoRA r=4 trains {n_lora:,} = r*(d_in + d_out) = {4 * (q_proj.in_features + q_proj.out_features):,}")

# %% [markdown]
# **Check against PEFT.** We give PEFT's LoRA layer the same frozen weights and the same A and B (a
# random B, so the update is not trivially zero) and compare outputs on the same input.

# %%
from peft import get_peft_model

torch.manual_seed(0)
peft_model = get_peft_model(reference, lora_config(reference, r=4, alpha=8, targets=["q_proj"]))
with torch.no_grad():
    mine.B.normal_()
    peft_layer = peft_model.base_model.model.model.layers[0].self_attn.q_proj
    peft_layer.lora_A["default"].weight.copy_(mine.A)
    peft_layer.lora_B["default"].weight.copy_(mine.B)
    x = torch.randn(3, 7, q_proj.in_features)
    scratch_vs_peft = (mine(x) - peft_layer(x)).abs().max().item()
print(f"max |scratch - PEFT| = {scratch_vs_peft:.2e}")

# %% [markdown]
# ## 2. Specialising on the domain: full fine-tuning vs LoRA
#
# This domain is easy for the model: the symbols are in its pre-training, and only the question-and-answer
# form is new. An earlier version of this lesson trained for 60 steps, and 6 of its 8 LoRA runs answered
# *every* held-out element: a perfect score against a perfect score says nothing about which method learns more. So each run here
# gets a small budget — `STEPS` optimizer steps on 8 conversations each, a constant learning rate after
# one warm-up step — and we compare how far each gets. We measure:
#
# * **domain accuracy**: held-out elements, every question form (the `domain` task);
# * **general accuracy**: the `qa` questions about everything else — what drops is what was forgotten;
# * trainable parameters, peak memory and seconds per training step, and the size on disk.
#
# Both accuracies use `evaluate`'s rule (the right answer, and the turn ended), all questions in one batch.

# %%
domain_train = domain["train"].remove_columns("answer")
general = world.qa_eval()
questions = {"domain": ([m[0]["content"] for m in domain["test"]["messages"]], list(domain["test"]["answer"])),
             "general": (list(general["question"]), list(general["answer"]))}


def replies(model, task: str) -> list[dict]:
    """One row per question: the reply, and whether it is correct."""
    return score_chat(model, tok, *questions[task], batch_size=256)


def accuracy(model, task: str) -> float:
    rows = replies(model, task)
    return sum(r["correct"] for r in rows) / len(rows)


before_rows = {task: replies(chat, task) for task in questions}
before = {task: np.mean([r["correct"] for r in rows]) for task, rows in before_rows.items()}
print(f"tiny-chat before: domain {before['domain']:.2f}, general {before['general']:.2f} "
      f"({len(questions['domain'][0])} and {len(questions['general'][0])} questions)")

STEPS = 6  # about one pass over the 44 conversations


def finetune(lora, learning_rate: float, seed: int = 0) -> dict:
    """tiny-chat tuned on the domain for STEPS steps: every weight (lora=None) or a LoRA (r, targets[, rslora]).

    LoRA's alpha is 2r (lora_config's default: scale alpha/r = 2), or with rslora 8 (scale 8/sqrt(r), also 2 at r=16)."""
    torch.manual_seed(seed)  # LoRA's random A matrices; the data order follows data_seed
    model, _ = ftlab.load_model(profile.chat_model, profile, for_training=True)
    rslora = lora is not None and len(lora) > 2 and lora[2]
    peft = None if lora is None else lora_config(model, r=lora[0], targets=lora[1], alpha=8 if rslora else None,
                                                 rslora=rslora)
    run = train_sft(model, tok, domain_train, profile, peft_config=peft, assistant_only_loss=True, max_steps=STEPS,
                    per_device_train_batch_size=8, learning_rate=learning_rate, warmup_steps=1,
                    lr_scheduler_type="constant_with_warmup", seed=seed, data_seed=seed, quiet=True)
    rows = {task: replies(run.model, task) for task in questions}
    correct = {task: np.array([r["correct"] for r in rows[task]], dtype=float) for task in questions}
    return {"domain": correct["domain"].mean(), "general": correct["general"].mean(), "correct": correct,
            "rows": rows, "lr": learning_rate, "seed": seed, "model": run.model}


# %% [markdown]
# ### A fair learning rate for each
#
# Full fine-tuning and LoRA want different learning rates: LoRA's `B` starts at zero and its update is
# scaled by alpha/r. Biderman et al. (2024) swept the learning rate for each method separately and found
# LoRA's best rate an order of magnitude or more above full fine-tuning's. Comparing both at one rate would pit a tuned method
# against an untuned one. So each gets a small sweep —
# a third of, equal to, and three times the profile's default for its kind — and keeps the rate that
# learns the domain best. LoRA here is the everyday choice, r = 16 on every linear layer.
# (We pick on the same held-out elements we report, a small optimism shared by both arms; a real project
# picks on a separate validation split.)

# %%
LORA = (16, "all-linear")
arms = {"full": (None, profile.learning_rates["sft"]), "LoRA r=16": (LORA, profile.learning_rates["lora"])}
sweep = {name: [finetune(spec, default * f) for f in (1 / 3, 1, 3)] for name, (spec, default) in arms.items()}
chosen = {name: max(runs, key=lambda r: (r["domain"], r["general"])) for name, runs in sweep.items()}
html_table([{"method": name, "learning rate": f"{r['lr']:.0e}", "domain accuracy": r["domain"],
             "general accuracy": r["general"], "chosen": "✓" if r is chosen[name] else ""}
            for name, runs in sweep.items() for r in runs])

# %%
# CHECK: at its chosen rate each method learned the domain (seed 0; all three seeds are checked at the end)
assert all(r["domain"] >= before["domain"] + 0.2 for r in chosen.values()), {n: r["domain"] for n, r in chosen.items()}

# %%
fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), sharex=True)
colours = {"full": "tab:red", "LoRA r=16": "tab:green"}
for ax, task in zip(axes, ("domain", "general")):
    for name, runs in sweep.items():
        ax.plot([r["lr"] for r in runs], [r[task] for r in runs], "o-", color=colours[name], label=name)
        ax.plot(chosen[name]["lr"], chosen[name][task], "o", ms=12, mfc="none", color=colours[name])
    ax.axhline(before[task], color="grey", ls=":", label="tiny-chat before")
    ax.set_xscale("log")
    rates = sorted(r["lr"] for runs in sweep.values() for r in runs)
    ax.minorticks_off()
    ax.set_xticks(rates, [f"{lr:.1g}" for lr in rates], fontsize=7, rotation=30)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel(f"{task} accuracy")
    ax.set_title(f"{task} accuracy after {STEPS} steps (circled: chosen)", fontsize=9)
axes[0].legend(fontsize=8)
fig.tight_layout()

# %% [markdown]
# ### Full fine-tuning vs LoRA, each at its own rate, over three seeds
#
# A seed changes the order of the conversations and LoRA's random `A`. A difference between the two
# methods means something only if it is larger than what changing the seed, or the questions asked, does
# alone. `ftlab.evaluation.paired_bootstrap` tests that: the two arms are paired by seed and question
# (seed 0 of full fine-tuning against seed 0 of LoRA, question by question); it redraws the seeds and the
# questions with replacement 4,000 times, and takes the central 95% of the mean difference over those
# redraws. The arms are **different** when that interval excludes 0. The same test, tuned model against
# tiny-chat, tells whether a method learned (domain) or forgot (general) at all.

# %%
SEEDS = (0, 1, 2)
by_seed = {name: [chosen[name]] + [finetune(arms[name][0], chosen[name]["lr"], seed=s) for s in SEEDS[1:]]
           for name in arms}
summary = {name: {task: np.array([r[task] for r in runs]) for task in ("domain", "general")}
           for name, runs in by_seed.items()}
html_table([{"method": name, "learning rate": f"{chosen[name]['lr']:.0e}",
             **{f"{task} accuracy, per seed": " ".join(f"{v:.2f}" for v in s[task]) for task in s},
             "domain mean": s["domain"].mean(), "general mean": s["general"].mean()}
            for name, s in summary.items()])

# %%
per_question = {name: {task: np.stack([r["correct"][task] for r in runs]) for task in questions}
                for name, runs in by_seed.items()}  # (seeds, questions), 1 = right
before_correct = {task: np.array([r["correct"] for r in rows], dtype=float) for task, rows in before_rows.items()}
verdict = {task: paired_bootstrap(per_question["full"][task], per_question["LoRA r=16"][task]) for task in questions}
against_before = {(name, task): paired_bootstrap(per_question[name][task], before_correct[task])
                  for name in per_question for task in questions}
for (name, task), test in against_before.items():
    print(f"{name:>9} - tiny-chat, {task:>7}: {test}")
for task, test in verdict.items():
    print(f"     full - LoRA r=16, {task:>7}: {test}")

fig, ax = plt.subplots(figsize=(7.5, 3.4))
for i, (name, s) in enumerate(summary.items()):
    for j, task in enumerate(("domain", "general")):
        values = s[task]
        ax.bar(j + 0.38 * i, values.mean(), width=0.36, color=colours[name], alpha=0.8, label=name if j == 0 else None,
               yerr=[[values.mean() - values.min()], [values.max() - values.mean()]], capsize=4)
        ax.plot([j + 0.38 * i] * len(values), values, "k.", ms=4)
ax.set_xticks([0.19, 1.19], ["domain accuracy\n(learned)", "general accuracy\n(kept)"])
for j, task in enumerate(("domain", "general")):
    ax.hlines(before[task], j - 0.2, j + 0.58, color="grey", ls=":", label="tiny-chat before" if j == 0 else None)
ax.set_ylabel("accuracy")
ax.set_title("3 seeds each — bar: mean; whiskers: min–max; dots: single seeds", fontsize=9)
ax.set_ylim(0, 1.05)
ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
fig.tight_layout()

# %%
def words(test) -> str:
    return "different" if test.different else "no measurable difference"


m = {name: {task: s[task].mean() for task in s} for name, s in summary.items()}
say(f"**Learning.** Over three seeds, full fine-tuning reached a mean domain accuracy of {m['full']['domain']:.2f} "
    f"and LoRA r = 16 {m['LoRA r=16']['domain']:.2f}, from {before['domain']:.2f} before (each against tiny-chat: "
    f"{words(against_before['full', 'domain'])}, {words(against_before['LoRA r=16', 'domain'])}). Full minus LoRA: "
    f"{verdict['domain'].difference:+.2f}, 95% interval {verdict['domain'].low:+.2f} to {verdict['domain'].high:+.2f}: "
    f"**{words(verdict['domain'])}**.\n\n"
    f"**Forgetting.** General accuracy fell from {before['general']:.2f} to {m['full']['general']:.2f} with full "
    f"fine-tuning and to {m['LoRA r=16']['general']:.2f} with LoRA (each against tiny-chat: "
    f"{words(against_before['full', 'general'])}, {words(against_before['LoRA r=16', 'general'])}). Full minus LoRA: "
    f"{verdict['general'].difference:+.2f}, 95% interval {verdict['general'].low:+.2f} to "
    f"{verdict['general'].high:+.2f}: **{words(verdict['general'])}**.")

# %% [markdown]
# What forgetting looks like: general questions tiny-chat answered right and full fine-tuning (seed 0, its
# chosen rate) answered wrong, side by side with LoRA r = 16's reply (seed 0) to the same question.

# %%
forgotten = [i for i, (b, a) in enumerate(zip(before_rows["general"], chosen["full"]["rows"]["general"]))
             if b["correct"] and not a["correct"]]
from IPython.display import display

display(html_table([{"question": before_rows["general"][i]["prompt"], "answer": before_rows["general"][i]["answer"],
             "tiny-chat (before)": before_rows["general"][i]["output"],
             "after full fine-tuning": chosen["full"]["rows"]["general"][i]["output"],
             "after LoRA r=16": chosen["LoRA r=16"]["rows"]["general"][i]["output"]} for i in forgotten[:4]]))
in_domain_form = [chosen["full"]["rows"]["general"][i]["output"].startswith("The symbol is") for i in forgotten]
say(f"Full fine-tuning (seed 0) got {len(forgotten)} of the {len(before_rows['general'])} general questions wrong "
    f"that tiny-chat had right, and {sum(in_domain_form)} of those {len(forgotten)} wrong replies begin with the "
    f"domain's \"The symbol is\": the form it was just trained on has taken over those answers.")

# %% [markdown]
# ### Ranks, scaling conventions, and what each run costs
#
# Now adapters from tiny to large: r = 1, 4, 16 and 64 on every linear layer, all at the rate chosen for LoRA
# r = 16, seed 0, next to full fine-tuning at its chosen rate. Each rank runs under two conventions for alpha:
#
# * **alpha = 2r** (`lora_config`'s default, used everywhere above): the scale `alpha / r` is 2 at every rank;
# * **rsLoRA**, alpha = 8 with the scale `alpha / sqrt(r)`: 8 at r = 1, 4 at r = 4, 2 at r = 16 (the same run as
#   alpha = 2r, so it is trained once) and 1 at r = 64.
#
# Why it matters: AdamW moves every entry of `B` and `A` by about the learning rate per step, whatever r is,
# and `B·A` sums r such products. So at a fixed scale a larger r makes a larger update at the same rate.
#
# Besides the two accuracies: the trainable parameters, the size on disk (the full checkpoint, or the adapter
# alone), and for full fine-tuning, LoRA r = 16 and the smallest adapter also the peak memory of one training
# step (PyTorch's memory profiler, tensors only — see section 4; the profiler is slow, so not for every run)
# and the seconds per step (timed on a fixed batch, so that start-up costs do not count).


# %%
def step_cost(model, repeats: int = 3) -> tuple[int, float]:
    """Peak tensor memory (bytes) and seconds of one AdamW step on a batch of 8 domain conversations."""
    batch = tok.apply_chat_template(list(domain_train[:8]["messages"]), tokenize=True, return_dict=True,
                                    padding=True, return_tensors="pt").to(model.device)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-9)
    model.train()

    def one_step():
        model(**batch, labels=batch["input_ids"]).loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    one_step()  # AdamW's state exists from the first step on
    peak = measure_peak(model, one_step)
    start = time.perf_counter()
    for _ in range(repeats):
        one_step()
    if profile.device == "cuda":
        torch.cuda.synchronize()
    model.eval()
    return peak, (time.perf_counter() - start) / repeats


RANKS = (1, 4, 16, 64)
grid = {"full": chosen["full"], "LoRA r=16": chosen["LoRA r=16"]}  # both trained already
for r in RANKS:
    if r != 16:
        grid[f"LoRA r={r}"] = finetune((r, "all-linear"), chosen["LoRA r=16"]["lr"])
        grid[f"LoRA r={r} rsLoRA"] = finetune((r, "all-linear", True), chosen["LoRA r=16"]["lr"])
grid["LoRA r=16 rsLoRA"] = grid["LoRA r=16"]  # alpha 8 / sqrt(16) = 32 / 16: the same scale, the same run
convention = {"alpha = 2r": [grid[f"LoRA r={r}"] for r in RANKS], "rsLoRA": [grid[f"LoRA r={r} rsLoRA"] for r in RANKS]}
profiled = ("full", "LoRA r=16", "LoRA r=1")
costs = []
for name, result in grid.items():
    if name == "LoRA r=16 rsLoRA":
        continue
    trainable, total = trainable_parameters(result["model"])
    peak, seconds = step_cost(result["model"]) if name in profiled else (None, None)
    costs.append({"run": name, "trainable": trainable, "% of model": 100 * trainable / total,
                  "scale": "–" if name == "full" else f"{8 / int(name.split('=')[1].split()[0]) ** 0.5:g}"
                  if "rsLoRA" in name else "2", "peak MiB": peak / 2**20 if peak else "–", "s/step": seconds or "–",
                  "disk MiB": saved_size(result["model"]) / 2**20,
                  "domain accuracy": result["domain"], "general accuracy": result["general"]})
html_table(costs)

# %%
fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), sharex=True)
for ax, task in zip(axes, ("domain", "general")):
    for (name, runs), colour in zip(convention.items(), ("tab:green", "tab:purple")):
        ax.plot(RANKS, [r[task] for r in runs], "o-", color=colour, label=f"LoRA, {name}")
    ax.axhline(chosen["full"][task], color="tab:red", ls="--", label="full fine-tuning")
    ax.axhline(before[task], color="grey", ls=":", label="tiny-chat before")
    ax.set_xscale("log", base=2)
    ax.set_xticks(RANKS, [str(r) for r in RANKS])
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("rank r (all linear layers)")
    ax.set_ylabel(f"{task} accuracy")
    ax.set_title(f"{task} accuracy, one rate ({chosen['LoRA r=16']['lr']:.0e}), seed 0", fontsize=9)
axes[0].legend(fontsize=8)
fig.tight_layout()

# %%
# rsLoRA minus alpha = 2r, question by question (one seed each)
rank_test = {(r, task): paired_bootstrap(grid[f"LoRA r={r} rsLoRA"]["correct"][task], grid[f"LoRA r={r}"]["correct"][task])
             for r in (1, 64) for task in questions}
acc = {name: {task: [r[task] for r in runs] for task in questions} for name, runs in convention.items()}
say(f"With **alpha = 2r**, the rate that suits r = 16 (domain {acc['alpha = 2r']['domain'][2]:.2f}) is too small for "
    f"r = 1, which barely moved from tiny-chat (domain {acc['alpha = 2r']['domain'][0]:.2f}, general "
    f"{acc['alpha = 2r']['general'][0]:.2f}), and too large for r = 64, which wrecked the model (domain "
    f"{acc['alpha = 2r']['domain'][3]:.2f}, general {acc['alpha = 2r']['general'][3]:.2f}). With **rsLoRA's** "
    f"`alpha / sqrt(r)` every rank learned the domain at this one learning rate: {acc['rsLoRA']['domain'][0]:.2f}, "
    f"{acc['rsLoRA']['domain'][1]:.2f}, {acc['rsLoRA']['domain'][2]:.2f} and {acc['rsLoRA']['domain'][3]:.2f} at "
    f"r = 1, 4, 16, 64. rsLoRA minus alpha = 2r, domain at r = 1: {rank_test[1, 'domain']}; general at "
    f"r = 64: {rank_test[64, 'general']} (single runs; the interval is over questions). So neither fixed "
    f"alpha/r keeps the effective learning rate steady across ranks here; dividing by sqrt(r) comes much closer. "
    f"A rate tuned for one adapter is tuned for another only under a scaling that fits the optimizer.")

# %%
fig, ax = plt.subplots(figsize=(7.5, 4.8))
for name, runs in by_seed.items():
    colour, marker = ("tab:red", "s") if name == "full" else ("tab:green", "o")
    for r in runs + [s for s in sweep[name] if s is not chosen[name]]:
        faded = r["lr"] != chosen[name]["lr"]
        ax.scatter(before["general"] - r["general"], r["domain"], marker=marker, s=30, edgecolors=colour,
                   facecolors="none" if faded else colour, alpha=0.5 if faded else 0.9)
        if faded:
            ax.annotate(f"{r['lr']:.0e}", (before["general"] - r["general"], r["domain"]), fontsize=7,
                        xytext=(4, -9), textcoords="offset points", color=colour)
for name, runs in convention.items():
    colour = "tab:green" if name == "alpha = 2r" else "tab:purple"
    for rank, r in zip(RANKS, runs):
        if rank == 16:
            continue
        ax.scatter(before["general"] - r["general"], r["domain"], color=colour, marker="D", s=40)
        ax.annotate(f"r={rank}", (before["general"] - r["general"], r["domain"]), fontsize=8, xytext=(5, 3),
                    textcoords="offset points")
ax.axhline(before["domain"], color="grey", ls=":")
from matplotlib.lines import Line2D
ax.legend(handles=[
    Line2D([], [], color="tab:red", marker="s", ls="", label="full, chosen rate (3 seeds)"),
    Line2D([], [], color="tab:green", marker="o", ls="", label="LoRA r=16, chosen rate (3 seeds)"),
    Line2D([], [], color="grey", marker="o", mfc="none", ls="", label="other rates of the sweep (hollow, rate shown)"),
    Line2D([], [], color="tab:green", marker="D", ls="", label="LoRA r=…, alpha = 2r"),
    Line2D([], [], color="tab:purple", marker="D", ls="", label="LoRA r=…, rsLoRA"),
    Line2D([], [], color="grey", ls=":", label="domain accuracy before")], fontsize=7, loc="lower right")
ax.set_xlabel("general accuracy lost (forgetting) →")
ax.set_ylabel("domain accuracy (learning) →")
ax.set_ylim(0, 1.02)
ax.set_title(f"learns vs forgets after {STEPS} steps: up is better, left is better", fontsize=9)
fig.tight_layout()

# %% [markdown]
# **Against the literature.** Biderman et al. (2024, "LoRA Learns Less and Forgets Less") tuned Llama-2-7B
# on code and on maths, each method at its own best learning rate, and found that LoRA learns less of the
# target domain than full fine-tuning, forgets less of everything else, and that the two lie on about the same
# learning–forgetting trade-off curve: LoRA forgets less mostly *because* it changes the model less.

# %%
low = {name: [r for r in sweep[name] if r["lr"] < chosen[name]["lr"]] for name in sweep}
say(f"Here, each at its chosen rate over three seeds, the paired test found {words(verdict['domain'])} in learning "
    f"(full minus LoRA {verdict['domain'].difference:+.2f}) and {words(verdict['general'])} in forgetting "
    f"({verdict['general'].difference:+.2f}); LoRA's chosen rate was "
    f"{chosen['LoRA r=16']['lr'] / chosen['full']['lr']:.0f} times full fine-tuning's. Along the learning-rate "
    f"sweep (single runs), lower rates trade learning for forgetting: "
    + "; ".join(f"{name} at {r['lr']:.0e}: domain {r['domain']:.2f}, general {r['general']:.2f}"
                for name in sweep for r in low[name] + [chosen[name]])
    + ". That is Biderman et al.'s reading (less forgetting comes with less learning), sketched from single runs, "
    "not measured.")

# %% [markdown]
# Two differences from their setting: our domain is a reply format over facts the model already knows (easy,
# hence the small budget), and the models are tiny.
#
# **What LoRA saves.** LoRA saves *memory* — no gradients or AdamW state for the frozen weights, though at this
# size the weights themselves and the activations, which LoRA does not shrink, are most of a step's peak — and
# *disk*: the adapter alone is saved. It saves little *compute*, if any: the forward pass is the same plus the adapters,
# and the backward pass still runs through every layer; only the gradients of the frozen weights — about a third
# of a step's arithmetic — are skipped, and at this size fixed per-step overheads dominate.

# %%
per_step = {row["run"]: row["s/step"] for row in costs if row["run"] in profiled}
cost_of = {c["run"]: c for c in costs}
say(f"Measured here: one step of LoRA r = 16 peaked at {cost_of['LoRA r=16']['peak MiB'] / cost_of['full']['peak MiB']:.0%} "
    f"of full fine-tuning's memory; its adapter is {cost_of['LoRA r=16']['disk MiB']:.2f} MiB on disk "
    f"({cost_of['LoRA r=1']['disk MiB'] * 1024:.0f} KiB at r = 1) against a {cost_of['full']['disk MiB']:.1f} MiB "
    f"checkpoint. Seconds per step (this run's timing; it varies from run to run and machine to machine): "
    + ", ".join(f"{name} {s:.3f} ({s / per_step['full']:.0%} of full's)" for name, s in per_step.items()) + ".")
best = chosen["LoRA r=16"]  # the adapter section 3 merges and switches

# %% [markdown]
# ## 3. Merging, and several adapters on one base
#
# An adapter can be **merged** into the base weights (W ← W + (alpha/r)·B·A): one ordinary model, no
# extra latency, but the base is no longer shared. Or it can stay separate: one base in memory, many
# small adapters switched per request.

# %%
import tempfile

from peft import PeftModel

adapted = best["model"]
ids = tok(["What is the chemical symbol for gold?", "The capital of France is"], return_tensors="pt",
          padding=True).to(adapted.device)
with torch.no_grad():
    with_adapter = adapted(**ids).logits
    adapter_dir = tempfile.mkdtemp()
    adapted.save_pretrained(adapter_dir)
    merged = adapted.merge_and_unload()
    merged_logits = merged(**ids).logits
    # relative to the logits' scale. On a GPU the two sides round differently: bf16 weights keep 8 bits of
    # mantissa, and fp32 matrix products may run in TF32 (10 bits) on Ampere and newer
    merge_difference = ((merged_logits - with_adapter).abs().max() / with_adapter.abs().max()).item()
    real = ids["attention_mask"].bool()  # padded positions predict nothing anyone reads
    same_predictions = (merged_logits.argmax(-1) == with_adapter.argmax(-1))[real].float().mean().item()
print(f"max |merged - adapter| / max |logit| = {merge_difference:.2e}; same next-token prediction at "
      f"{same_predictions:.0%} of the tokens; merged model type: {type(merged).__name__}")

# two adapters on one base: switch with set_adapter, or turn adapters off entirely
other_dir = tempfile.mkdtemp()
grid["LoRA r=1"]["model"].save_pretrained(other_dir)
shared = PeftModel.from_pretrained(ftlab.load_model(profile.chat_model, profile)[0], adapter_dir, adapter_name="r16")
shared.load_adapter(other_dir, adapter_name="r1")
switched = {}
for name in ("r16", "r1"):
    shared.set_adapter(name)
    switched[name] = accuracy(shared, "domain")
with shared.disable_adapter():
    switched["off"] = accuracy(shared, "domain")
for name, value in switched.items():
    print(f"adapter {name!r}: domain accuracy {value:.2f}" if name != "off" else
          f"adapters off (the shared base): domain accuracy {value:.2f}")

# %% [markdown]
# Each adapter, switched in on the shared base, answers as the run that trained it did (the check at the end
# compares them). Merge when you ship one specialised model.
# Keep adapters when one base serves several tasks or customers (r = 16 on every linear layer of
# `Llama-3.1-8B` is 42M parameters, 160 MiB in fp32 as here), or when you may want the base behaviour back.

# %% [markdown]
# ## 4. Will it fit? A memory calculator
#
# `ftlab.memory.estimate` needs only a model's config. It adds up weights, gradients (trainable
# parameters only), optimizer state (AdamW: two fp32 numbers per trainable parameter) and the
# activations saved for the backward pass (per layer and token; plus the logits). Backward frees each
# layer's activations as it creates that layer's gradients, so the two trade places layer by layer: the
# peak is the larger of "every activation plus the output layer's gradient" (backward just started) and
# "every gradient plus one layer's activations" (backward nearly done). That is the tensor peak, what a
# profiler measures. A GPU needs more than its tensors: `fits` also adds an assumed 0.5 GiB CUDA context
# and a 10% allocator margin (`device_total`; assumptions, not measured here: there is no GPU).
#
# First we check it against a measurement. The tiny models are too small to be interesting, so we
# build a ~20M-parameter Llama (random weights are fine: memory does not depend on the values) and
# measure the peak tensor memory of a training step (batch 8 × 64 tokens) with PyTorch's memory profiler (`torch.profiler`
# with `profile_memory=True`; on a GPU, `torch.cuda.max_memory_allocated`). Not process RSS, which
# also counts the interpreter, libraries and allocator caches.

# %%
from peft import LoraConfig
from transformers import LlamaConfig, LlamaForCausalLM

config20m = LlamaConfig(vocab_size=2048, hidden_size=512, intermediate_size=1376, num_hidden_layers=6,
                        num_attention_heads=8, max_position_embeddings=256, tie_word_embeddings=True)
calibration = []
for method in ("full", "lora"):
    torch.manual_seed(0)
    big = LlamaForCausalLM(config20m).train()
    if method == "lora":
        big = get_peft_model(big, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear"))
    opt = torch.optim.AdamW([p for p in big.parameters() if p.requires_grad], lr=1e-5)
    x = torch.randint(0, 2048, (8, 64))

    def train_step():
        big(input_ids=x, labels=x).loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    train_step()  # the optimizer state exists from the first step on
    measured = measure_peak(big, train_step)
    predicted = estimate(config20m, method, batch=8, seq_len=64, precision="32-true", lora_r=16)
    calibration.append({"method": method, "measured MiB": measured / 2**20, "estimated MiB": predicted.total / 2**20,
                        "error": predicted.total / measured - 1,
                        **{f"{k} MiB": v / 2**20 for k, v in predicted.breakdown.items()}})
    del big, opt
html_table(calibration)

# %% [markdown]
# Now real models. A free Colab T4 has 15 GB and no native bf16, so it trains in fp16 **mixed precision**
# (`"16-mixed"`, Lightning's name; what the gpu profile does there): the weights being trained stay in fp32,
# and the matrix products run on fp16 copies. Batch 4 × 512 tokens, AdamW, LoRA r=16 on all linear layers
# (its frozen base in fp16), QLoRA with a 4-bit base (configs bundled with ftlab; no download).

# %%
fit_rows, t4 = [], {}
for name, cfg in bundled_configs().items():
    row = {"model": name}
    for method in ("full", "lora", "qlora"):
        for ckpt in (False, True):
            e = t4[name, method, ckpt] = estimate(cfg, method, batch=4, seq_len=512, precision="16-mixed", lora_r=16,
                                                  gradient_checkpointing=ckpt)
            row[f"{method}{' + ckpt' if ckpt else ''}"] = f"{e.device_total / 2**30:.1f} GiB {'✓' if e.fits(15) else '✗'}"
    fit_rows.append(row)
html_table(fit_rows)  # GiB a GPU needs (device_total: tensors + context + margin); ✓ = fits a 15 GiB T4

# %% [markdown]
# Full fine-tuning in mixed precision pays **16 bytes per trained parameter** before a single activation:
# the fp32 weight (4; it doubles as the "master copy"), its fp32 gradient (4) and AdamW's two fp32 states
# (8). LoRA pays 16 bytes only per *adapter* parameter and 2 per frozen fp16 weight (on a T4 the gpu profile
# loads the frozen base in fp16, as here). QLoRA also shrinks the frozen weights to 4 bits.
# (`precision="bf16-true"` would keep weights and AdamW states in bf16, 8 bytes per parameter, at the price
# of updates too small for bf16 to represent rounding away.) What the table says, in GiB a GPU needs:

# %%
def gib(name, method, ckpt):
    return t4[name, method, ckpt].device_total / 2**30


bookkeeping = 16 * t4["SmolLM2-1.7B", "full", False].trainable / 2**30
say(f"- SmolLM2-1.7B, full: {bookkeeping:.1f} GiB of weight, gradient and AdamW bookkeeping alone, so it does "
    f"not fit a T4 ({gib('SmolLM2-1.7B', 'full', False):.1f} GiB, {gib('SmolLM2-1.7B', 'full', True):.1f} with "
    f"gradient checkpointing); SmolLM2-360M does ({gib('SmolLM2-360M', 'full', False):.1f} GiB).\n"
    f"- LoRA: the 1.7B model fits ({gib('SmolLM2-1.7B', 'lora', False):.1f} GiB), `Llama-3.1-8B` does not "
    f"({gib('Llama-3.1-8B', 'lora', False):.1f} GiB; {gib('Llama-3.1-8B', 'lora', True):.1f} with checkpointing).\n"
    f"- QLoRA brings the 8B model within reach: {gib('Llama-3.1-8B', 'qlora', True):.1f} GiB with gradient "
    f"checkpointing to tame the activations ({gib('Llama-3.1-8B', 'qlora', False):.1f} GiB without).")

# %% [markdown]
# **QLoRA in practice** needs a CUDA GPU and `bitsandbytes`; the next cell runs only there.

# %%
if profile.device == "cuda":
    torch.cuda.reset_peak_memory_stats()  # this cell's peak alone, not the full fine-tuning's above
    try:
        q_model, _ = ftlab.load_model(profile.chat_model, profile, for_training=True, load_in_4bit=True)
    except ImportError as err:
        print(f"QLoRA skipped: {err}")
    else:
        q_run = train_sft(q_model, tok, domain_train, profile, peft_config=lora_config(q_model, r=16),
                          assistant_only_loss=True, max_steps=STEPS, per_device_train_batch_size=8,
                          learning_rate=best["lr"], warmup_steps=1, lr_scheduler_type="constant_with_warmup", quiet=True)
        print(f"QLoRA r=16 on NF4 weights: domain accuracy {accuracy(q_run.model, 'domain'):.2f} (LoRA r=16 on "
              f"full-precision weights, seed 0: {best['domain']:.2f}), peak GPU memory "
              f"{torch.cuda.max_memory_allocated() / 2**20:.0f} MiB")
else:
    print("QLoRA skipped: it needs a CUDA GPU (this is the cpu profile). The estimate above still applies.")

# %% [markdown]
# ## 5. Try it yourself
#
# Pick a model, a rank, alpha and target modules: the trainable parameters, the adapter's size and the
# estimated training memory update as you move the controls.

# %%
from ftlab.widgets import LoraExplorer

explorer = LoraExplorer(bundled_configs())
explorer

# %%
explorer.model.value = "Llama-3.1-8B"
explorer.rank.value = 8
explorer.targets.value = ("q_proj", "k_proj", "v_proj", "o_proj")
explorer.run()

# %% [markdown]
# Bad settings are refused with the reason, rather than failing deep inside PEFT:

# %%
for bad in (dict(r=4, targets=["query", "value"]), dict(r=500, targets=["q_proj"])):
    try:
        lora_config(chat, **bad)
    except ValueError as err:
        print(f"{bad}: {err}")

# %% [markdown]
# ## 6. Check: what this lesson claims, measured

# %%
# the runs compared in section 2: each method at its chosen rate, every seed
compared = [r for runs in by_seed.values() for r in runs]
html_table([{"measurement": k, "value": v} for k, v in {
    "max |scratch LoRA - PEFT|": f"{scratch_vs_peft:.1e}",
    "domain accuracy before": before["domain"], "general accuracy before": before["general"],
    "domain accuracy, lowest / highest of the compared runs": f"{min(r['domain'] for r in compared):.2f} / "
                                                             f"{max(r['domain'] for r in compared):.2f}",
    **{f"{name} (lr {chosen[name]['lr']:.0e}): {task} accuracy, mean [min, max] of 3 seeds":
       f"{s[task].mean():.2f} [{s[task].min():.2f}, {s[task].max():.2f}]" for name, s in summary.items() for task in s},
    **{f"{name} - tiny-chat, {task}": str(t) for (name, task), t in against_before.items()},
    **{f"full - LoRA r=16, {task}": str(t) for task, t in verdict.items()},
    **{f"rsLoRA - alpha = 2r, r = {r}, {task}": str(t) for (r, task), t in rank_test.items()},
    "LoRA r=16 peak memory / full's": cost_of["LoRA r=16"]["peak MiB"] / cost_of["full"]["peak MiB"],
    "adapters switched on the shared base (r16, r1, off)": f"{switched['r16']:.2f}, {switched['r1']:.2f}, {switched['off']:.2f}",
    "max |merged - adapter| (relative)": f"{merge_difference:.1e}",
    "calculator error, full": calibration[0]["error"], "calculator error, LoRA": calibration[1]["error"],
}.items()])

# %%
# CHECK
assert scratch_vs_peft < 1e-5
# a comparison, not a ceiling: no compared run answers every held-out element
assert all(r["domain"] < 1 for r in compared), [(r["lr"], r["seed"], r["domain"]) for r in compared]
# both methods learn the domain and both forget, each against tiny-chat by the paired test (three seeds)
assert all(against_before[name, "domain"].low > 0 for name in per_question), against_before
assert all(against_before[name, "general"].high < 0 for name in per_question), against_before
# the rank sweep: with alpha = 2r, r = 1 learns far less than r = 16 and r = 64 wrecks what tiny-chat knew;
# rsLoRA learns more at r = 1 and forgets less at r = 64 (paired test), and every rank learns the domain
a2r, rs = acc["alpha = 2r"], acc["rsLoRA"]
assert a2r["domain"][0] <= a2r["domain"][2] - 0.2 and a2r["general"][3] <= before["general"] / 2, a2r
assert rank_test[1, "domain"].low > 0 and rank_test[64, "general"].low > 0, rank_test
assert min(rs["domain"]) >= before["domain"] + 0.2, rs
# the sweep's trade-off (single runs): each rate below a method's chosen one learned less and forgot less
assert all(r["domain"] < chosen[n]["domain"] and r["general"] > chosen[n]["general"] for n in low for r in low[n]), low
# LoRA's memory: a training step of LoRA r = 16 peaks lower than full fine-tuning's (measured, profiler)
assert cost_of["LoRA r=16"]["peak MiB"] < cost_of["full"]["peak MiB"], (cost_of["LoRA r=16"]["peak MiB"], cost_of["full"]["peak MiB"])
# the adapter is what knows the domain: each adapter, switched in on one shared base, answers as its own run did
# (up to one question), and the r = 16 adapter knows far more than the base with adapters off
assert abs(switched["r16"] - best["domain"]) <= 1 / 48 + 1e-9 and abs(switched["r1"] - grid["LoRA r=1"]["domain"]) <= 1 / 48 + 1e-9, switched
assert switched["r16"] >= switched["off"] + 0.2, switched
# exact on the CPU (fp32); on a GPU, bf16 weights or TF32 products round, which can flip a near-tie
assert merge_difference < (1e-5 if profile.device == "cpu" else 2e-2), merge_difference
assert same_predictions == 1.0 if profile.device == "cpu" else same_predictions >= 0.8, same_predictions
assert all(abs(row_["error"]) <= 0.12 for row_ in calibration), calibration  # tests/test_memory.py's bound
# the T4 text of section 4 follows the calculator's table
assert not t4["SmolLM2-1.7B", "full", True].fits(15) and t4["SmolLM2-360M", "full", False].fits(15), "full"
assert t4["SmolLM2-1.7B", "lora", False].fits(15) and not t4["Llama-3.1-8B", "lora", True].fits(15), "lora"
assert t4["Llama-3.1-8B", "qlora", True].fits(15) and not t4["Llama-3.1-8B", "qlora", False].fits(15), "qlora"
print("All checks passed.")

# %% [markdown]
# ## Summary
#
# * LoRA is a frozen layer plus a trainable low-rank product, `W x + (alpha/r) B A x` — twenty lines, and
#   identical to PEFT's.
# * A fair comparison needs headroom (a budget at which no run already answers everything), a learning rate
#   tuned for each method, and several seeds; a paired bootstrap over seeds and questions tells a difference
#   from seed-and-question noise.
# * Merged or kept apart, the adapter computes the same thing; keeping it apart lets one base serve many.
# * Memory is mostly bookkeeping: 16 bytes per trained parameter for AdamW in mixed precision (fp32 weight,
#   gradient and two optimizer states), 2 per frozen fp16 weight, plus activations. The calculator predicts it
#   from a config, so you can tell before you start whether a run fits.

# %%
lora16, lora1 = cost_of["LoRA r=16"], cost_of["LoRA r=1"]
say(f"* Measured here, each at its own rate over three seeds: full fine-tuning and LoRA r = 16 learned the domain "
    f"(mean accuracy {m['full']['domain']:.2f} and {m['LoRA r=16']['domain']:.2f}, from {before['domain']:.2f}) "
    f"and forgot (general accuracy {m['full']['general']:.2f} and {m['LoRA r=16']['general']:.2f}, from "
    f"{before['general']:.2f}); full minus LoRA: {words(verdict['domain'])} in learning, {words(verdict['general'])} "
    f"in forgetting.\n"
    f"* `lora_config` sets alpha = 2r, so `alpha / r` is 2 at every rank and does not keep the effective rate "
    f"steady: at one rate r = 1 learned {a2r['domain'][0]:.2f} and r = 64 dropped general accuracy to "
    f"{a2r['general'][3]:.2f}. rsLoRA's `alpha / sqrt(r)` learned {min(rs['domain']):.2f} to {max(rs['domain']):.2f} "
    f"at every rank from 1 to 64.\n"
    f"* On this tiny model LoRA r = 16 on every linear layer trains {lora16['% of model']:.0f}% of the parameters "
    f"(r = 1: {lora1['% of model']:.2f}%), its file is {cost_of['full']['disk MiB'] / lora16['disk MiB']:.0f} times "
    f"smaller (r = 1: {cost_of['full']['disk MiB'] / lora1['disk MiB']:.0f} times) and a training step peaks at "
    f"{lora16['peak MiB'] / cost_of['full']['peak MiB']:.0%} of full fine-tuning's memory; per step it took "
    f"{per_step['LoRA r=16'] / per_step['full']:.0%} of full fine-tuning's time in this run.")
