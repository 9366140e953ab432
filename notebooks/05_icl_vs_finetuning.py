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
# # Lesson 5 — In-context learning vs fine-tuning
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/ftlab-course/ftlab/blob/main/notebooks/05_icl_vs_finetuning.ipynb)
#
# **Goal.** Teach a model twice — once by putting examples in the prompt (*in-context learning*,
# ICL), once by training on them (*fine-tuning*) — and measure what each can do, what each costs,
# and what each keeps.
#
# **The idea.** In-context learning changes nothing in the weights: the examples ride along in
# every prompt, cost tokens on every query, and must fit in the context window. Fine-tuning pays
# once, up front, and then answers from a bare prompt — in every future session.
#
# Two tasks, because in-context learning does two different things:
#
# * **A task the base already knows** — given a country, name its language (`France -> French`).
#   The base read such lists in pre-training; the demonstrations only have to tell it *which* list.
# * **New facts** — words of an invented language and the animal each names (`Fulu -> cat`). No
#   pre-training text has them. To answer, a model has to *read the answer out of the prompt*, or have been
#   *trained* on it. Reading it out of the prompt takes a skill the tiny base never learned (copying); we
#   measure that, and then use a sibling model whose pre-training taught it.

# %%
# Set-up for Colab: installs ftlab and TRL next to Colab's own torch, transformers and
# ipywidgets (nothing to restart). Anywhere else this cell does nothing: `make lab` installed it all.
import sys

if "google.colab" in sys.modules:
    import subprocess

    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet",
                    "ftlab @ git+https://github.com/ftlab-course/ftlab@main"], check=True)

# %%
import math
import tempfile
import time

import numpy as np
from tqdm.auto import tqdm
import matplotlib.pyplot as plt
from datasets import Dataset
from peft import LoraConfig

import ftlab
from ftlab.display import html_table
from ftlab.icl import (ContextWindowError, accuracy, build_prompt, context_window, coverage, max_demos, new_facts,
                       plateau, predict, sample_demos)
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
print(f"known task: {len(pool)} examples to learn from, {len(test)} held-out countries; context window {window} tokens")
print(pool[:3])

# %% [markdown]
# ## Part A — a task the base already knows
#
# ### 1. Zero-shot: the model guesses the task
#
# With no demonstrations (k = 0) the base continues `Brazil ->` with whatever list it thinks it is in
# (six of the held-out countries here; all of them in the curve below):

# %%
shown = test[:6]
zero = predict(base, tok, [f"{x} ->" for x, _ in shown])
html_table([{"prompt": f"{x} ->", "prediction": p.text, "probability": p.probability, "answer": y}
            for (x, y), p in zip(shown, zero)])


# %% [markdown]
# ### 2. The in-context learning curve
#
# Now k demonstrations, drawn at random from the pool, then the query. For each k >= 1 we draw the
# demonstrations 3 times (different examples, different order) and report the mean and the spread
# (k = 0 has nothing to draw: one run). Nothing is trained: the weights are the same in every row.

# %%
def icl_prompts(k, draw, demos_for=None):
    """One prompt per held-out country: k demonstrations (this draw's, or chosen by demos_for), then the query."""
    return [build_prompt(tok, demos_for(x, i) if demos_for else sample_demos(pool, k, seed=1000 * draw + i, exclude=x),
                         x, window).text for i, (x, _) in enumerate(test)]


def icl_accuracies(model, prompt_sets):
    """The accuracy of each set of prompts; all the prompts go through the model in one batched call."""
    preds = predict(model, tok, [p for prompts in prompt_sets for p in prompts], with_probability=False)
    return [accuracy(preds[j * len(test):(j + 1) * len(test)], answers) for j in range(len(prompt_sets))]


ks = [0, 1, 2, 4, 8, 16]
runs = [(k, draw) for k in ks for draw in range(1 if k == 0 else 3)]
run_accs = icl_accuracies(base, [icl_prompts(k, draw) for k, draw in runs])
icl_curve = {k: [acc for (k_run, _), acc in zip(runs, run_accs) if k_run == k] for k in ks}
for k, accs in icl_curve.items():
    print(f"k = {k:2d}: accuracy {np.mean(accs):.2f} (draws: {', '.join(f'{a:.2f}' for a in accs)})")
example = build_prompt(tok, sample_demos(pool, 4, seed=0, exclude=test[0][0]), test[0][0], window)
print("\na 4-shot prompt:\n" + example.text)

# %% [markdown]
# One demonstration is enough to tell the tiny base *which* list it is in; after that it answers from
# what it learned in pre-training, and more demonstrations add nothing. This is **task recognition**:
# the answer (`Portuguese` for Brazil) was never in the prompt.
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


kinds = ["right task", "wrong task first", "wrong task last", "all wrong task", "shuffled labels"]
sensitivity = dict(zip(kinds, icl_accuracies(base, [icl_prompts(4, 0, demos_for=variation(kind)) for kind in kinds])))
for kind, acc in sensitivity.items():
    print(f"{kind:>17}: accuracy {acc:.2f}")


# %% [markdown]
# The model follows the *latest* evidence about the task: a wrong demonstration right before the
# query hurts far more than the same one at the start. Wrong-task demonstrations switch the task
# entirely. Shuffled labels still tell the model the *format* and the kind of answer (a language), so
# it answers from memory — the demonstrations showed the task; they did not teach the mapping.
#
# ### 3. Fine-tuning on the same task, and what each costs
#
# Fine-tune the base on the whole pool with LoRA (lesson 3 explains LoRA) and ask with a **bare**
# prompt, `Brazil ->`. The data is in TRL's prompt–completion format, so the loss is on the completion
# only. Two passes over the 78 examples (10 steps of up to 16) are enough here. The runs in this
# lesson are short, so they keep the learning rate constant at 1.5 times the profile's LoRA rate
# instead of warming it up and decaying it.

# %%
def finetune(pairs, epochs, rank=8, model_name=profile.base_model):
    """LoRA on (input, output) pairs: `epochs` passes over them in batches of up to 16, at a constant learning rate."""
    batch = min(len(pairs), 16)
    data = Dataset.from_dict({"prompt": [f"{x} ->" for x, _ in pairs], "completion": [f" {y}\n" for _, y in pairs]})
    model, tokenizer = ftlab.load_model(model_name, profile, for_training=True)
    lora = LoraConfig(r=rank, lora_alpha=2 * rank, target_modules="all-linear", task_type="CAUSAL_LM")
    return train_sft(model, tokenizer, data, profile, peft_config=lora, max_steps=epochs * math.ceil(len(pairs) / batch),
                     per_device_train_batch_size=batch, learning_rate=1.5 * profile.learning_rates["lora"],
                     lr_scheduler_type="constant", quiet=True)


known_run = finetune(pool, epochs=2)
known_ft = accuracy(predict(known_run.model, tok, [f"{x} ->" for x, _ in test], with_probability=False), answers)
icl_means = {k: float(np.mean(a)) for k, a in icl_curve.items()}
k_plateau = plateau(icl_means, tolerance=0.05)
print(f"fine-tuned, bare prompt: {known_ft:.2f}   ICL: {icl_means[0]:.2f} at k=0, plateau {icl_means[k_plateau]:.2f} "
      f"from k={k_plateau} on")

# %% [markdown]
# On a task the base already knows, both reach 1.00 on the 20 held-out countries, the top of this test:
# a demonstration or two does what the training run does. Two arms at the ceiling are a tie, not a
# ranking: this test cannot say which of the two is better at the task, only that both are enough.
# So here the question is only **cost**. Per query, ICL processes its demonstrations
# again every time; the fine-tuned model reads only the bare prompt. We measure prompt tokens (from the
# tokenizer) and wall time per query (one query at a time, median over 10 of the held-out countries).

# %%
def latency(model, prompts):
    times = []
    for p in prompts:
        start = time.perf_counter()
        predict(model, tok, [p], with_probability=False)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


tokens_icl = {k: float(np.mean([build_prompt(tok, sample_demos(pool, k, seed=i, exclude=x), x, window).tokens
                                for i, (x, _) in enumerate(test)])) for k in ks}
tokens_bare = float(np.mean([len(tok(f"{x} ->")["input_ids"]) for x, _ in test]))  # the fine-tuned prompt, for any n
served = known_run.model.merge_and_unload()  # merged into the weights, as you would serve it (lesson 3)
timed = test[:10]
latency_icl = latency(base, [build_prompt(tok, sample_demos(pool, 16, seed=i, exclude=x), x, window).text
                             for i, (x, _) in enumerate(timed)])
latency_ft = latency(served, [f"{x} ->" for x, _ in timed])
slope, intercept = np.polyfit(ks, [tokens_icl[k] for k in ks], 1)
r2 = np.corrcoef(ks, [tokens_icl[k] for k in ks])[0, 1] ** 2
html_table([{"method": f"ICL, k={k}", "prompt tokens per query": tokens_icl[k]} for k in ks] +
           [{"method": "fine-tuned (bare prompt)", "prompt tokens per query": tokens_bare}])

# %%
print(f"ICL prompt tokens = {intercept:.1f} + {slope:.2f} * k  (R^2 = {r2:.4f}); fine-tuned: {tokens_bare:.1f}")
print(f"median latency per query: 16-shot ICL {latency_icl * 1000:.1f} ms, fine-tuned bare prompt {latency_ft * 1000:.1f} ms")
# On a 2M-parameter model most of the time per query is fixed overhead (Python, the generation loop),
# so the measured gap in time is far smaller than the gap in prompt tokens; the token count is what
# scales with model size and traffic.

# %% [markdown]
# **Total compute, training included.** A forward pass costs about 2·N FLOPs per token for a model of N
# parameters, and a training step about 6·N per token (forward, backward, update; with LoRA the backward
# pass is a little cheaper, so this overestimates). Fine-tuning pays its training tokens once; ICL pays
# its demonstrations on every query. We compare at the **plateau** of the ICL curve — the fewest
# demonstrations that reach (within 0.05) its best accuracy, computed above — because paying for more
# demonstrations than that buys nothing.
#
# **Prefix caching.** If every query starts with the *same* demonstration block, a server can compute
# that block's keys and values once and reuse them (vLLM's automatic prefix caching, or
# `past_key_values` in `transformers`). Each new token then still *attends* to the cached block
# (about 4 · layers · hidden size FLOPs per cached token), but no longer runs it through the
# weights. Random demonstrations per query, as above, cannot be cached.

# %%
N = sum(p.numel() for p in base.parameters())
cfg = base.config
train_tokens = int(max(h.get("num_tokens", 0) for h in known_run.trainer.state.log_history))  # logged by TRL
train_flops = 6 * N * train_tokens
demo_tokens = tokens_icl[k_plateau] - tokens_bare
answer_tokens = 2
per_query_ft = 2 * N * (tokens_bare + answer_tokens)
per_query_icl = per_query_ft + 2 * N * demo_tokens
# with the block cached: the query and answer tokens attend to the cached demonstrations, nothing more
per_query_cached = per_query_ft + 4 * cfg.num_hidden_layers * cfg.hidden_size * demo_tokens * (tokens_bare + answer_tokens)
crossover = train_flops / (per_query_icl - per_query_ft)
crossover_cached = (train_flops - 2 * N * demo_tokens) / (per_query_cached - per_query_ft)
q = np.linspace(0, 3 * crossover, 100)
fig, ax = plt.subplots(figsize=(6.5, 3.8))
ax.plot(q, q * per_query_icl / 1e9, label=f"ICL at its plateau, k={k_plateau}")
ax.plot(q, (2 * N * demo_tokens + q * per_query_cached) / 1e9, ls=":", label=f"ICL, k={k_plateau}, block cached once")
ax.plot(q, (train_flops + q * per_query_ft) / 1e9, label="fine-tune once, then bare prompts")
ax.axvline(crossover, color="grey", ls="--", label=f"crossover: {crossover:,.0f} queries")
ax.set_xlabel("queries served")
ax.set_ylabel("total compute (GFLOPs)")
ax.set_title("known task: when does fine-tuning pay off?")
ax.legend(fontsize=8)
fig.tight_layout()
print(f"training: {train_tokens:,} tokens = {train_flops / 1e9:.2f} GFLOPs; per query: ICL (k={k_plateau}) "
      f"{per_query_icl / 1e6:.1f} MFLOPs, fine-tuned {per_query_ft / 1e6:.1f} MFLOPs, ICL with cached block "
      f"{per_query_cached / 1e6:.2f} MFLOPs")
print(f"fine-tuning is cheaper after {crossover:,.0f} queries; against a cached block, after {crossover_cached:,.0f}")

# %% [markdown]
# ## Part B — new facts
#
# Now a mapping no pre-training text contains: 99 words of an invented language, each naming an animal
# (`Fulu -> cat`). The goal is a model that answers `Fulu ->` with `cat`, for every word. We can give it
# the facts in the prompt (a fixed block of the first k facts, the same for every query — so it could
# be cached) or train on the first n of them; either way we ask about **all** 99.

# %%
facts = new_facts(seed=0)
fact_answers = [y for _, y in facts]
bare_facts = [f"{x} ->" for x, _ in facts]
print(f"{len(facts)} new facts, e.g. {facts[:4]}")

# %% [markdown]
# ### 4. Can the base read a fact out of its prompt?
#
# First the most favourable case: 7 other facts, then the query's **own** fact, then the query. A model
# that can copy — find `Fulu` earlier in the prompt and repeat what followed it — gets this right.
#
# We ask two models. The tiny base from Part A. And a sibling, **tiny-base-induction**: the same
# architecture and the same world text, but its pre-training also had documents that *repeat patterns*:
# random token sequences that come back later in the same document, and lists of made-up `x -> y` pairs
# (a fresh random mapping in each document) whose pairs come back further down. The only way to predict
# the second copy is to look back and copy, so pre-training rewards copying. Attention heads that do this
# are called *induction heads* (Olsson et al., 2022): they find the earlier occurrence of the current
# token and predict what followed it. Real text is full of such repeats, which is why hub models copy; the
# tiny base's pre-training lists hold only true facts, which it can answer from memory, so nothing ever
# rewarded copying. (How the sibling was built, stage by stage: `tools/build_induction_base.sh` and
# `docs/icl_induction_experiment.md`.)
#
# In the `gpu` profile both names point at the hub model, which already copies; it gets the same 256-token
# prompt budget as the tiny models, so that the context window still binds.

# %%
copier_name = "tiny-base-induction" if profile.base_model == "tiny-base" else profile.base_model
copier, ctok = ftlab.load_model(copier_name, profile)
# the prompt budget: the tiny models' whole window; a hub model (8k tokens) gets the same 256, so the window binds
cwindow = min(context_window(ctok, copier), 256)


def own_fact_prompt(tokenizer, i, x, y, position):
    others = sample_demos(facts, 7, seed=i, exclude=x)
    return build_prompt(tokenizer, others[:position] + [(x, y)] + others[position:], x, cwindow).text


copying = {}
for name, model, tokenizer in [(profile.base_model, base, tok), (copier_name, copier, ctok)]:
    for where, position in [("last", 7), ("first", 0)]:
        prompts = [own_fact_prompt(tokenizer, i, x, y, position) for i, (x, y) in enumerate(facts)]
        copying[name, where] = accuracy(predict(model, tokenizer, prompts, max_new_tokens=4, with_probability=False),
                                        fact_answers)
    print(f"{name:>19}: own fact in the prompt, accuracy {copying[name, 'last']:.2f} (just before the query), "
          f"{copying[name, 'first']:.2f} (first of 8); guessing one of 20 animals: about {1 / 20:.2f}")
print("\n" + own_fact_prompt(ctok, 0, *facts[0], 7))

# %% [markdown]
# The tiny base **cannot**: even with the answer one line above the question, it does not copy it. Its
# sibling with induction-style pre-training copies the answer most of the time, wherever it sits among the
# 8 lines. From
# here on, Part B uses the sibling for both arms, in-context and fine-tuned, so the comparison is between
# two ways of teaching the *same* model.
#
# Now the in-context curve on all 99 words, next to what a **perfect copier** would reach: the share of
# queries whose fact is in the prompt at all. That ceiling grows with k and is capped by the context window.

# %%
fit = max_demos(ctok, facts, max(facts, key=lambda f: len(ctok(f[0])["input_ids"]))[0], cwindow)
print(f"at most {fit} of the {len(facts)} facts fit in one {cwindow}-token prompt")
try:
    build_prompt(ctok, facts, facts[0][0], cwindow)
except ContextWindowError as err:
    print("ContextWindowError:", err)
icl_ks = sorted({0, 1, 2, 4, 8, 16, fit})
icl_preds = {k: predict(copier, ctok, [build_prompt(ctok, facts[:k], x, cwindow).text for x, _ in facts],
                        max_new_tokens=4, with_probability=False) for k in icl_ks}
new_icl = {k: accuracy(icl_preds[k], fact_answers) for k in icl_ks}
copied = {k: accuracy(icl_preds[k][:k], fact_answers[:k]) for k in icl_ks if k}  # the queries whose fact is shown
ceiling = {k: coverage(facts[:k], facts) for k in icl_ks}
for k in icl_ks:
    shown = f"; on the {k} shown: {copied[k]:.2f}" if k else ""
    print(f"k = {k:2d} facts in the prompt: accuracy on all {len(facts)} {new_icl[k]:.2f}   perfect copier "
          f"{ceiling[k]:.2f}{shown}")

# %% [markdown]
# In-context learning now works — on the words whose fact is in the prompt the model is nearly always
# right — and the accuracy on all 99 rises with k. But it rises only as fast as the perfect copier's
# line, and it stops where the window does: at most about a third of the facts fit in one prompt. In the
# longest prompts this small model misses some of the facts it is shown, so it ends a little below the
# ceiling; the facts that did not fit stay at guessing.
#
# ### 5. Fine-tuning on the facts
#
# Fine-tune the same model on the first n facts (LoRA, the same 18 passes over its facts for every n, so the
# number of training steps grows with n) and ask every word with a bare prompt. n can exceed what fits in a
# prompt: the training set has no window.

# %%
NEW_EPOCHS = 18
ns = [12, 25, 50, len(facts)]
ft_runs, ft_curve = {}, {}
for n in tqdm(ns, desc="fine-tuning runs"):
    ft_runs[n] = finetune(facts[:n], epochs=NEW_EPOCHS, rank=16, model_name=copier_name)
    preds = predict(ft_runs[n].model, ctok, bare_facts, max_new_tokens=4, with_probability=False)
    ft_curve[n] = accuracy(preds, fact_answers)
    trained = accuracy(preds[:n], fact_answers[:n])
    print(f"n = {n:2d}: accuracy on all {len(facts)} {ft_curve[n]:.2f} (on its own {n} facts {trained:.2f}; "
          f"{ft_runs[n].steps} steps, {ft_runs[n].seconds:.1f} s of training)")

# %%
fig, ax = plt.subplots(1, 2, figsize=(11, 3.8))
means, spread = [icl_means[k] for k in ks], [np.ptp(icl_curve[k]) / 2 for k in ks]
ax[0].errorbar([max(k, 0.5) for k in ks], means, yerr=spread, marker="o", capsize=3, label="ICL (3 draws, min–max)")
ax[0].axhline(known_ft, color="tab:orange", ls="--", label=f"fine-tuned on {len(pool)}, bare prompt")
ax[0].set_xscale("log", base=2)
ax[0].set_xticks([max(k, 0.5) for k in ks], [str(k) for k in ks])
ax[0].set_xlabel("demonstrations in the prompt (k)")
ax[0].set_ylabel("held-out accuracy")
ax[0].set_ylim(-0.03, 1.03)
ax[0].set_title(f"A: known task (country -> language), {profile.base_model}")
ax[0].legend(fontsize=8, loc="lower right")
ax[1].plot(icl_ks, [ceiling[k] for k in icl_ks], ls=":", marker=".", color="grey", label="ICL ceiling: perfect copier")
ax[1].plot(icl_ks, [new_icl[k] for k in icl_ks], marker="o", label="ICL (measured)")
ax[1].plot(ns, [ft_curve[n] for n in ns], marker="o", label="fine-tuned on n, bare prompt")
ax[1].axvspan(fit, len(facts) + 2, color="grey", alpha=0.12, label="beyond the context window")
ax[1].set_xlabel("facts given (k in the prompt, n in training)")
ax[1].set_ylabel(f"accuracy on all {len(facts)} facts")
ax[1].set_ylim(-0.03, 1.03)
ax[1].set_title(f"B: new facts (made-up word -> animal), {copier_name}")
ax[1].legend(fontsize=8, loc="upper left")
fig.tight_layout()

# %% [markdown]
# Both curves rise, and for a while they rise together: k facts in the prompt and n facts in training each
# teach about that many words. Then the prompt runs out of room. Fine-tuning stores the facts in the weights:
# each run answers nearly all of its own n facts, so its accuracy on all 99 keeps growing with n, far past
# the best any prompt of this model could reach, and past even a perfect copier's ceiling at the window.
#
# ## 6. Within one conversation, and in a fresh one
#
# A chat is one growing context: every turn is appended to what came before. Teach words over the first
# turns of a conversation (one fact per turn), then ask them, one word per turn, in a new order; the model's
# own replies stay in the conversation. Then open a **fresh chat** and ask the same words: the facts are gone,
# and so is what they did. Four conversations of 12 words each.

# %%
in_chat, fresh, chat_answers = [], [], []
for c in range(4):
    taught = facts[12 * c:12 * (c + 1)]
    conversation = "".join(f"{x} -> {y}\n" for x, y in taught)  # turns 1-12: the user teaches one word each
    for j in np.random.default_rng(c).permutation(len(taught)):
        x, y = taught[j]
        reply = predict(copier, ctok, [conversation + f"{x} ->"], max_new_tokens=4, with_probability=False)[0]
        in_chat.append(reply)
        chat_answers.append(y)
        conversation += f"{x} -> {reply.text}\n"
    fresh += predict(copier, ctok, [f"{x} ->" for x, _ in taught], max_new_tokens=4, with_probability=False)
chat_acc, fresh_acc = accuracy(in_chat, chat_answers), accuracy(fresh, [y for _, y in facts[:48]])
print(conversation[-150:])
print(f"\nsame conversation: {chat_acc:.2f}   fresh chat, same questions: {fresh_acc:.2f}  ({len(in_chat)} questions)")

# %% [markdown]
# ### 7. A fresh session with the fine-tuned model
#
# Save the adapter trained on all the new facts, start "a new session" (load the base from disk, attach
# the adapter), and ask with bare prompts. The same base in the same new session, without the adapter, is the
# baseline.

# %%
from peft import PeftModel

adapter_dir = tempfile.mkdtemp()
ft_runs[len(facts)].model.save_pretrained(adapter_dir)
new_session_base, _ = ftlab.load_model(copier_name, profile)
persist_base = accuracy(predict(new_session_base, ctok, bare_facts, max_new_tokens=4, with_probability=False),
                        fact_answers)
# PeftModel.from_pretrained attaches the adapter to the model it is given, so it gets its own copy
reloaded = PeftModel.from_pretrained(ftlab.load_model(copier_name, profile)[0], adapter_dir).eval()
persist_ft = accuracy(predict(reloaded, ctok, bare_facts, max_new_tokens=4, with_probability=False), fact_answers)
print(f"new session, bare prompt, all {len(facts)} new facts: fine-tuned adapter {persist_ft:.2f}, "
      f"base {persist_base:.2f}")

# %% [markdown]
# ## 8. The context window, up close
#
# `build_prompt` refused the 99 facts above instead of silently cutting the prompt (which could cut the
# query itself and produce a confident wrong answer). If you do want as many as fit, ask for visible
# truncation: the *oldest* demonstrations are dropped, the query always stays, and the prompt reports
# what it dropped.

# %%
cut = build_prompt(ctok, facts, facts[0][0], cwindow, on_overflow="truncate")
print(f"kept {cut.k} facts, dropped {cut.dropped}; {cut.tokens} of {cwindow} tokens; ends with: {cut.text[-30:]!r}")

# %% [markdown]
# ## 9. Try it yourself
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
# ## 10. Check: what this lesson claims, measured

# %%
best_new_icl = max(new_icl.values())
unshown_at_fit = accuracy(icl_preds[fit][fit:], fact_answers[fit:])  # the facts that did not fit in the prompt
html_table([{"measurement": k, "value": v} for k, v in {
    "A: ICL accuracy, k=0": icl_means[0], f"A: ICL plateau (k={k_plateau})": icl_means[k_plateau],
    "A: fine-tuned, bare prompt": known_ft, "A: crossover (queries)": crossover,
    "A: crossover with a cached block (queries)": crossover_cached,
    "ICL tokens per extra demonstration": float(slope), "ICL tokens linear fit R^2": float(r2),
    **{f"B: own fact last of 8, {name}": copying[name, "last"] for name in dict.fromkeys([profile.base_model, copier_name])},
    **{f"B: ICL, k={k} (all {len(facts)})": new_icl[k] for k in icl_ks},
    f"B: ICL at k={fit}, on the facts shown / not shown": f"{copied[fit]:.2f} / {unshown_at_fit:.2f}",
    f"B: perfect copier at k={fit}": ceiling[fit],
    **{f"B: fine-tuned, n={n}": ft_curve[n] for n in ns},
    "B: same conversation / fresh chat": f"{chat_acc:.2f} / {fresh_acc:.2f}",
    "B: new session, adapter / base": f"{persist_ft:.2f} / {persist_base:.2f}",
}.items()])

# %%
# CHECK
# A: one demonstration recognises the task; more add nothing beyond its plateau
assert icl_means[k_plateau] >= icl_means[0] + 0.3 and k_plateau <= 2, icl_means
assert known_ft >= icl_means[0] + 0.3, (known_ft, icl_means[0])  # so does training, with a bare prompt
assert slope > 1 and r2 > 0.99, (slope, r2)                   # ICL pays its demonstrations on every query
assert 0 < crossover < crossover_cached, (crossover, crossover_cached)
# B: the induction-trained model copies a fact from its prompt; the tiny base does not
assert copying[copier_name, "last"] >= 0.6 and copying[copier_name, "first"] >= 0.6, copying
if copier_name != profile.base_model:
    assert copying[profile.base_model, "last"] <= 0.2, copying
# ICL on new facts: far from solved by one fact, rising with k, and capped by the window
assert new_icl[1] <= 0.6 and copied[16] >= 0.7, (new_icl, copied)
assert new_icl[4] > new_icl[1] and new_icl[16] >= new_icl[4] + 0.05 and new_icl[fit] >= new_icl[16] + 0.05, new_icl
assert unshown_at_fit <= 0.15, unshown_at_fit  # a fact that is not in the prompt is a guess
# fine-tuning learns them, more with more data, beyond what fits in any prompt
assert ft_curve[ns[1]] >= ft_curve[ns[0]] + 0.05 and ft_curve[ns[2]] >= ft_curve[ns[1]] + 0.05 \
    and ft_curve[ns[3]] >= ft_curve[ns[2]] + 0.05, ft_curve  # rises over every step in n
assert ft_curve[len(facts)] >= best_new_icl + 0.15, (ft_curve, best_new_icl)
assert ft_curve[len(facts)] >= ceiling[fit] + 0.05, (ft_curve, ceiling)  # beats even a perfect copier's window
# what lasts: the conversation's facts end with it; the adapter does not
assert chat_acc >= fresh_acc + 0.3, (chat_acc, fresh_acc)
assert persist_ft >= persist_base + 0.3, (persist_ft, persist_base)
print("All checks passed.")

# %% [markdown]
# ## Summary
#
# * On a task the base already knows, in-context learning is **task recognition**: one or two
#   demonstrations reach what a fine-tuning run reaches. It is sensitive to which demonstrations you pick
#   and where they sit, and it pays for them on every query — fine-tuning becomes the cheaper way after a
#   number of queries you can compute (later, if a fixed demonstration block is cached).
# * On **new facts**, in-context learning needs a model that can *copy* from its prompt. The tiny base
#   cannot (it never formed induction heads); its sibling, pre-trained with documents that repeat
#   patterns, can. Its in-context accuracy rises with the number of facts in the prompt, and stops where
#   the context window does.
# * Fine-tuning learns the facts too, more of them with more data, with no window: on all 99 it beats the
#   best prompt of the same model, and even a perfect copier's ceiling.
# * Facts given in a conversation last that conversation; a fine-tuned adapter is there in the next session.
