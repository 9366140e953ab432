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
import copy
import time

import matplotlib.pyplot as plt
import numpy as np
import torch

import ftlab
from ftlab.display import html_table
from ftlab.evaluation import evaluate
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
# ## 2. Specialising on the domain: full fine-tuning vs LoRA at several ranks and targets
#
# Every run starts from tiny-chat, sees the same 44 domain conversations for the same number of steps,
# and uses the profile's learning rate for its kind (LoRA trains fewer, freshly initialised weights
# and needs a larger one). For each run we measure:
#
# * trainable parameters, and their share of the model;
# * peak memory of one training step (PyTorch's memory profiler, tensors only — see section 4);
# * seconds per step, and the size on disk (full checkpoint vs adapter only);
# * **domain gain**: accuracy on held-out elements, after minus before;
# * **general loss (forgetting)**: `qa` accuracy on the general questions, before minus after.

# %%
domain_train = domain["train"].remove_columns("answer")
steps = 60
before_domain = evaluate(chat, tok, "domain").accuracy
before_general = evaluate(chat, tok, "qa").accuracy
print(f"tiny-chat before: domain {before_domain:.2f}, general {before_general:.2f}")


def step_peak(model):
    """Peak tensor memory of one AdamW training step on a batch of 8 domain conversations."""
    batch = tok.apply_chat_template(list(domain_train[:8]["messages"]), tokenize=True, return_dict=True,
                                    padding=True, return_tensors="pt").to(model.device)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-6)
    model.train()

    def one_step():
        model(**batch, labels=batch["input_ids"]).loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    one_step()
    peak = measure_peak(model, one_step)
    model.eval()
    return peak


runs = {"full": None} | {f"LoRA r={r} {name}": (r, targets) for r in (1, 4, 16, 64)
                         for name, targets in (("attention", ATTENTION_TARGETS), ("all-linear", "all-linear"))}
results = []
for name, spec in runs.items():
    model, _ = ftlab.load_model(profile.chat_model, profile, for_training=True)
    peft = None if spec is None else lora_config(model, r=spec[0], targets=spec[1])
    run = train_sft(model, tok, domain_train, profile, peft_config=peft, assistant_only_loss=True, max_steps=steps,
                    per_device_train_batch_size=8, quiet=True)
    trainable, total = trainable_parameters(run.model)
    results.append({
        "run": name, "trainable": trainable, "% of model": 100 * trainable / total,
        "peak MiB": step_peak(run.model) / 2**20, "s/step": run.seconds_per_step,
        "disk MiB": saved_size(run.model) / 2**20,
        "domain gain": evaluate(run.model, tok, "domain").accuracy - before_domain,
        "general loss": before_general - evaluate(run.model, tok, "qa").accuracy,
        "model": run.model,
    })
    print(f"{name:>22}: domain gain {results[-1]['domain gain']:+.2f}, general loss {results[-1]['general loss']:+.2f}")
html_table([{k: v for k, v in r.items() if k != "model"} for r in results])

# %%
fig, ax = plt.subplots(figsize=(7, 4.5))
labels = {}  # runs that land on the same point share one label
for r in results:
    full = r["run"] == "full"
    ax.scatter(r["general loss"], r["domain gain"], s=30 + 20 * np.log10(r["trainable"]),
               color="tab:red" if full else ("tab:blue" if "attention" in r["run"] else "tab:green"), alpha=0.8)
    name = r["run"].replace("LoRA ", "").replace("attention", "attn").replace("all-linear", "all")
    labels.setdefault((r["general loss"], r["domain gain"]), []).append(name)
for i, (point, names) in enumerate(labels.items()):
    ax.annotate(" + ".join(names), point, fontsize=8, xytext=(5, -12 + 10 * (i % 3)), textcoords="offset points")
ax.set_ylim(0, 1)
ax.set_xlim(0, max(r["general loss"] for r in results) + 0.1)
ax.set_xlabel("general score lost (forgetting) →")
ax.set_ylabel("domain score gained →")
ax.set_title("learns vs forgets — red: full; blue: LoRA on attention; green: LoRA on all linear layers;\n"
             "marker size grows with trainable parameters", fontsize=9)
fig.tight_layout()

# %% [markdown]
# Read the plot from the top-left (learns a lot, forgets little) to the right (forgets more).
# Full fine-tuning moves every weight, including the ones the general questions depend on. Low-rank
# LoRA learns the domain with a small fraction of the parameters and disturbs less; as the rank and the
# number of adapted layers grow, LoRA's update becomes more like full fine-tuning, and so does its
# forgetting ("LoRA learns less and forgets less", Biderman et al., 2024). The best choice is the
# smallest adapter that learns the domain.

# %%
full_run = results[0]
small = [r for r in results[1:] if r["% of model"] <= 10]
best = max(small, key=lambda r: (r["domain gain"], -r["general loss"]))
print(f"full: gain {full_run['domain gain']:.2f}, loses {full_run['general loss']:.2f}, {full_run['trainable']:,} parameters")
print(f"best LoRA with <= 10% of the parameters ({best['run']}): gain {best['domain gain']:.2f} "
      f"= {best['domain gain'] / full_run['domain gain']:.0%} of full's, loses {best['general loss']:.2f}, "
      f"{best['trainable']:,} parameters ({best['% of model']:.1f}%)")

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
other = next(r for r in results[1:] if r is not best)
other_dir = tempfile.mkdtemp()
other["model"].save_pretrained(other_dir)
shared = PeftModel.from_pretrained(ftlab.load_model(profile.chat_model, profile)[0], adapter_dir, adapter_name="best")
shared.load_adapter(other_dir, adapter_name="other")
for name in ("best", "other"):
    shared.set_adapter(name)
    print(f"adapter {name!r}: domain accuracy {evaluate(shared, tok, 'domain').accuracy:.2f}")
with shared.disable_adapter():
    print(f"adapters off (the shared base): domain accuracy {evaluate(shared, tok, 'domain').accuracy:.2f}")

# %% [markdown]
# Merge when you ship one specialised model. Keep adapters when one base serves several tasks or
# customers (each adapter is a few hundred kilobytes here, tens of megabytes for a 7B model), or when
# you may want the base behaviour back.

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
# measure the peak tensor memory of a training step with PyTorch's memory profiler (`torch.profiler`
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
    x = torch.randint(0, 2048, (8, 128))

    def train_step():
        big(input_ids=x, labels=x).loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    train_step()  # the optimizer state exists from the first step on
    measured = measure_peak(big, train_step)
    predicted = estimate(config20m, method, batch=8, seq_len=128, dtype="fp32", lora_r=16)
    calibration.append({"method": method, "measured MiB": measured / 2**20, "estimated MiB": predicted.total / 2**20,
                        "error": predicted.total / measured - 1,
                        **{f"{k} MiB": v / 2**20 for k, v in predicted.breakdown.items()}})
    del big, opt
html_table(calibration)

# %% [markdown]
# Now real models. A free Colab T4 has 15 GB and no native bf16, so: fp16 weights, batch 4 × 512 tokens,
# AdamW, LoRA r=16 on all linear layers, QLoRA with a 4-bit base (configs bundled with ftlab; no download).

# %%
fit_rows = []
for name, cfg in bundled_configs().items():
    row = {"model": name}
    for method in ("full", "lora", "qlora"):
        for ckpt in (False, True):
            e = estimate(cfg, method, batch=4, seq_len=512, dtype="fp16", lora_r=16, gradient_checkpointing=ckpt)
            row[f"{method}{' + ckpt' if ckpt else ''}"] = f"{e.total / 2**30:.1f} GiB {'✓' if e.fits(15) else '✗'}"
    fit_rows.append(row)
html_table(fit_rows)

# %% [markdown]
# Full fine-tuning pays 16 bytes per parameter before a single activation (weights, gradients, two
# AdamW states; more with fp32 master weights), so even the 1.7B model does not fit a T4. LoRA removes
# the gradients and optimizer state of the base; QLoRA also shrinks the frozen weights to 4 bits, which
# is what brings an 8B model within reach — with gradient checkpointing to tame the activations.
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
        q_run = train_sft(q_model, tok, domain_train, profile, peft_config=lora_config(q_model, r=16), assistant_only_loss=True,
                          max_steps=steps, per_device_train_batch_size=8, quiet=True)
        q_gain = evaluate(q_run.model, tok, "domain").accuracy - before_domain
        print(f"QLoRA r=16 on NF4 weights: domain gain {q_gain:+.2f} (best LoRA above: {best['domain gain']:+.2f}), "
              f"peak GPU memory {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB")
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
html_table([{"measurement": k, "value": v} for k, v in {
    "max |scratch LoRA - PEFT|": scratch_vs_peft,
    "full: domain gain": full_run["domain gain"], "full: general loss": full_run["general loss"],
    f"best LoRA ({best['run']}): domain gain": best["domain gain"],
    f"best LoRA ({best['run']}): general loss": best["general loss"],
    "best LoRA's share of full's gain": best["domain gain"] / full_run["domain gain"],
    "best LoRA's trainable share": best["trainable"] / full_run["trainable"],
    "max |merged - adapter| (relative)": merge_difference,
    "calculator error, full": calibration[0]["error"], "calculator error, LoRA": calibration[1]["error"],
}.items()])

# %%
# CHECK
assert scratch_vs_peft < 1e-5
assert best["domain gain"] >= 0.9 * full_run["domain gain"] and best["trainable"] <= 0.10 * full_run["trainable"]
assert full_run["general loss"] > best["general loss"], (full_run["general loss"], best["general loss"])
# exact on the CPU (fp32); on a GPU, bf16 weights or TF32 products round, which can flip a near-tie
assert merge_difference < (1e-5 if profile.device == "cpu" else 2e-2), merge_difference
assert same_predictions == 1.0 if profile.device == "cpu" else same_predictions >= 0.8, same_predictions
assert all(abs(row["error"]) <= 0.25 for row in calibration), calibration
print("All checks passed.")

# %% [markdown]
# ## Summary
#
# * LoRA is a frozen layer plus a trainable low-rank product, `W x + (alpha/r) B A x` — twenty lines, and
#   identical to PEFT's.
# * On a narrow domain, a LoRA adapter with about 1% of the parameters learned as much as full
#   fine-tuning, forgot less of everything else, trained with less memory and saved as a file tens to
#   hundreds of times smaller. High ranks on every layer drift back towards full fine-tuning's forgetting.
# * Merged or kept apart, the adapter computes the same thing; keeping it apart lets one base serve many.
# * Memory is mostly bookkeeping: 16 bytes per trainable parameter for AdamW training, plus activations.
#   The calculator predicts it from a config, so you can tell before you start whether a run fits.
