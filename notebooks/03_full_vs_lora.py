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
from ftlab.evaluation import evaluate, score_chat
from ftlab.lora import ATTENTION_TARGETS, linear_modules, lora_config, saved_size, trainable_parameters
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
# computes exactly what the original did; `alpha / r` scales the update so that changing r does not
# change the effective learning rate much.

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
# *every* held-out element: 1.00 against 1.00 says nothing about which method learns more. So each run here
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


def accuracy(model, task: str) -> float:
    rows = score_chat(model, tok, *questions[task], batch_size=256)
    return sum(r["correct"] for r in rows) / len(rows)


before = {task: accuracy(chat, task) for task in questions}
print(f"tiny-chat before: domain {before['domain']:.2f}, general {before['general']:.2f} "
      f"({len(questions['domain'][0])} and {len(questions['general'][0])} questions)")

STEPS = 6  # about one pass over the 44 conversations


def finetune(lora, learning_rate: float, seed: int = 0) -> dict:
    """tiny-chat tuned on the domain for STEPS steps: every weight (lora=None) or a LoRA (r, targets)."""
    torch.manual_seed(seed)  # LoRA's random A matrices; the data order follows data_seed
    model, _ = ftlab.load_model(profile.chat_model, profile, for_training=True)
    peft = None if lora is None else lora_config(model, r=lora[0], targets=lora[1])
    run = train_sft(model, tok, domain_train, profile, peft_config=peft, assistant_only_loss=True, max_steps=STEPS,
                    per_device_train_batch_size=8, learning_rate=learning_rate, warmup_steps=1,
                    lr_scheduler_type="constant_with_warmup", seed=seed, data_seed=seed, quiet=True)
    return {"domain": accuracy(run.model, "domain"), "general": accuracy(run.model, "general"),
            "lr": learning_rate, "seed": seed, "model": run.model}


# %% [markdown]
# ### 2.1 A fair learning rate for each
#
# Full fine-tuning and LoRA want different learning rates: LoRA's `B` starts at zero and its update is
# scaled by alpha/r, and Biderman et al. (2024) found LoRA's best rate about ten times full fine-tuning's.
# Comparing both at one rate would pit a tuned method against an untuned one. So each gets a small sweep —
# a third of, equal to, and three times the profile's default for its kind — and keeps the rate that
# learns the domain best. LoRA here is the everyday choice, r = 16 on every linear layer.
# (We pick on the same held-out elements we report, a small optimism shared by both arms; a real project
# picks on a separate validation split.)

# %%
LORA = (16, "all-linear")
arms = {"full": (None, profile.learning_rates["sft"]), "LoRA r=16": (LORA, profile.learning_rates["lora"])}
sweep = {name: [finetune(spec, default * f) for f in (1 / 3, 1, 3)] for name, (spec, default) in arms.items()}
chosen = {name: max(runs, key=lambda r: (r["domain"], r["general"])) for name, runs in sweep.items()}
html_table([{"method": name, "learning rate": r["lr"], "domain accuracy": r["domain"],
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
# ### 2.2 Full fine-tuning vs LoRA, each at its own rate, over three seeds
#
# A seed changes the order of the conversations and LoRA's random `A`. A difference between the two
# methods means something only if it is larger than what changing the seed alone does.

# %%
SEEDS = (0, 1, 2)
by_seed = {name: [chosen[name]] + [finetune(arms[name][0], chosen[name]["lr"], seed=s) for s in SEEDS[1:]]
           for name in arms}
summary = {name: {task: np.array([r[task] for r in runs]) for task in ("domain", "general")}
           for name, runs in by_seed.items()}
html_table([{"method": name, "learning rate": chosen[name]["lr"],
             **{f"{task} accuracy, per seed": " ".join(f"{v:.2f}" for v in s[task]) for task in s},
             "domain mean": s["domain"].mean(), "general mean": s["general"].mean()}
            for name, s in summary.items()])

# %%
verdict = {}
for task in ("domain", "general"):
    gap = summary["full"][task].mean() - summary["LoRA r=16"][task].mean()
    spread = max(np.ptp(s[task]) for s in summary.values())  # the larger seed-to-seed range of the two
    verdict[task] = (gap, spread, abs(gap) > 3 * spread)
    print(f"{task:>8}: full - LoRA = {gap:+.2f}; seed-to-seed range up to {spread:.2f} -> "
          f"{'a measurable difference' if abs(gap) > 3 * spread else 'no measurable difference at three seeds'}")

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

# %% [markdown]
# ### 2.3 Ranks, targets, and what each run costs
#
# Now adapters from tiny to large — r = 1 and r = 16 on the attention layers only, r = 16 and r = 64 on every
# linear layer — all at the rate chosen for LoRA r = 16, seed 0, next to full fine-tuning at its chosen rate.
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


grid = {"full": chosen["full"], "LoRA r=16 all-linear": chosen["LoRA r=16"]}  # both trained already
for r, where, targets in ((1, "attention", ATTENTION_TARGETS), (16, "attention", ATTENTION_TARGETS),
                          (64, "all-linear", "all-linear")):
    grid[f"LoRA r={r} {where}"] = finetune((r, targets), chosen["LoRA r=16"]["lr"])
profiled = ("full", "LoRA r=16 all-linear", "LoRA r=1 attention")
costs = []
for name, result in grid.items():
    trainable, total = trainable_parameters(result["model"])
    peak, seconds = step_cost(result["model"]) if name in profiled else (None, None)
    costs.append({"run": name, "trainable": trainable, "% of model": 100 * trainable / total,
                  "peak MiB": peak / 2**20 if peak else "–", "s/step": seconds or "–",
                  "disk MiB": saved_size(result["model"]) / 2**20,
                  "domain accuracy": result["domain"], "general accuracy": result["general"]})
html_table(costs)

# %%
fig, ax = plt.subplots(figsize=(7.5, 4.8))
style = {"full": ("tab:red", "s"), "attention": ("tab:blue", "o"), "all-linear": ("tab:green", "o")}
for name, runs in by_seed.items():
    for r in runs + [s for s in sweep[name] if s is not chosen[name]]:
        colour, marker = style["full" if name == "full" else "all-linear"]
        faded = r["lr"] != chosen[name]["lr"]
        ax.scatter(before["general"] - r["general"], r["domain"], marker=marker, s=30, edgecolors=colour,
                   facecolors="none" if faded else colour, alpha=0.5 if faded else 0.9)
for row in costs:
    if row["run"] in ("full", "LoRA r=16 all-linear"):
        continue
    colour, marker = style["attention" if "attention" in row["run"] else "all-linear"]
    ax.scatter(before["general"] - row["general accuracy"], row["domain accuracy"], color=colour, marker="D", s=40)
    ax.annotate(row["run"].split()[1], (before["general"] - row["general accuracy"], row["domain accuracy"]),
                fontsize=8, xytext=(5, 3), textcoords="offset points")
ax.axhline(before["domain"], color="grey", ls=":")
from matplotlib.lines import Line2D
ax.legend(handles=[
    Line2D([], [], color="tab:red", marker="s", ls="", label="full, chosen rate (3 seeds)"),
    Line2D([], [], color="tab:green", marker="o", ls="", label="LoRA r=16 all-linear, chosen rate (3 seeds)"),
    Line2D([], [], color="grey", marker="o", mfc="none", ls="", label="other rates of the sweep (hollow)"),
    Line2D([], [], color="tab:blue", marker="D", ls="", label="LoRA on attention (r=…)"),
    Line2D([], [], color="tab:green", marker="D", ls="", label="LoRA on all linear layers (r=…)"),
    Line2D([], [], color="grey", ls=":", label="domain accuracy before")], fontsize=7, loc="upper right")
ax.set_xlabel("general accuracy lost (forgetting) →")
ax.set_ylabel("domain accuracy (learning) →")
ax.set_ylim(0, 1.02)
ax.set_title(f"learns vs forgets after {STEPS} steps: up is better, left is better", fontsize=9)
fig.tight_layout()

# %% [markdown]
# **Against the literature.** Biderman et al. (2024, "LoRA Learns Less and Forgets Less") tuned Llama-2-7B
# on code and on maths and found that LoRA learns less of the target domain than full fine-tuning, forgets
# less of everything else, and that the two lie on about the same learning–forgetting trade-off curve: LoRA
# forgets less mostly *because* it changes the model less. What the cells above measured:
#
# * **Learning: no measurable difference.** Each at its chosen rate, full fine-tuning reached a mean domain
#   accuracy of 0.87 over three seeds (0.85–0.90) and LoRA r = 16 0.89 (0.81–0.96), from 0.23 before. The gap,
#   −0.02, is far inside the seed-to-seed range (up to 0.15). "LoRA learns less" does not show here: given its
#   own learning rate, six times full fine-tuning's, LoRA learned as much. (LoRA's best rate was the top of its
#   sweep; a higher one might do better still, though at 0.89 it has little room left.)
# * **Forgetting: no measurable difference either.** General accuracy fell from 0.96 to 0.64 (0.57–0.71) with
#   full fine-tuning and to 0.63 (0.50–0.76) with LoRA: both forgot about a third of the questions, and the
#   gap, +0.01, is inside a seed-to-seed range of 0.26.
# * **The trade-off.** In the scatter plot, LoRA forgets less only where it also learns less: at a third of
#   its chosen rate it forgot 0.19 and reached 0.42 on the domain, at a ninth it forgot nothing and learned
#   nearly nothing (0.27). Full fine-tuning at a third of its rate sits close to that curve (0.22 forgotten,
#   0.58 learned). That is Biderman et al.'s reading — less forgetting comes with less learning — but these
#   are single runs, inside a seed-to-seed range of 0.15–0.26, so it is a sketch of the curve, not a
#   measurement of it.
# * **Rank and targets** change how far one rate moves the model: r = 1 on attention barely learned (0.27) and
#   forgot nothing, r = 16 on attention learned nearly as much as on every layer (0.90), and r = 64 on every
#   layer, with four times the adapter at the same rate, wrecked the model (domain 0.25, general 0.18). A rate
#   tuned for one adapter is not tuned for another.
#
# Two differences from their setting: our domain is a reply format over facts the model already knows (easy,
# hence the small budget), and the models are tiny.
#
# **Seconds per step.** LoRA saves *memory* — no gradients or AdamW state for the frozen weights; here one step
# of LoRA r = 16 peaks at about two thirds of full fine-tuning's, because at this size the weights themselves
# and the activations, which LoRA does not shrink, are most of it — and *disk*: an adapter of 0.9 MiB (28 KiB
# for r = 1 on attention) instead of an 8.3 MiB checkpoint. It saves little *compute*: the forward pass is the
# same plus the adapters, and the backward pass still runs through every layer; only the gradients of the
# frozen weights — about a third of a step's arithmetic — are skipped, and at this size fixed per-step
# overheads dominate. Neither adapter's step is even twice as fast as full fine-tuning's (the line below
# prints this run's figures; timings vary from run to run and machine to machine).

# %%
per_step = {row["run"]: row["s/step"] for row in costs if row["run"] in profiled}
print("seconds per step: " + ", ".join(f"{name} {s:.3f} ({s / per_step['full']:.0%} of full's)" for name, s in per_step.items()))
print(f"LoRA r=16 all-linear: peak memory {costs[1]['peak MiB'] / costs[0]['peak MiB']:.0%} of full's; "
      f"on disk {costs[1]['disk MiB'] / costs[0]['disk MiB']:.1%}")
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
grid["LoRA r=1 attention"]["model"].save_pretrained(other_dir)
shared = PeftModel.from_pretrained(ftlab.load_model(profile.chat_model, profile)[0], adapter_dir, adapter_name="r16-all")
shared.load_adapter(other_dir, adapter_name="r1-attention")
switched = {}
for name in ("r16-all", "r1-attention"):
    shared.set_adapter(name)
    switched[name] = accuracy(shared, "domain")
with shared.disable_adapter():
    switched["off"] = accuracy(shared, "domain")
for name, value in switched.items():
    print(f"adapter {name!r}: domain accuracy {value:.2f}" if name != "off" else
          f"adapters off (the shared base): domain accuracy {value:.2f}")

# %% [markdown]
# Merge when you ship one specialised model. Keep adapters when one base serves several tasks or
# customers (an adapter is 28 KiB to 0.9 MiB here; r = 16 on every linear layer of Llama-3.1-8B is 42M
# parameters, 160 MiB in fp32 as here), or when you may want the base behaviour back.

# %% [markdown]
# ## 4. Will it fit? A memory calculator
#
# `ftlab.memory.estimate` needs only a model's config. It adds up weights, gradients (trainable
# parameters only), optimizer state (AdamW: two fp32 numbers per trainable parameter) and the
# activations saved for the backward pass (per layer and token; plus the logits). Gradients and
# activations peak at different moments, so the total counts the larger of the two.
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
            row[f"{method}{' + ckpt' if ckpt else ''}"] = f"{e.total / 2**30:.1f} GiB {'✓' if e.fits(15) else '✗'}"
    fit_rows.append(row)
html_table(fit_rows)

# %% [markdown]
# Full fine-tuning in mixed precision pays **16 bytes per trained parameter** before a single activation:
# the fp32 weight (4; it doubles as the "master copy"), its fp32 gradient (4) and AdamW's two fp32 states
# (8). So even SmolLM2-1.7B, with 25.5 GiB of that bookkeeping alone, does not fit a T4 (30.0 GiB, 25.5 with
# gradient checkpointing), while SmolLM2-360M does (9.2 GiB). LoRA pays 16 bytes only per *adapter* parameter
# and 2 per frozen fp16 weight: the 1.7B model fits (10.0 GiB), Llama-3.1-8B does not (31.2 GiB; 19.8 with
# checkpointing). QLoRA also shrinks the frozen weights to 4 bits, which is what brings the 8B model within
# reach — 10.2 GiB, with gradient checkpointing to tame the activations (21.5 GiB without).
# (`precision="bf16-true"` would keep weights and AdamW states in bf16, 8 bytes per parameter, at the price
# of updates too small for bf16 to represent rounding away.)
#
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
# the runs compared below: each method at its chosen rate (every seed) and the ranks/targets grid. The sweep's
# other rates are left out: a rate three times too high may wreck the model (accuracy 0), which is what a sweep is for.
every_run = list(chosen.values()) + [r for runs in by_seed.values() for r in runs[1:]] + [
    r for name, r in grid.items() if name not in ("full", "LoRA r=16 all-linear")]
html_table([{"measurement": k, "value": v} for k, v in {
    "max |scratch LoRA - PEFT|": scratch_vs_peft,
    "domain accuracy before": before["domain"], "general accuracy before": before["general"],
    "domain accuracy, lowest / highest of all runs": f"{min(r['domain'] for r in every_run):.2f} / "
                                                     f"{max(r['domain'] for r in every_run):.2f} ({len(every_run)} runs)",
    **{f"{name} (lr {chosen[name]['lr']:.0e}): {task} accuracy, mean [min, max] of 3 seeds":
       f"{s[task].mean():.2f} [{s[task].min():.2f}, {s[task].max():.2f}]" for name, s in summary.items() for task in s},
    **{f"full - LoRA, {task}: gap / largest seed range": f"{g:+.2f} / {sp:.2f}" for task, (g, sp, _) in verdict.items()},
    "LoRA r=16 trainable share of full's": costs[1]["trainable"] / costs[0]["trainable"],
    "LoRA r=16 s/step / full's": costs[1]["s/step"] / costs[0]["s/step"],
    "max |merged - adapter| (relative)": merge_difference,
    "calculator error, full": calibration[0]["error"], "calculator error, LoRA": calibration[1]["error"],
}.items()])

# %%
# CHECK
assert scratch_vs_peft < 1e-5
# a comparison, not a ceiling: no compared run answers every held-out element, and none is stuck at zero
assert all(0 < r["domain"] < 1 for r in every_run), [(r["lr"], r["domain"]) for r in every_run]
# both methods learn the domain within the budget (over three seeds, every seed)
assert all(s["domain"].min() >= before["domain"] + 0.2 for s in summary.values()), summary
# ... and both forget: general accuracy drops, on average over the seeds, by at least 0.1
assert all(s["general"].mean() <= before["general"] - 0.1 for s in summary.values()), summary
# what section 2 says: neither gap (learning, forgetting) is larger than three times the seed-to-seed range
assert not any(measurable for _, _, measurable in verdict.values()), verdict
# LoRA's economics: a small share of the parameters, a small file, less memory
# (on this 2.2M-parameter model r = 16 on every linear layer is about 11% of the weights; on a wider
# model the same adapter is a smaller share)
assert costs[1]["trainable"] <= 0.15 * costs[0]["trainable"] and costs[1]["disk MiB"] <= 0.15 * costs[0]["disk MiB"], \
    (costs[1]["trainable"] / costs[0]["trainable"], costs[1]["disk MiB"] / costs[0]["disk MiB"])
assert costs[1]["peak MiB"] < costs[0]["peak MiB"], (costs[1]["peak MiB"], costs[0]["peak MiB"])
# ... but barely any compute: no adapter, not even r = 1, makes a step twice as fast as full fine-tuning's
assert all(seconds > 0.5 * per_step["full"] for seconds in per_step.values()), per_step
# the adapter is what knows the domain: switched off, the shared base is back where tiny-chat started
assert switched["r16-all"] >= switched["off"] + 0.2 and abs(switched["off"] - before["domain"]) <= 0.05, switched
# exact on the CPU (fp32); on a GPU, bf16 weights or TF32 products round, which can flip a near-tie
assert merge_difference < (1e-5 if profile.device == "cpu" else 2e-2), merge_difference
assert same_predictions == 1.0 if profile.device == "cpu" else same_predictions >= 0.8, same_predictions
assert all(abs(row["error"]) <= 0.25 for row in calibration), calibration
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
#   tuned for each method, and several seeds: a gap inside the seed-to-seed range is no difference.
# * Measured here, each at its own rate over three seeds: no measurable difference between full fine-tuning
#   and LoRA r = 16 in what they learned (mean domain accuracy 0.87 and 0.89, from 0.23) or in what they forgot
#   (general accuracy 0.64 and 0.63, from 0.96). LoRA forgot less only at lower rates, where it also learned
#   less: the trade-off Biderman et al. describe, without their "LoRA learns less" once LoRA gets its own
#   learning rate.
# * On this tiny model LoRA r = 16 on every linear layer trains 11% as many parameters as full fine-tuning
#   (r = 1 on attention: 0.3%; r = 16 on Llama-3.1-8B: 0.5%), its file is 9 times smaller (r = 1: 300 times)
#   and a training step peaks at two thirds of full fine-tuning's memory; per step it is not meaningfully faster.
# * Merged or kept apart, the adapter computes the same thing; keeping it apart lets one base serve many.
# * Memory is mostly bookkeeping: 16 bytes per trained parameter for AdamW in mixed precision (fp32 weight,
#   gradient and two optimizer states), plus activations. The calculator predicts it from a config, so you
#   can tell before you start whether a run fits.
