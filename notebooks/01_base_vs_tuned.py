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
# # Lesson 1 — Base model vs tuned model
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/ftlab-course/ftlab/blob/main/notebooks/01_base_vs_tuned.ipynb)
#
# **Goal.** See, with measured numbers, what fine-tuning changes. We ask a *base* model (trained
# only to predict the next token of ordinary text) and a *tuned* chat model (the same base after
# supervised fine-tuning on conversations) the same questions.
#
# **The idea.** Pre-training puts knowledge in the weights; fine-tuning teaches a *format*: what a
# question looks like, where the answer goes, and when to stop. The base model knows the facts but
# does not chat; the tuned model chats, and answers even about facts it never saw during
# fine-tuning — because it takes the knowledge from pre-training.
#
# On a CPU this lesson uses ftlab's bundled tiny models (2.2M parameters, pre-trained on a generated
# world of real facts); on a GPU it uses SmolLM2-135M and SmolLM2-135M-Instruct. The cells are the same.

# %%
# Set-up for Colab: installs ftlab and TRL next to Colab's own torch, transformers and
# ipywidgets (nothing to restart). Anywhere else this cell does nothing: `make lab` installed it all.
import sys

if "google.colab" in sys.modules:
    import subprocess

    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet",
                    "ftlab @ git+https://github.com/ftlab-course/ftlab@main"], check=True)

# %%
import ftlab
from ftlab import plots
from ftlab.display import html_table
from ftlab.evaluation import evaluate
from ftlab.generation import answer_logprob, chat_prompt, generate, next_token_probs
from ftlab.models import count_parameters
from ftlab.world import RELATIONS, World, render

profile = ftlab.setup()
base, base_tok = ftlab.load_model(profile.base_model, profile)
chat, chat_tok = ftlab.load_model(profile.chat_model, profile)
world = World(seed=0)
print(f"base: {profile.base_model}, {count_parameters(base):,} parameters")
print(f"chat: {profile.chat_model}, {count_parameters(chat):,} parameters (same architecture, tuned weights)")

# %% [markdown]
# ## 1. Same prompt, two models
#
# The base model gets the question as plain text. The chat model gets it wrapped in its **chat
# template**, the exact format it was fine-tuned on (lesson 2 takes it apart). Both decode greedily
# (always the most likely next token) for at most 40 new tokens.

# %%
questions = ["What is the capital of France?", "What sound does a cow make?", "What is the opposite of hot?",
             "Which language is spoken in Brazil?"]
base_out = generate(base, base_tok, questions, max_new_tokens=40)
chat_out = generate(chat, chat_tok, [chat_prompt(chat_tok, q) for q in questions], max_new_tokens=40)
html_table([{"question": q, "base (plain text)": b.text, "base stopped?": b.stopped,
             "chat (template)": c.text, "chat stopped?": c.stopped}
            for q, b, c in zip(questions, base_out, chat_out)])

# %% [markdown]
# The base model treats the question as the start of a document and keeps writing: often another
# question, as on the quiz pages it read during pre-training. It never stops on its own. The chat
# model writes one answer and then emits its end-of-turn token. Here is what the chat model actually
# sees — the template adds role markers and special tokens around the question:

# %%
print(chat_prompt(chat_tok, questions[0]))

# %% [markdown]
# ## 2. Look inside: next-token probabilities
#
# Generation hides the model's uncertainty. Let us look at the probability distribution over the
# next token, for the same two prompts given to both models: the fact as plain text, and the
# question in the chat format.

# %%
plain = "The capital of France is"
templated = chat_prompt(chat_tok, "What is the capital of France?")
for text, title in [(plain, "plain text: 'The capital of France is'"), (templated, "chat format, question about France")]:
    fig = plots.next_token_bars({"base": next_token_probs(base, base_tok, text, k=8),
                                 "chat": next_token_probs(chat, chat_tok, text, k=8)}, title=title)

# %% [markdown]
# Both models put their weight on ` Paris` after the plain sentence: the fact is in the base's
# weights. In the chat format the base ignores the special tokens it never saw and reacts to what the
# text looks like — a question on a quiz page — so it wants to write `Answer`, then the next question.
# The chat model starts its reply.
#
# We can measure this over many facts: the **log-probability** each model assigns to a correct
# answer, in each format. Closer to 0 means more likely. We use the facts that were *held out* of
# every fine-tuning set, so the chat model cannot have memorised them during tuning.

# %%
import numpy as np

facts = [f for f in world.facts if f.relation == "capital" and ftlab.world.is_heldout(f)][:20]
rows = []
for f in facts:
    plain_prompt, plain_answer = render("The capital of {s} is", f), " " + f.object
    q = render(RELATIONS["capital"].questions[0], f)
    chat_answer = render(RELATIONS["capital"].answer, f)
    rows.append({
        "base, plain": answer_logprob(base, base_tok, plain_prompt, plain_answer),
        "chat, plain": answer_logprob(chat, chat_tok, plain_prompt, plain_answer),
        "base, chat format": answer_logprob(base, base_tok, chat_prompt(base_tok, q), chat_answer),
        "chat, chat format": answer_logprob(chat, chat_tok, chat_prompt(chat_tok, q), chat_answer),
    })
mean_logprob = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
for k, v in mean_logprob.items():
    print(f"{k:>18}: mean log p(answer) = {v:7.2f}")
fig = plots.bars({k: -v for k, v in mean_logprob.items()}, title="surprise at the correct answer (lower is better)",
                 ylabel="- log p(answer)", ylim=None)

# %% [markdown]
# Read the four numbers as two stories:
#
# * **plain text** — the base assigns the capital a high probability: it *knows* the fact.
# * **chat format** — the base finds the whole answer sentence wildly unlikely, the chat model finds
#   it likely: fine-tuning taught the *format*, and the fact comes along from pre-training.
#
# Notice also that the chat model became a little *less* sure of the plain-text sentence than the
# base: tuning moved the weights, and some of the old behaviour moved with them. Lesson 3 measures
# this forgetting, and how LoRA limits it.

# %% [markdown]
# ## 3. Decoding: greedy, temperature, top-p
#
# A model gives probabilities; *decoding* turns them into text.
#
# * **greedy**: always take the most likely token — deterministic.
# * **temperature** T: sample from `softmax(logits / T)`. T < 1 sharpens the distribution, T > 1 flattens it.
# * **top-p** (nucleus): sample only among the most likely tokens whose probabilities add up to p.
#
# Five samples per setting, from both models:

# %%
settings = {"greedy": dict(), "T=0.7": dict(do_sample=True, temperature=0.7),
            "T=1.5": dict(do_sample=True, temperature=1.5), "T=1.5, top-p=0.8": dict(do_sample=True, temperature=1.5, top_p=0.8)}
q = "What is the capital of Japan?"
table = []
for name, kw in settings.items():
    b = generate(base, base_tok, [q] * 5, max_new_tokens=12, seed=0, **kw)
    c = generate(chat, chat_tok, [chat_prompt(chat_tok, q)] * 5, max_new_tokens=20, seed=0, **kw)
    table.append({"decoding": name, "base samples": "\n".join(g.text.strip() for g in b),
                  "chat samples": "\n".join(g.text for g in c)})
html_table(table)

# %% [markdown]
# How much does decoding cost in accuracy? We score the chat model on the held-out chat questions
# with each setting (a reply counts only if it has the right answer *and* ends its turn).

# %%
from ftlab.evaluation import score_chat

qa = world.qa_eval()
decoding_accuracy = {}
for name, kw in settings.items():
    rows = score_chat(chat, chat_tok, list(qa["question"]), list(qa["answer"]), seed=0, **kw)
    decoding_accuracy[name] = float(np.mean([r["correct"] for r in rows]))
print(decoding_accuracy)
fig = plots.bars(decoding_accuracy, title="chat model accuracy by decoding setting", ylabel="accuracy")

# %% [markdown]
# Sampling at high temperature lets unlikely tokens through, and accuracy drops; top-p cuts the
# long tail of unlikely tokens and wins back most of it. For factual answers, greedy or low
# temperature is the safe choice; sampling matters when you want variety (and in lesson 4, where
# reinforcement learning needs several different answers to the same prompt).

# %% [markdown]
# ## 4. Try it yourself
#
# Type a prompt, choose a decoding setting, press **Generate**. The chat model's column shows the
# templated prompt it really receives (grey). The cell below also drives the widget from Python,
# so the notebook shows a result even where widgets cannot render.

# %%
from ftlab.widgets import CompareModels

compare = CompareModels({"base": (base, base_tok, False), "chat": (chat, chat_tok, True)},
                        prompt="What is the young of a cat called?")
compare

# %%
compare.prompt.value = "What colour is the banana?"
compare.decoding.value = "greedy"
compare.button.click()
compare.run()

# %% [markdown]
# ## 5. Check: what this lesson claims, measured
#
# Three bundled evaluations (also available as `ftlab eval MODEL --task TASK`):
#
# * `qa`: chat questions about facts, in a question form no fine-tuning example used, most about
#   facts held out of all fine-tuning. Correct = right answer **and** the turn ended.
# * `facts`: the same facts as plain-text completions, in a sentence form the pre-training corpus
#   never used for that fact.

# %%
chat_qa = evaluate(chat, chat_tok, "qa", name="chat")
base_qa = evaluate(base, base_tok, "qa", name="base")
base_facts = evaluate(base, base_tok, "facts", name="base")
html_table([r.summary() for r in (chat_qa, base_qa, base_facts)],
           columns=["model", "task", "accuracy", "n", "accuracy_unseen_facts", "ended_turn"])

# %%
# CHECK: the tuned model chats, the base does not, and the base knows the facts as plain text.
assert chat_qa.accuracy >= 0.85, chat_qa.summary()
assert base_qa.accuracy <= 0.20, base_qa.summary()
assert base_facts.accuracy >= 0.80, base_facts.summary()
# the tuned model answers from pre-trained knowledge: facts absent from every fine-tuning example
assert chat_qa.metrics["accuracy_unseen_facts"] >= 0.75, chat_qa.summary()
# the chat format is what fine-tuning added: the chat model finds the answer sentence far more likely
assert mean_logprob["chat, chat format"] > mean_logprob["base, chat format"] + 5
print("All checks passed.")

# %% [markdown]
# ## Summary
#
# * A base model continues documents; it does not know that a question wants one answer and a stop.
# * Supervised fine-tuning on conversations teaches the format — template, answer, end-of-turn — and
#   the tuned model applies it to facts it only ever saw in pre-training.
# * Next-token probabilities show both: the fact is likely in plain text for the base; the answer
#   sentence is likely in the chat format only for the tuned model.
# * Decoding is a choice on top of the model: greedy for facts, temperature/top-p for variety.
#
# **Next:** lesson 2 opens the chat template and builds the fine-tuning data by hand.
