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
#   *trained* on it. Reading it out of the prompt takes a skill (copying) that one of our two tiny base
#   models has and the other lacks; we use both throughout.

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
import random
import tempfile
import time

import numpy as np
from tqdm.auto import tqdm
import matplotlib.pyplot as plt
from datasets import Dataset
from peft import LoraConfig

import ftlab
from ftlab.display import html_table, say
from ftlab.icl import (MASCOTS, ContextWindowError, accuracy, build_prompt, context_window, coverage, demo_line,
                       max_demos, new_facts, plateau, predict, sample_demos)
from ftlab.training import train_sft
from ftlab.world import World

profile = ftlab.setup()
base, tok = ftlab.load_model(profile.base_model, profile)
# the sibling that can copy from its prompt (section 4 says how it was made); on the gpu profile both are the hub model
copier_name = "tiny-base-induction" if profile.base_model == "tiny-base" else profile.base_model
copier, ctok = ftlab.load_model(copier_name, profile)
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
#
# We run every Part A experiment on **two** models. The tiny base, whose pre-training never rewarded copying
# anything from its prompt (section 4 measures that), and its sibling **tiny-base-induction**, which copies.
# With the tiny base alone, "the answer was not in the prompt, so it came from memory" would hold by
# construction: a model that copies nothing can only answer from memory. The sibling is the control.

# %%
def icl_prompts(tokenizer, k, draw, demos_for=None):
    """One prompt per held-out country: k demonstrations (this draw's, or chosen by demos_for), then the query."""
    return [build_prompt(tokenizer, demos_for(x, i, draw) if demos_for else
                         sample_demos(pool, k, seed=1000 * draw + i, exclude=x), x, window).text
            for i, (x, _) in enumerate(test)]


def icl_accuracies(model, tokenizer, prompt_sets):
    """The accuracy of each set of prompts; all the prompts go through the model in one batched call."""
    preds = predict(model, tokenizer, [p for prompts in prompt_sets for p in prompts], with_probability=False)
    return [accuracy(preds[j * len(test):(j + 1) * len(test)], answers) for j in range(len(prompt_sets))]


ks = [0, 1, 2, 4, 8, 16]
runs = [(k, draw) for k in ks for draw in range(1 if k == 0 else 3)]
models_a = {profile.base_model: (base, tok), copier_name: (copier, ctok)}
curves_a = {}
for name, (model, tokenizer) in models_a.items():
    run_accs = icl_accuracies(model, tokenizer, [icl_prompts(tokenizer, k, draw) for k, draw in runs])
    curves_a[name] = {k: [acc for (k_run, _), acc in zip(runs, run_accs) if k_run == k] for k in ks}
icl_curve = curves_a[profile.base_model]
html_table([{"k": k, **{name: f"{np.mean(c[k]):.2f} ({', '.join(f'{a:.2f}' for a in c[k])})"
                        for name, c in curves_a.items()}} for k in ks])

# %%
example = build_prompt(tok, sample_demos(pool, 4, seed=0, exclude=test[0][0]), test[0][0], window)
print("a 4-shot prompt:\n" + example.text)
icl_means = {k: float(np.mean(a)) for k, a in icl_curve.items()}
copier_means = {k: float(np.mean(a)) for k, a in curves_a[copier_name].items()}
k_plateau = plateau(icl_means, tolerance=0.05)
say(f"Held-out accuracy (mean of the draws) at k = 0, 1, 16: **{profile.base_model}** {icl_means[0]:.2f}, "
    f"{icl_means[1]:.2f}, {icl_means[16]:.2f}; **{copier_name}** {copier_means[0]:.2f}, {copier_means[1]:.2f}, "
    f"{copier_means[16]:.2f}.")

# %% [markdown]
# For both models one demonstration is enough to tell the base *which* list it is in; after that it
# answers from what it learned in pre-training, and more demonstrations add nothing. This is **task
# recognition**: the answer (`Portuguese` for Brazil) was never in the prompt (the query's country is never
# among its demonstrations), and the model that *can* copy gets it just as right.
#
# **Which demonstrations, in which order?** Five variations of a 4-shot prompt, 3 draws each (60 prompts
# per variation and model):
#
# * all four demonstrations of the right task;
# * one demonstration of the *wrong* task (country -> capital) placed **first**, or placed **last**;
# * all four of the wrong task;
# * the right inputs with **shuffled labels** (each country paired with a random language).

# %%
capitals = {f.subject: f.object for f in world.facts_of("capital")}
languages = sorted({y for _, y in pool})


def variation(kind):
    def demos_for(x, i, draw):
        demos = sample_demos(pool, 4, seed=1000 * draw + i, exclude=x)
        wrong = [(c, capitals[c]) for c, _ in demos]
        if kind == "wrong task first":
            return [wrong[0]] + demos[1:]
        if kind == "wrong task last":
            return demos[:3] + [wrong[3]]
        if kind == "all wrong task":
            return wrong
        if kind == "shuffled labels":
            rng = np.random.default_rng(1000 * draw + i)
            return [(c, languages[rng.integers(len(languages))]) for c, _ in demos]
        return demos
    return demos_for


kinds = ["right task", "wrong task first", "wrong task last", "all wrong task", "shuffled labels"]
sensitivity = {}
for name, (model, tokenizer) in models_a.items():
    accs = icl_accuracies(model, tokenizer, [icl_prompts(tokenizer, 4, draw, demos_for=variation(kind))
                                             for kind in kinds for draw in range(3)])
    sensitivity[name] = {kind: float(np.mean(accs[3 * j:3 * j + 3])) for j, kind in enumerate(kinds)}
html_table([{"variation": kind, **{name: sensitivity[name][kind] for name in models_a}} for kind in kinds])

# %%
sens_base, sens_copier = sensitivity[profile.base_model], sensitivity[copier_name]
say(f"A wrong-task demonstration **last** (right before the query): {profile.base_model} "
    f"{sens_base['wrong task last']:.2f}, {copier_name} {sens_copier['wrong task last']:.2f}; placed **first**: "
    f"{sens_base['wrong task first']:.2f} and {sens_copier['wrong task first']:.2f}. Shuffled labels: "
    f"{sens_base['shuffled labels']:.2f} and {sens_copier['shuffled labels']:.2f}.")

# %% [markdown]
# Both models follow the *latest* evidence about the task: a wrong demonstration right before the query
# hurts far more than the same one at the start, and four wrong-task demonstrations switch the task
# entirely. Here the two models differ: the copier is pulled less by a single wrong line at the end. Shuffled
# labels still tell both models the *format* and the kind of answer (a language), and both answer from
# memory, the copier too: the demonstrations showed the task; they did not teach the mapping. (The query's
# country is never among its demonstrations, so there is no line to copy the answer from; what this measures
# is whether the wrong languages in the prompt pull the answer towards them. For the copier they barely do.)
#
# ### 3. Fine-tuning on the same task, and what each costs
#
# Fine-tune the base on the whole pool with LoRA (lesson 3 explains LoRA) and ask with a **bare**
# prompt, `Brazil ->`. The data is in TRL's prompt–completion format, so the loss is on the completion
# only. Two passes over the 78 examples (10 steps of up to 16) are enough here. The runs in this
# lesson are short, so they keep the learning rate constant (`1.5 * profile.learning_rates["lora"]`)
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
print(f"fine-tuned, bare prompt: {known_ft:.2f}   ICL: {icl_means[0]:.2f} at k=0, plateau {icl_means[k_plateau]:.2f} "
      f"from k={k_plateau} on")

# %% [markdown]
# On a task the base already knows, both reach the top of this 20-country test: a demonstration or two does
# what the training run does. Two arms at the ceiling are a tie, not a ranking: this test cannot say which of
# the two is better at the task, only that both are enough. So here the question is only **cost**. Per query,
# ICL processes its demonstrations again every time; the fine-tuned model reads only the bare prompt. We
# measure prompt tokens (from the tokenizer) and wall time per query (one query at a time, median over 10 of
# the held-out countries).

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
html_table([{"method": f"ICL, k={k}", "prompt tokens per query": tokens_icl[k]} for k in ks] +
           [{"method": "fine-tuned (bare prompt)", "prompt tokens per query": tokens_bare}])

# %%
print(f"ICL prompt tokens = {intercept:.1f} + {slope:.2f} * k (a demonstration line costs about {slope:.1f} tokens); "
      f"fine-tuned: {tokens_bare:.1f}")
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
# demonstrations than that buys nothing. This is arithmetic from the measured token counts, not a
# measurement of its own.
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
# First the most favourable case: 7 other facts and the query's **own** fact, then the query. A model
# that can copy — find `Fulu` earlier in the prompt and repeat what followed it — gets this right.
#
# We ask both models. The tiny base from Part A. And its sibling, **tiny-base-induction**: the same
# architecture and the same world text, but its pre-training also had documents that *repeat patterns*:
# random token sequences that come back later in the same document, and lists of made-up `x -> y` pairs
# (a fresh random mapping in each document) whose pairs come back further down, in a new order. The only way
# to predict the second copy is to look back and copy, so pre-training rewards copying. Attention heads that
# do this are called *induction heads* (Olsson et al., 2022): they find the earlier occurrence of the current
# token and predict what followed it. Real text is full of such repeats, which is why hub models copy; the
# tiny base's pre-training lists hold only true facts, which it can answer from memory, so nothing ever
# rewarded copying. (How the sibling was built, stage by stage: `tools/build_induction_base.sh` and
# `docs/icl_induction_experiment.md`.)
#
# We put the own fact at each of the 8 positions in turn (99 prompts per position), so we also see whether
# *where* it sits matters.

# %%
cwindow = min(context_window(ctok, copier), 256)  # the gpu profile's hub model gets the tiny models' 256 too


def own_fact_prompt(tokenizer, i, x, y, position, pairs=facts):
    """7 other pairs with the query's own pair inserted at `position` (0 = first, 7 = right before the query)."""
    others = sample_demos(pairs, 7, seed=i, exclude=x)
    return build_prompt(tokenizer, others[:position] + [(x, y)] + others[position:], x, cwindow).text


def own_fact_accuracy(model, tokenizer, pairs, positions):
    prompts = [own_fact_prompt(tokenizer, i, x, y, p, pairs) for p in positions for i, (x, y) in enumerate(pairs)]
    preds = predict(model, tokenizer, prompts, max_new_tokens=4, with_probability=False)
    m = len(pairs)
    return {p: preds[j * m:(j + 1) * m] for j, p in enumerate(positions)}


positions = list(range(8))
base_own = own_fact_accuracy(base, tok, facts, [0, 7])
copier_own = own_fact_accuracy(copier, ctok, facts, positions)
by_position = {p: accuracy(copier_own[p], fact_answers) for p in positions}
copying = {(profile.base_model, "first"): accuracy(base_own[0], fact_answers),
           (profile.base_model, "last"): accuracy(base_own[7], fact_answers),
           (copier_name, "first"): by_position[0], (copier_name, "last"): by_position[7]}
middle = [by_position[p] for p in positions[:-1]]
fig, ax = plt.subplots(figsize=(6.5, 3.2))
ax.bar([p + 1 for p in positions], [by_position[p] for p in positions], color="tab:blue", label=copier_name)
ax.plot([1, 8], [copying[profile.base_model, "first"], copying[profile.base_model, "last"]], "x", ms=10, mew=3,
        color="tab:red", label=f"{profile.base_model} (first and last only)")
ax.axhline(1 / len(MASCOTS), color="grey", ls=":", label="guessing one of 20 animals")
ax.set_xlabel("position of the query's own fact among the 8 (8 = right before the query)")
ax.set_ylabel(f"accuracy ({len(facts)} queries)")
ax.set_ylim(-0.05, 1.3)
ax.set_yticks(np.linspace(0, 1, 6))
ax.legend(fontsize=8, loc="upper center", ncol=3)
fig.tight_layout()
print("\n" + own_fact_prompt(ctok, 0, *facts[0], 7))

# %%
say(f"**{profile.base_model}**: {copying[profile.base_model, 'first']:.2f} with its own fact first of 8, "
    f"{copying[profile.base_model, 'last']:.2f} with it last (guessing: about {1 / len(MASCOTS):.2f}). "
    f"**{copier_name}**: {min(middle):.2f} to {max(middle):.2f} at positions 1 to 7, "
    f"{by_position[7]:.2f} at position 8, right before the query.")

# %% [markdown]
# The tiny base **cannot** copy: even with the answer one line above the question, it does not repeat it. Its
# sibling copies the answer nearly always, from any of the first seven positions. The one place it does worse
# is the line right before the query: there, the query repeats the line just above it. We measured that
# dip, not its cause; one candidate is the copier's pre-training, whose repeated pairs came back only further
# down the document, never on the next line.
#
# From here on, Part B uses the sibling for both arms, in-context and fine-tuned, so the comparison is between
# two ways of teaching the *same* model.
#
# ### 5. When the prompt contradicts memory
#
# The copier copies made-up words. What if the key is a word it *does* know? Give each of the world's
# countries a random animal (`France -> owl`) and ask in the same 8-line format: the copy says `owl`, memory
# says `Paris` or `French` (the world's pre-training text has `Country -> capital` and `Country -> language`
# lists, in this very format).

# %%
countries = sorted(capitals)
rng = random.Random(0)
country_facts = [(c, rng.choice(MASCOTS)) for c in countries]
known_objects = {}
for f in world.facts:
    known_objects.setdefault(f.subject, set()).add(f.object)
country_own = own_fact_accuracy(copier, ctok, country_facts, [0, 7])
conflict = {}
for p in (0, 7):
    preds = country_own[p]
    conflict[p] = {"prompt": accuracy(preds, [y for _, y in country_facts]),
                   "memory": sum(pr.text in known_objects[x] for pr, (x, _) in zip(preds, country_facts)) / len(preds)}
print(own_fact_prompt(ctok, 1, *country_facts[1], 0), "=>", country_own[0][1].text)
html_table([{"keys": keys, "own fact": where, "answered from the prompt": a, "answered a fact from pre-training": m}
            for where, p in (("first of 8", 0), ("last of 8", 7))
            for keys, a, m in ((f"made-up words ({len(facts)})", by_position[p], 0.0),
                               (f"countries ({len(countries)})", conflict[p]["prompt"], conflict[p]["memory"]))])

# %%
say(f"With countries as keys the copier answers from the prompt on {conflict[0]['prompt']:.2f} of the queries "
    f"(own fact first of 8) and {conflict[7]['prompt']:.2f} (last), against {by_position[0]:.2f} and "
    f"{by_position[7]:.2f} for made-up words; on {conflict[0]['memory']:.2f} and {conflict[7]['memory']:.2f} it "
    f"answers a fact about that country from pre-training instead.")

# %% [markdown]
# **Memory beats the prompt.** The same model that copies a made-up word's animal almost every time follows
# the prompt on few queries when the key is a country it knows: on far more it answers what it memorised (a
# capital, a language), and the rest are neither (made-up words such as `begu`). This is a *knowledge
# conflict*: context that contradicts what the model learned in pre-training is followed less reliably than
# context about something new (it is documented for large models too, e.g. Longpre et al., 2021). A prompt
# that tries to *override* what the model knows is where in-context learning was weakest in this lesson.
# (Made-up words are answered from memory on no query: a word never seen has no memorised answer.)
#
# ### 6. In-context learning on all 99 new facts
#
# Now the in-context curve on all 99 words, next to what a **perfect copier** would reach: the share of
# queries whose fact is in the prompt at all. That ceiling grows with k and is capped by the context window.

# %%
fit = max_demos(ctok, facts, max(facts, key=lambda f: len(ctok(f[0])["input_ids"]))[0], cwindow)
print(f"{copier_name} was trained on {context_window(ctok, copier)} positions: its whole window. "
      f"At most {fit} of the {len(facts)} facts fit in one {cwindow}-token prompt")
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
unshown_at_fit = accuracy(icl_preds[fit][fit:], fact_answers[fit:])  # the facts that did not fit in the prompt
for k in icl_ks:
    shown = f"; on the {k} shown: {copied[k]:.2f}" if k else ""
    print(f"k = {k:2d} facts in the prompt: accuracy on all {len(facts)} {new_icl[k]:.2f}   perfect copier "
          f"{ceiling[k]:.2f}{shown}")
print(f"k = {fit}: on the {len(facts) - fit} facts that did not fit: {unshown_at_fit:.2f}")

# %% [markdown]
# The window here is the model's whole window: the tiny models were pre-trained on 256 positions, so no
# longer prompt is possible (on the `gpu` profile the hub model's 8k window is cut to the same 256, so that
# the window still binds). In-context learning now works: on the words whose fact is in the prompt the model
# is mostly right, and the accuracy on all 99 rises with k, as fast as the perfect copier's line. It stops
# where the window does: about a third of the facts fit in one prompt, and in the longest prompts the model
# misses some of the facts it is shown. A fact that did not fit is a guess.
#
# ### 7. Fine-tuning on the same facts
#
# Fine-tune the same model on the first n facts — for n = 16 and n = 34, exactly the facts that the
# k = 16 and k = 34 prompts showed — and on all 99, which no prompt can hold. LoRA, 18 passes over its facts
# for every n (so the number of steps grows with n); then a bare prompt for every word.
#
# A fine-tuned model answering its own training prompts could have memorised one string. So both arms are
# also asked with a **reworded** query, `The word Fulu ->`, which neither saw: the prompt block still has
# `Fulu -> cat` lines, the training data still `Fulu ->` / ` cat`.

# %%
NEW_EPOCHS = 18
ns = [16, fit, len(facts)]


def reword(x):
    return f"The word {x} ->"


reworded_icl = {k: predict(copier, ctok, ["".join(f"{a} -> {b}\n" for a, b in facts[:k]) + reword(x) for x, _ in facts],
                           max_new_tokens=4, with_probability=False) for k in ns[:2]}
ft_runs, ft_curve, ft_own, ft_reworded = {}, {}, {}, {}
for n in tqdm(ns, desc="fine-tuning runs"):
    ft_runs[n] = finetune(facts[:n], epochs=NEW_EPOCHS, rank=16, model_name=copier_name)
    preds = predict(ft_runs[n].model, ctok, bare_facts + [reword(x) for x, _ in facts[:n]], max_new_tokens=4,
                    with_probability=False)
    ft_curve[n] = accuracy(preds[:len(facts)], fact_answers)
    ft_own[n] = accuracy(preds[:n], fact_answers[:n])
    ft_reworded[n] = accuracy(preds[len(facts):], fact_answers[:n])
    print(f"n = {n:2d}: accuracy on all {len(facts)} {ft_curve[n]:.2f} (on its own {n} facts {ft_own[n]:.2f}, "
          f"reworded {ft_reworded[n]:.2f}; {ft_runs[n].steps} steps, {ft_runs[n].seconds:.1f} s of training)")
icl_reworded = {k: accuracy(reworded_icl[k][:k], fact_answers[:k]) for k in ns[:2]}


def se(p, m):
    """The standard error of an accuracy p measured on m queries (binomial)."""
    return math.sqrt(max(p * (1 - p), 1 / m) / m)


rows = []
for n in ns:
    icl = n in icl_reworded
    rows.append({"facts given": n, "arm": "ICL (in the prompt)" if icl else "ICL: does not fit",
                 "its facts, as given": f"{copied[n]:.2f}" if icl else "-",
                 "its facts, reworded": f"{icl_reworded[n]:.2f}" if icl else "-",
                 f"all {len(facts)}": f"{new_icl[n]:.2f}" if icl else "-"})
    rows.append({"facts given": n, "arm": "fine-tuned (bare prompt)", "its facts, as given": f"{ft_own[n]:.2f}",
                 "its facts, reworded": f"{ft_reworded[n]:.2f}", f"all {len(facts)}": f"{ft_curve[n]:.2f}"})
html_table(rows)

# %%
matched = {n: {"as given": (copied[n], ft_own[n], n), "reworded": (icl_reworded[n], ft_reworded[n], n),
               "all": (new_icl[n], ft_curve[n], len(facts))} for n in ns[:2]}
gaps = {(n, what): (b - a, 2 * math.hypot(se(a, m), se(b, m))) for n, d in matched.items() for what, (a, b, m) in d.items()}


def verdict(n, what):
    gap, noise = gaps[n, what]
    if abs(gap) <= noise:
        return f"a gap of {gap:+.2f}, inside the noise (±{noise:.2f})"
    return f"fine-tuning {'ahead' if gap > 0 else 'behind'} by {abs(gap):.2f} (noise ±{noise:.2f})"


say("\n".join(f"* **{n} facts**: on all {len(facts)}, {verdict(n, 'all')}; on its facts as given, "
              f"{verdict(n, 'as given')}; reworded, {verdict(n, 'reworded')}." for n in ns[:2]) +
    f"\n* **all {len(facts)} facts**, only fine-tuning: {ft_curve[len(facts)]:.2f} with the bare prompt, "
    f"{ft_reworded[len(facts)]:.2f} reworded; the best prompt reached {max(new_icl.values()):.2f}, "
    f"a perfect copier {ceiling[fit]:.2f}.\n* **reworded vs as given, within each arm**: the prompt "
    f"{', '.join(f'{icl_reworded[n]:.2f} vs {copied[n]:.2f}' for n in ns[:2])} (k = {ns[0]}, {ns[1]}); fine-tuned "
    f"{', '.join(f'{ft_reworded[n]:.2f} vs {ft_own[n]:.2f}' for n in ns)} (n = {', '.join(map(str, ns))}).\n\n"
    "(noise: two standard errors of the difference of two accuracies, each binomial on its number of queries)")

# %% [markdown]
# Read the table column by column.
#
# * **All 99.** At matched amounts the two arms are level, inside the noise: each answers about the facts it
#   was given, and a fact it was not given is a guess either way. So the matched rows do **not** show
#   fine-tuning beating the prompt. What fine-tuning has is **room**: past the window only it can take in
#   more facts, and trained on all 99 it answers nearly all of them, past even a perfect copier's ceiling.
# * **Its facts, as given.** The fine-tuned model answers the facts it trained on; the prompt misses some of
#   its facts when it is long (at 34 facts the gap is outside the noise, at 16 inside).
# * **Reworded.** The copier answers the reworded question as well as the original: it only needs the word
#   to find its line. The fine-tuned model loses a large part of its facts: it learned to continue the string
#   `Fulu ->`, not a fact it can be asked about in any wording. The drop *within* fine-tuning is far outside
#   the noise (all 99 facts); the gap *between* the arms at matched n is stated with its noise above. Training
#   on several wordings of each fact is the known remedy (Allen-Zhu & Li, 2023); we did not run it here.

# %%
fig, ax = plt.subplots(1, 2, figsize=(11, 3.8))
means, spread = [icl_means[k] for k in ks], [np.ptp(icl_curve[k]) / 2 for k in ks]
ax[0].errorbar([max(k, 0.5) for k in ks], means, yerr=spread, marker="o", capsize=3,
               label=f"ICL, {profile.base_model} (3 draws, min–max)")
ax[0].plot([max(k, 0.5) for k in ks], [copier_means[k] for k in ks], marker="x", ls=":", color="tab:green",
           label=f"ICL, {copier_name} (mean)")
ax[0].axhline(known_ft, color="tab:orange", ls="--", label=f"fine-tuned on {len(pool)}, bare prompt")
ax[0].set_xscale("log", base=2)
ax[0].set_xticks([max(k, 0.5) for k in ks], [str(k) for k in ks])
ax[0].set_xlabel("demonstrations in the prompt (k)")
ax[0].set_ylabel("held-out accuracy")
ax[0].set_ylim(-0.03, 1.03)
ax[0].set_title("A: known task (country -> language)")
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
# The matched comparison as a picture: each pair of bars is the same facts, in the prompt or trained on;
# the whiskers are one standard error.

# %%
groups = [(n, what) for n in ns for what in ("as given", "reworded")]
icl_bars = [(copied[n] if what == "as given" else icl_reworded[n]) if n in icl_reworded else np.nan for n, what in groups]
ft_bars = [ft_own[n] if what == "as given" else ft_reworded[n] for n, what in groups]
x = np.arange(len(groups))
fig, ax = plt.subplots(figsize=(8, 3.4))
ax.bar(x - 0.2, icl_bars, 0.4, yerr=[se(v, n) if v == v else 0 for v, (n, _) in zip(icl_bars, groups)], capsize=3,
       label="in the prompt (ICL)")
ax.bar(x + 0.2, ft_bars, 0.4, yerr=[se(v, n) for v, (n, _) in zip(ft_bars, groups)], capsize=3,
       label="fine-tuned (bare prompt)")
ax.set_xticks(x, [f"{n} facts\n{what}" for n, what in groups])
ax.set_ylabel("accuracy on the facts given")
ax.set_ylim(0, 1.1)
ax.set_title(f"the same facts, asked as given (Fulu ->) and reworded ({reword('Fulu')})")
ax.text(x[-2] - 0.2, 0.05, "does not fit", rotation=90, ha="center", fontsize=8)
ax.legend(fontsize=8, loc="lower left")
fig.tight_layout()

# %% [markdown]
# ## 8. Within one conversation, and in a fresh one
#
# A chat is one growing context: every turn is appended to what came before, through the model's **chat
# template** (`tokenizer.apply_chat_template`, the same `<|im_start|>` format as lessons 1-2). The user teaches
# one word per turn and the assistant repeats it back; then the user asks each word, one per turn, in a new
# order, and the assistant's reply is started for it (`Fulu ->`, continued with `continue_final_message=True`,
# the way an app pre-fills a reply). The model's own answers stay in the conversation. A chat template costs
# tokens (measured below), so a conversation of 4 taught words and 4 questions is what fits in the window.
# Twelve conversations, 48 questions; then the same 48 questions in a **fresh chat**.

# %%
def chat_prompt(messages, started):
    """The conversation through the chat template, with the assistant's reply started as `started`."""
    return ctok.apply_chat_template(messages + [{"role": "assistant", "content": started}], tokenize=False,
                                    continue_final_message=True)


chats = [facts[4 * c:4 * (c + 1)] for c in range(12)]
histories = [[m for x, y in taught for m in ({"role": "user", "content": f"{x} -> {y}"},
                                             {"role": "assistant", "content": f"{x} -> {y}"})] for taught in chats]
orders = [np.random.default_rng(c).permutation(len(taught)) for c, taught in enumerate(chats)]
in_chat, chat_answers = [], []
for turn in range(4):  # turn t of every conversation in one batch
    asked = [taught[order[turn]] for taught, order in zip(chats, orders)]
    prompts = [chat_prompt(history + [{"role": "user", "content": f"{x}?"}], f"{x} ->")
               for history, (x, _) in zip(histories, asked)]
    replies = predict(copier, ctok, prompts, max_new_tokens=4, with_probability=False)
    for history, (x, y), reply in zip(histories, asked, replies):
        history += [{"role": "user", "content": f"{x}?"}, {"role": "assistant", "content": f"{x} -> {reply.text}"}]
        in_chat.append(reply)
        chat_answers.append(y)
taught_48 = [f for taught in chats for f in taught]
fresh = predict(copier, ctok, [chat_prompt([{"role": "user", "content": f"{x}?"}], f"{x} ->") for x, _ in taught_48],
                max_new_tokens=4, with_probability=False)
chat_acc, fresh_acc = accuracy(in_chat, chat_answers), accuracy(fresh, [y for _, y in taught_48])
last = ctok.apply_chat_template(histories[-1], tokenize=False)
print(last[-230:])
per_word = len(ctok(ctok.apply_chat_template(histories[0][:2], tokenize=False))["input_ids"])  # a user turn and its echo
print(f"\nthe last conversation: {len(ctok(last)['input_ids'])} tokens of {cwindow}; one taught word costs {per_word} "
      f"tokens through the chat template, {len(ctok(demo_line(*facts[0]))['input_ids'])} as a plain line")
say(f"Same conversation: **{chat_acc:.2f}** of the {len(in_chat)} questions; a fresh chat, same questions: "
    f"{fresh_acc:.2f}.")

# %% [markdown]
# Facts given in a conversation serve that conversation. A fresh chat starts from the weights, which never
# saw these words, so there the answers are guesses (that zero is what "not in the weights" means, not a
# finding).
#
# ### 9. A fresh session with the fine-tuned model
#
# What fine-tuning stored lives in the adapter. Save the adapter trained on all the new facts, start "a new
# session" (load the base from disk, attach the adapter), and ask with bare prompts. This is how you ship a
# fine-tune; the numbers just confirm the file holds what the training learned.

# %%
from peft import PeftModel

adapter_dir = tempfile.mkdtemp()
ft_runs[len(facts)].model.save_pretrained(adapter_dir)
# PeftModel.from_pretrained attaches the adapter to the model it is given: a freshly loaded base
reloaded = PeftModel.from_pretrained(ftlab.load_model(copier_name, profile)[0], adapter_dir).eval()
persist_ft = accuracy(predict(reloaded, ctok, bare_facts, max_new_tokens=4, with_probability=False), fact_answers)
print(f"new session, bare prompt, all {len(facts)} new facts: reloaded adapter {persist_ft:.2f} "
      f"(the trained model before saving: {ft_curve[len(facts)]:.2f})")

# %% [markdown]
# ## 10. The context window, up close
#
# `build_prompt` refused the 99 facts above instead of silently cutting the prompt (which could cut the
# query itself and produce a confident wrong answer). If you do want as many as fit, ask for visible
# truncation: the *oldest* demonstrations are dropped, the query always stays, and the prompt reports
# what it dropped.

# %%
cut = build_prompt(ctok, facts, facts[0][0], cwindow, on_overflow="truncate")
print(f"kept {cut.k} facts, dropped {cut.dropped}; {cut.tokens} of {cwindow} tokens; ends with: {cut.text[-30:]!r}")

# %% [markdown]
# ## 11. Try it yourself
#
# Choose the task — the known one on the tiny base, or the new facts on the copier — then k and a draw (or pick
# demonstrations by hand: try ones from the wrong task, or too many), tick whether the query's own pair goes in
# the prompt, choose a query, and see the prompt, the prediction and its probability.

# %%
from ftlab.widgets import ICLExplorer

explorer = ICLExplorer(base, tok, pool, test, tasks={f"new facts ({copier_name})": (copier, ctok, facts, facts)})
explorer

# %%
explorer.k.value = 2
explorer.button.click()
explorer.run()

# %% [markdown]
# ## 12. Check: what this lesson claims, measured

# %%
html_table([{"measurement": k, "value": v} for k, v in {
    "A: ICL k=0 / plateau, tiny base": f"{icl_means[0]:.2f} / {icl_means[k_plateau]:.2f} (k={k_plateau})",
    "A: ICL k=0 / k=1, copier": f"{copier_means[0]:.2f} / {copier_means[1]:.2f}",
    "A: wrong task first / last, tiny base": f"{sens_base['wrong task first']:.2f} / {sens_base['wrong task last']:.2f}",
    "A: wrong task first / last, copier": f"{sens_copier['wrong task first']:.2f} / {sens_copier['wrong task last']:.2f}",
    "A: shuffled labels, tiny base / copier": f"{sens_base['shuffled labels']:.2f} / {sens_copier['shuffled labels']:.2f}",
    "A: fine-tuned, bare prompt": known_ft, "A: crossover (queries)": crossover,
    "A: crossover with a cached block (queries)": crossover_cached,
    **{f"B: own fact first / last of 8, {name}": f"{copying[name, 'first']:.2f} / {copying[name, 'last']:.2f}"
       for name in dict.fromkeys([profile.base_model, copier_name])},
    "B: copier, own fact at positions 1-7 (min)": min(middle),
    "B: country keys, from the prompt / from memory (own fact first)":
        f"{conflict[0]['prompt']:.2f} / {conflict[0]['memory']:.2f}",
    **{f"B: ICL, k={k} (all {len(facts)})": new_icl[k] for k in icl_ks},
    f"B: ICL at k={fit}, on the facts shown / not shown": f"{copied[fit]:.2f} / {unshown_at_fit:.2f}",
    f"B: perfect copier at k={fit}": ceiling[fit],
    **{f"B: fine-tuned, n={n}: all / own / reworded": f"{ft_curve[n]:.2f} / {ft_own[n]:.2f} / {ft_reworded[n]:.2f}"
       for n in ns},
    **{f"B: ICL, k={n}: reworded": icl_reworded[n] for n in ns[:2]},
    "B: same conversation / fresh chat": f"{chat_acc:.2f} / {fresh_acc:.2f}",
    "B: new session, reloaded adapter": persist_ft,
}.items()])

# %%
# CHECK
# A: one demonstration recognises the task, for the model that cannot copy and for the one that can
assert icl_means[k_plateau] >= icl_means[0] + 0.3 and k_plateau <= 2, icl_means
assert copier_means[1] >= copier_means[0] + 0.3 and copier_means[16] >= copier_means[1] - 0.1, copier_means
assert known_ft >= icl_means[0] + 0.3, (known_ft, icl_means[0])  # so does training, with a bare prompt
# the latest evidence wins: a wrong line last hurts more than first; the copier is pulled less by it
for s in (sens_base, sens_copier):
    assert s["wrong task first"] >= s["wrong task last"] + 0.3 and s["all wrong task"] <= 0.2, sensitivity
    assert s["shuffled labels"] >= s["right task"] - 0.1, sensitivity  # shuffled labels: answered from memory
if copier_name != profile.base_model:  # on the gpu profile both are the same hub model
    assert sens_copier["wrong task last"] >= sens_base["wrong task last"] + 0.2, sensitivity
# B: the induction-trained model copies a fact from its prompt; the tiny base does not
assert min(middle) >= 0.8, by_position
if copier_name != profile.base_model:
    assert max(copying[profile.base_model, w] for w in ("first", "last")) <= 0.2, copying
    assert by_position[7] <= min(middle) - 0.08, by_position  # the dip right before the query
# memory beats the prompt when the key is a country
assert by_position[0] >= conflict[0]["prompt"] + 0.5 and conflict[0]["memory"] >= conflict[0]["prompt"] + 0.2, conflict
# ICL on new facts: copies what is shown, guesses the rest; rises with k
assert copied[fit] >= unshown_at_fit + 0.5, (copied, unshown_at_fit)
assert new_icl[4] > new_icl[1] and new_icl[16] >= new_icl[4] + 0.05 and new_icl[fit] >= new_icl[16] + 0.05, new_icl
# fine-tuning learns its facts (as given), more with more data; the long prompt misses some of its facts
assert min(ft_own.values()) >= 0.9, ft_own
assert gaps[fit, "as given"][0] > gaps[fit, "as given"][1], gaps
# reworded: the prompt's copy does not care about the wording; what fine-tuning learned does
assert all(icl_reworded[n] >= copied[n] - 0.1 for n in ns[:2]), (icl_reworded, copied)
assert ft_reworded[len(facts)] <= ft_own[len(facts)] - 0.3, (ft_reworded, ft_own)
assert ft_curve[ns[1]] >= ft_curve[ns[0]] + 0.05 and ft_curve[ns[2]] >= ft_curve[ns[1]] + 0.3, ft_curve
# matched facts: level on all 99 (inside the noise); past the window only fine-tuning takes more
for n in ns[:2]:
    assert abs(gaps[n, "all"][0]) <= gaps[n, "all"][1], gaps
assert ft_curve[len(facts)] >= max(new_icl.values()) + 0.15, (ft_curve, new_icl)
assert ft_curve[len(facts)] >= ceiling[fit] + 0.05, (ft_curve, ceiling)  # beats even a perfect copier's window
# a conversation's facts serve that conversation (through the chat template)
assert chat_acc >= 0.5, chat_acc
print("All checks passed.")

# %% [markdown]
# ## Summary
#
# * On a task the base already knows, in-context learning is **task recognition**: one or two
#   demonstrations reach what a fine-tuning run reaches, for a model that cannot copy and for one that can.
#   It is sensitive to which demonstrations you pick and where they sit, and it pays for them on every
#   query — fine-tuning becomes the cheaper way after a number of queries you can compute (later, if a fixed
#   demonstration block is cached).
# * On **new facts**, in-context learning needs a model that can *copy* from its prompt. The tiny base
#   cannot; its sibling, pre-trained with documents that repeat patterns, can, from any position (a little
#   less from the line right before the query). It copies made-up words, but when the key is a country it
#   knows, memory mostly beats the prompt.
# * Given the **same facts**, the prompt and a fine-tune answer about as many of the 99 (inside the noise);
#   the fine-tune is more reliable on a long prompt's facts, but it learned the wording it was trained on:
#   asked another way, it loses a large part of them, the prompt none. Fine-tuning's real advantage here is
#   room: it has no window, so trained on all 99 it answers nearly all of them.
# * Facts given in a conversation last that conversation; a fine-tuned adapter is there in the next session.
