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
# # Lesson 5 — In-context learning vs fine-tuning, on the same task
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/ftlab-course/ftlab/blob/main/notebooks/05_icl_vs_finetuning.ipynb)
#
# **Goal.** Teach a model one small task twice — once by putting examples in the prompt
# (*in-context learning*, ICL), once by training on them (*fine-tuning*, here with LoRA) — and
# measure what each costs and what each keeps.
#
# **The idea.** In-context learning changes nothing in the weights: the examples ride along in
# every prompt, cost tokens on every query, and must fit in the context window. Fine-tuning pays
# once, up front, and then answers from a bare prompt — in every future session.
#
# **The task:** given a country, name its main language. Written the way the pre-training corpus
# writes lists: `France -> French`. The base model saw many such lists — capitals, continents,
# languages, animal sounds — so from `Brazil ->` alone it cannot tell *which* list it is in.

# %%
# Set-up for Colab: installs ftlab and TRL next to Colab's own torch, transformers and
# ipywidgets (nothing to restart). Anywhere else this cell does nothing: `make lab` installed it all.
import sys

if "google.colab" in sys.modules:
    import subprocess

    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet",
                    "ftlab @ git+https://github.com/ftlab-course/ftlab@main"], check=True)

# %%
import time

import numpy as np
from tqdm.auto import tqdm
import matplotlib.pyplot as plt
from datasets import Dataset
from peft import LoraConfig

import ftlab
from ftlab.display import html_table
from ftlab.icl import ContextWindowError, accuracy, build_prompt, context_window, predict, sample_demos
from ftlab.training import train_sft
from ftlab.world import World

profile = ftlab.setup()
base, tok = ftlab.load_model(profile.base_model, profile)
window = context_window(tok, base)
world = World(seed=0)
task = world.icl_task("language")
pool = list(zip(task["train"]["input"], task["train"]["output"]))  # demonstrations / training examples
test = list(zip(task["test"]["input"], task["test"]["output"]))    # held-out countries
answers = [y for _, y in test]
print(f"{len(pool)} examples to learn from, {len(test)} held-out countries; context window {window} tokens")
print(pool[:3])

# %% [markdown]
# ## 1. Zero-shot: the model guesses the task
#
# With no demonstrations (k = 0) the base continues `Brazil ->` with whatever list it thinks it is in:

# %%
zero = predict(base, tok, [f"{x} ->" for x, _ in test])
html_table([{"prompt": f"{x} ->", "prediction": p.text, "probability": p.probability, "answer": y}
            for (x, y), p in list(zip(test, zero))[:6]])


# %% [markdown]
# ## 2. The in-context learning curve
#
# Now k demonstrations, drawn at random from the pool, then the query. For each k we draw the
# demonstrations 5 times (different examples, different order) and report the mean and spread.
# Nothing is trained: the weights are the same in every row.

# %%
def icl_accuracy(model, k, draw, demos_for=None):
    prompts = []
    for i, (x, _) in enumerate(test):
        demos = demos_for(x, i) if demos_for else sample_demos(pool, k, seed=1000 * draw + i, exclude=x)
        prompts.append(build_prompt(tok, demos, x, window).text)
    return accuracy(predict(model, tok, prompts, with_probability=False), answers)


ks = [0, 1, 2, 4, 8, 16, 32]
icl_curve = {k: [icl_accuracy(base, k, draw) for draw in range(5)] for k in ks}
for k, accs in icl_curve.items():
    print(f"k = {k:2d}: accuracy {np.mean(accs):.2f} ± {np.std(accs):.2f}")
best_icl = max(np.mean(a) for a in icl_curve.values())
example = build_prompt(tok, sample_demos(pool, 4, seed=0, exclude=test[0][0]), test[0][0], window)
print("\na 4-shot prompt:\n" + example.text)

# %% [markdown]
# One demonstration is enough to tell the tiny base *which* list it is in; after that, it answers from
# what it learned in pre-training. That is what in-context learning mostly is at this scale: **task
# recognition**, not learning new facts. (The mechanism — induction heads that copy patterns seen
# earlier in the context — forms during pre-training on text with repeated lists; that is why the
# corpus has them.)
#
# **Which demonstrations, in which order?** Four variations of a 4-shot prompt:
#
# * all four demonstrations of the right task;
# * one demonstration of the *wrong* task (country -> capital) placed **first**, or placed **last**;
# * all four of the wrong task;
# * the right inputs with **shuffled labels** (each country paired with a random language).

# %%
capitals = {f.subject: f.object for f in world.facts_of("capital")}
languages = sorted({y for _, y in pool})


def variation(kind):
    def demos_for(x, i):
        demos = sample_demos(pool, 4, seed=i, exclude=x)
        wrong = [(c, capitals[c]) for c, _ in demos]
        if kind == "wrong task first":
            return [wrong[0]] + demos[1:]
        if kind == "wrong task last":
            return demos[:3] + [wrong[3]]
        if kind == "all wrong task":
            return wrong
        if kind == "shuffled labels":
            rng = np.random.default_rng(i)
            return [(c, languages[rng.integers(len(languages))]) for c, _ in demos]
        return demos
    return demos_for


sensitivity = {kind: icl_accuracy(base, 4, 0, demos_for=variation(kind))
               for kind in ["right task", "wrong task first", "wrong task last", "all wrong task", "shuffled labels"]}
for kind, acc in sensitivity.items():
    print(f"{kind:>17}: accuracy {acc:.2f}")


# %% [markdown]
# The model follows the *latest* evidence about the task: a wrong demonstration right before the
# query hurts far more than the same one at the start. Wrong-task demonstrations switch the task
# entirely. Shuffled labels still tell the model the *format* and the kind of answer (a language), so
# it answers from memory — much of what demonstrations do is show the task, not teach the mapping.

# %% [markdown]
# ## 3. The fine-tuning curve
#
# Now the other way: take n examples from the same pool, fine-tune the base model on them with LoRA
# (30 steps each — lesson 3 explains LoRA), and ask with a **bare** prompt, `Brazil ->`.
# The data is in TRL's prompt–completion format, so the loss is on the completion only.

# %%
def finetune(n):
    rows = pool[:n]
    data = Dataset.from_dict({"prompt": [f"{x} ->" for x, _ in rows], "completion": [f" {y}\n" for _, y in rows]})
    model, _ = ftlab.load_model(profile.base_model, profile, for_training=True)
    lora = LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", task_type="CAUSAL_LM")
    return train_sft(model, tok, data, profile, peft_config=lora, max_steps=30,  # LoRA's learning rate: profile.learning_rates["lora"]
                     per_device_train_batch_size=min(n, 8), quiet=True)


ns = [1, 2, 4, 8, 16, 32, 64]
ft_runs, ft_curve = {}, {}
for n in tqdm(ns, desc="fine-tuning runs"):
    ft_runs[n] = finetune(n)
    ft_curve[n] = accuracy(predict(ft_runs[n].model, tok, [f"{x} ->" for x, _ in test], with_probability=False), answers)
    print(f"n = {n:2d}: accuracy {ft_curve[n]:.2f}  ({ft_runs[n].seconds:.1f} s of training)")

# %%
fig, ax = plt.subplots(1, 2, figsize=(10, 3.5), sharey=True)
means, stds = [np.mean(icl_curve[k]) for k in ks], [np.std(icl_curve[k]) for k in ks]
ax[0].errorbar([max(k, 0.5) for k in ks], means, yerr=stds, marker="o", capsize=3)
ax[0].set_xscale("log", base=2)
ax[0].set_xticks([max(k, 0.5) for k in ks], [str(k) for k in ks])
ax[0].set_xlabel("demonstrations in the prompt (k)")
ax[0].set_ylabel("held-out accuracy")
ax[0].set_title("in-context learning (5 draws each)")
ax[1].plot(ns, [ft_curve[n] for n in ns], marker="o", color="tab:orange")
ax[1].set_xscale("log", base=2)
ax[1].set_xticks(ns, [str(n) for n in ns])
ax[1].set_xlabel("training examples (n), LoRA, 30 steps")
ax[1].set_title("fine-tuning, bare prompt")
fig.tight_layout()


# %% [markdown]
# ## 4. What each costs
#
# **Per query**, in-context learning processes the demonstrations again every time; the fine-tuned
# model reads only the bare prompt. We measure both: prompt tokens (from the tokenizer) and wall time
# per query (one query at a time, median of 20).

# %%
def latency(model, prompts):
    times = []
    for p in prompts:
        start = time.perf_counter()
        predict(model, tok, [p], with_probability=False)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


cost_ks = [0, 1, 2, 4, 8, 16, 32]
tokens_icl = {k: float(np.mean([build_prompt(tok, sample_demos(pool, k, seed=i, exclude=x), x, window).tokens
                                for i, (x, _) in enumerate(test)])) for k in cost_ks}
tokens_ft = {n: float(np.mean([len(tok(f"{x} ->")["input_ids"]) for x, _ in test])) for n in ns}
import tempfile

adapter_dir = tempfile.mkdtemp()
ft_runs[64].model.save_pretrained(adapter_dir)  # kept for section 6
served = ft_runs[64].model.merge_and_unload()   # merged into the weights, as you would serve it (lesson 3)
queries = [build_prompt(tok, sample_demos(pool, 8, seed=i, exclude=x), x, window).text for i, (x, _) in enumerate(test)]
latency_icl8 = latency(base, queries)
latency_ft = latency(served, [f"{x} ->" for x, _ in test])
html_table([{"method": f"ICL, k={k}", "prompt tokens per query": tokens_icl[k]} for k in cost_ks] +
           [{"method": "fine-tuned (any n)", "prompt tokens per query": tokens_ft[64]}])

# %%
print(f"median latency per query: 8-shot ICL {latency_icl8 * 1000:.1f} ms, fine-tuned bare prompt {latency_ft * 1000:.1f} ms")
# On a 2M-parameter model most of the time per query is fixed overhead (Python, the generation loop),
# so the measured gap is small; the token count is what scales with model size and traffic.
slope, intercept = np.polyfit(cost_ks, [tokens_icl[k] for k in cost_ks], 1)
r2 = np.corrcoef(cost_ks, [tokens_icl[k] for k in cost_ks])[0, 1] ** 2
print(f"ICL prompt tokens = {intercept:.1f} + {slope:.2f} * k  (R^2 = {r2:.4f}); fine-tuned: {tokens_ft[64]:.1f} for every n")

# %% [markdown]
# **Total compute, training included.** A forward pass costs about 2·N FLOPs per token for a model of N
# parameters, and a training step about 6·N per token (forward, backward, update; with LoRA the
# backward pass is a little cheaper, so this overestimates). Fine-tuning pays its training tokens once;
# ICL pays its demonstrations on every query. Where the lines cross, fine-tuning becomes the cheaper way.

# %%
N = sum(p.numel() for p in base.parameters())
k_icl = 8
train_tokens = int(max(h.get("num_tokens", 0) for h in ft_runs[64].trainer.state.log_history))  # logged by TRL
train_flops = 6 * N * train_tokens
per_query_icl = 2 * N * (tokens_icl[k_icl] + 2)
per_query_ft = 2 * N * (tokens_ft[64] + 2)
crossover = train_flops / (per_query_icl - per_query_ft)
q = np.linspace(0, 3 * crossover, 100)
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(q, q * per_query_icl / 1e9, label=f"ICL, k={k_icl}")
ax.plot(q, (train_flops + q * per_query_ft) / 1e9, label="fine-tune (n=64) then bare prompts")
ax.axvline(crossover, color="grey", ls="--")
ax.set_xlabel("queries served")
ax.set_ylabel("total GFLOPs")
ax.legend()
ax.set_title(f"fine-tuning pays off after ~{crossover:,.0f} queries")
fig.tight_layout()
print(f"training: {train_tokens:,} tokens = {train_flops / 1e9:.1f} GFLOPs; "
      f"per query: ICL {per_query_icl / 1e6:.1f} MFLOPs, fine-tuned {per_query_ft / 1e6:.1f} MFLOPs")

# %% [markdown]
# ## 5. The context window
#
# The tiny model was trained on 256-token windows (SmolLM2 on 8192). Every demonstration costs ~4-5
# tokens, so a window holds a limited number of them. Ask for more and `build_prompt` refuses, saying
# how many fit — instead of silently cutting the prompt (which could cut the query itself and produce
# a confident wrong answer):

# %%
many = [pool[i % len(pool)] for i in range(window // 3)]  # more demonstrations than the window holds
try:
    build_prompt(tok, many, test[0][0], window)
except ContextWindowError as err:
    print("ContextWindowError:", err)

# %% [markdown]
# If you do want as many as fit, ask for visible truncation: the *oldest* demonstrations are dropped,
# the query always stays, and the prompt reports what it dropped.

# %%
cut = build_prompt(tok, many, test[0][0], window, on_overflow="truncate")
print(f"kept {cut.k} demonstrations, dropped {cut.dropped}; {cut.tokens} of {window} tokens; ends with: {cut.text[-30:]!r}")
print("prediction:", predict(base, tok, [cut.text])[0])

# %% [markdown]
# ## 6. Persistence: a fresh session
#
# Save the fine-tuned adapter, start "a new session" (load the base model again from disk, attach the
# adapter), and ask with a bare prompt. Then ask the base model the same way: the demonstrations from
# earlier prompts are gone — in-context learning lasted exactly one prompt.

# %%
from peft import PeftModel

bare = [f"{x} ->" for x, _ in test]
new_session_base, _ = ftlab.load_model(profile.base_model, profile)
persist_icl = accuracy(predict(new_session_base, tok, bare, with_probability=False), answers)
# PeftModel.from_pretrained attaches the adapter to the model it is given, so it gets its own copy
reloaded = PeftModel.from_pretrained(ftlab.load_model(profile.base_model, profile)[0], adapter_dir).eval()
persist_ft = accuracy(predict(reloaded, tok, bare, with_probability=False), answers)
print(f"new session, bare prompt: fine-tuned adapter {persist_ft:.2f}, base (after ICL earlier) {persist_icl:.2f}")

# %% [markdown]
# ## 7. Try it yourself
#
# Choose k and a draw (or pick demonstrations by hand — try ones from the wrong task, or too many),
# choose a query, and see the prompt, the prediction and its probability.

# %%
from ftlab.widgets import ICLExplorer

explorer = ICLExplorer(base, tok, pool, test)
explorer

# %%
explorer.k.value = 2
explorer.button.click()
explorer.run()

# %% [markdown]
# ## 8. Check: what this lesson claims, measured

# %%
html_table([{"measurement": k, "value": v} for k, v in {
    "ICL accuracy, k=0": float(np.mean(icl_curve[0])), "ICL accuracy, k=8": float(np.mean(icl_curve[8])),
    "best ICL accuracy": best_icl, "fine-tuned accuracy, n=64": ft_curve[64],
    "ICL tokens per extra demonstration": float(slope), "ICL tokens linear fit R^2": float(r2),
    "fine-tuned tokens per query (spread over n)": float(np.ptp(list(tokens_ft.values()))),
    "new session: fine-tuned": persist_ft, "new session: base": persist_icl,
}.items()])

# %%
# CHECK
assert np.mean(icl_curve[8]) >= np.mean(icl_curve[0]) + 0.15, icl_curve
assert ft_curve[64] >= best_icl, (ft_curve[64], best_icl)
assert slope > 1 and r2 > 0.99, (slope, r2)            # ICL prompt grows linearly with k ...
assert np.ptp(list(tokens_ft.values())) == 0            # ... the fine-tuned prompt does not grow at all
assert persist_ft >= best_icl and persist_icl <= np.mean(icl_curve[0]) + 1e-9
print("All checks passed.")

# %% [markdown]
# ## Summary
#
# * In-context learning needs no training: a handful of demonstrations told the tiny base which task
#   it was doing. But it is sensitive to which demonstrations you pick and where they sit, it pays
#   for them in tokens on every query, it stops at the context window, and it is gone in the next session.
# * Fine-tuning on as many examples reached the same accuracy from a bare prompt, keeps it across
#   sessions, and — past a number of queries you can compute — is the cheaper way to serve the task.
# * At this scale both mostly *select* a behaviour the base already has: neither taught it a new fact.
