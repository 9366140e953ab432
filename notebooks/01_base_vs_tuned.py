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
# **The idea.** Pre-training puts knowledge in the weights; fine-tuning mostly teaches a *format*:
# what a question looks like, where the answer goes, and when to stop. The base model knows the facts
# but does not chat; the tuned model chats, and answers even about facts it never saw during
# fine-tuning — it takes that knowledge from pre-training. Fine-tuning is not *only* format, though:
# section 5 measures that the tuned model answers the facts it was tuned on more reliably than the
# facts held out of tuning, so it also added some knowledge of what it was tuned on.
#
# On a CPU this lesson uses ftlab's bundled tiny models (pre-trained on a generated world of real
# facts); on a GPU it uses SmolLM2-135M and SmolLM2-135M-Instruct. The cells are the same.

# %%
# Set-up for Colab: installs ftlab and TRL next to Colab's own torch, transformers and
# ipywidgets (nothing to restart). Anywhere else this cell does nothing: `make lab` installed it all.
import sys

if "google.colab" in sys.modules:
    import subprocess

    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet",
                    "ftlab @ git+https://github.com/ftlab-course/ftlab@main"], check=True)

# %%
from IPython.display import display

import ftlab
from ftlab import plots
from ftlab.display import html_table, say
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
say(f"Both models have {count_parameters(base) / 1e6:.1f}M parameters: one architecture, two sets of weights.")

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
# question, as on the quiz pages it read during pre-training, and it seldom stops on its own. The chat
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
# We can measure this over many facts with the **surprise** a model shows at a piece of text:
# −log p, in nats (0 = certain; each extra nat makes the text e times less likely, e being Euler's number). A chat reply
# such as `The capital is Lima.<|im_end|>` has three parts, and we score each apart:
#
# * the **fact**: the tokens of ` Lima` only, after `The capital of Peru is` (plain text) or after the
#   reply's opening words (chat format);
# * the **house phrasing**: the reply's opening words `The capital is`, the tuned model's own style;
# * the **end of turn**: `<|im_end|>` after the reply.
#
# We use capitals that were *held out* of every fine-tuning set, so the chat model cannot have
# memorised them during tuning. Besides the surprise we note, for the fact, whether its first token is
# the model's **top token** (the one greedy decoding would pick).

# %%
import numpy as np

from ftlab.generation import end_of_turn_id

facts = [f for f in world.facts if f.relation == "capital" and ftlab.world.is_heldout(f)][:20]


def prompts_for(tok, f):
    """The prompt before the fact, in plain text and in the chat format (after the reply's opening words)."""
    prompt = chat_prompt(tok, render(RELATIONS["capital"].questions[0], f))
    reply = render(RELATIONS["capital"].answer, f)  # e.g. "The capital is Lima."
    opening = reply[:reply.index(f.object)].rstrip()  # "The capital is"
    return {"fact, plain text": render("The capital of {s} is", f), "fact, chat format": prompt + opening}


def surprise(model, tok, f):
    """-log p of each part of the chat reply about fact ``f`` (nats)."""
    prompt = chat_prompt(tok, render(RELATIONS["capital"].questions[0], f))
    reply = render(RELATIONS["capital"].answer, f)
    before = prompts_for(tok, f)
    end = tok.decode([end_of_turn_id(tok)])
    return {"fact, plain text": -answer_logprob(model, tok, before["fact, plain text"], " " + f.object),
            "fact, chat format": -answer_logprob(model, tok, before["fact, chat format"], " " + f.object),
            "house phrasing": -answer_logprob(model, tok, prompt, reply[:reply.index(f.object)].rstrip()),
            "end of turn": -answer_logprob(model, tok, prompt + reply, end)}


def fact_is_top(model, tok, f):
    """Is the fact's first token the single most likely next token (greedy's pick)? Per prompt."""
    first = tok(" " + f.object, add_special_tokens=False)["input_ids"][0]
    return {part: next_token_probs(model, tok, text, k=1)[0][0] == tok.decode([first])
            for part, text in prompts_for(tok, f).items()}


mean_surprise, top_rate = {}, {}
for name, m, t in [("base", base, base_tok), ("chat", chat, chat_tok)]:
    per_fact = [surprise(m, t, f) for f in facts]
    mean_surprise[name] = {part: float(np.mean([r[part] for r in per_fact])) for part in per_fact[0]}
    tops = [fact_is_top(m, t, f) for f in facts]
    top_rate[name] = {part: float(np.mean([r[part] for r in tops])) for part in tops[0]}
html_table([{"part of the reply": part, "base: surprise (nats)": round(mean_surprise["base"][part], 2),
             "chat: surprise (nats)": round(mean_surprise["chat"][part], 2),
             "base: p": round(float(np.exp(-mean_surprise["base"][part])), 3),
             "chat: p": round(float(np.exp(-mean_surprise["chat"][part])), 3),
             "base: top token": top_rate["base"].get(part, "–"), "chat: top token": top_rate["chat"].get(part, "–")}
            for part in mean_surprise["base"]])

# %%
fig = plots.grouped_bars(mean_surprise, title="surprise at each part of the correct reply, 20 held-out capitals",
                         xlabel="part of the reply", ylabel="surprise, −log p (nats; lower = more expected)")

# %% [markdown]
# Read the table row by row (p = e^−surprise is the probability of that part for a typical fact;
# "top token" is the share of the capitals whose first token is the single most likely next token):

# %%
S, P, T = mean_surprise, {k: {p: float(np.exp(-v)) for p, v in d.items()} for k, d in mean_surprise.items()}, top_rate
say(f"""* **fact, plain text** — the base is almost certain of the capital (p = {P['base']['fact, plain text']:.2f}): it
  *knows* the fact from pre-training. The chat model is less sure of the same plain sentence
  (p = {P['chat']['fact, plain text']:.2f}, {S['chat']['fact, plain text'] - S['base']['fact, plain text']:.1f} nats more
  surprise): tuning moved the weights, and some of the old behaviour moved with them. Greedy decoding
  partly hides this: the capital is still the chat model's top token for {T['chat']['fact, plain text']:.0%} of
  the capitals (the base's for {T['base']['fact, plain text']:.0%}). Lesson 3 measures this *forgetting*, and how
  LoRA limits it.
* **fact, chat format** — inside the chat template, even after the reply's opening words, the base
  no longer finds the capital ({S['base']['fact, chat format']:.1f} nats of surprise, p = {P['base']['fact, chat format']:.1e},
  top token for {T['base']['fact, chat format']:.0%}): the special tokens and the template are text it never
  saw, and its knowledge does not reach through them. The chat model names it
  (p = {P['chat']['fact, chat format']:.2f}, top token for {T['chat']['fact, chat format']:.0%} of the capitals).
* **house phrasing** and **end of turn** — the widest gaps: {S['base']['house phrasing']:.1f} and
  {S['base']['end of turn']:.1f} nats for the base, {S['chat']['house phrasing']:.2f} and {S['chat']['end of turn']:.2f}
  for the chat model. Fine-tuning taught the *format* — how a reply starts and that it stops — and made
  the knowledge from pre-training usable inside it; it did not teach these capitals (they were held out).""")

# %% [markdown]
# (Summed over the whole reply, as one might do first, the surprise would be dominated by the house
# phrasing, and would say little about whether a model knows the fact.)

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
print({k: round(v, 3) for k, v in decoding_accuracy.items()})
fig = plots.bars(decoding_accuracy, title="chat model accuracy by decoding setting", xlabel="decoding setting",
                 ylabel="accuracy on held-out questions")
A = decoding_accuracy
say(f"Sampling at high temperature lets unlikely tokens through, and accuracy drops from {A['greedy']:.2f} (greedy) "
    f"to {A['T=1.5']:.2f} (T=1.5); top-p cuts the long tail of unlikely tokens and wins back "
    f"{A['T=1.5, top-p=0.8'] - A['T=1.5']:.2f} of the {A['greedy'] - A['T=1.5']:.2f} lost ({A['T=1.5, top-p=0.8']:.2f}).")

# %% [markdown]
# For factual answers, greedy or low temperature is the safe choice; sampling matters when you want
# variety (and in lesson 4, where reinforcement learning needs several different answers to the same
# prompt).

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
# Two of the bundled evaluations (also available as `ftlab eval MODEL --task TASK`):
#
# * `qa`: chat questions about facts, each in a question form no fine-tuning example used for that
#   fact; some facts were held out of all fine-tuning, the others were in it (asked another way).
#   Two things are scored apart: does the reply **mention the right answer** (anywhere, as a whole
#   word), and did the model **end its turn** on its own (emit its end-of-turn token, or the end-of-text
#   token that closes documents in pre-training, within 32 tokens). *Correct* needs both.
# * `facts`: the same facts as plain-text completions, in a sentence form the pre-training corpus
#   never used for that fact.

# %%
from ftlab.evaluation import end_tokens, mentions

chat_qa = evaluate(chat, chat_tok, "qa", name="chat")
base_qa = evaluate(base, base_tok, "qa", name="base")
base_facts = evaluate(base, base_tok, "facts", name="base")
# the base also gets the plain question, the format it read in pre-training (same questions, same stop tokens)
gens = generate(base, base_tok, list(qa["question"]), max_new_tokens=32, stop_ids=end_tokens(base_tok))
said = [mentions(g.text, a) for g, a in zip(gens, qa["answer"])]
base_plain = {"mentions_answer": float(np.mean(said)), "ended_turn": float(np.mean([g.stopped for g in gens])),
              "accuracy": float(np.mean([m and g.stopped for m, g in zip(said, gens)]))}
measures = {"chat, chat format": chat_qa.metrics | {"accuracy": chat_qa.accuracy},
            "base, chat format": base_qa.metrics | {"accuracy": base_qa.accuracy}, "base, plain question": base_plain}
display(html_table([{"model, prompt": k, "n": chat_qa.n, "mentions the answer": v["mentions_answer"],
             "ended its turn": v["ended_turn"], "correct (both)": v["accuracy"]} for k, v in measures.items()]))
print(f"base, plain-text facts: {base_facts.accuracy:.2f} of {base_facts.n}")
say(f"The `qa` set has {chat_qa.n} questions: {chat_qa.metrics['n_unseen_facts']} about facts held out of all "
    f"fine-tuning and {chat_qa.metrics['n_seen_facts']} about facts the chat model was tuned on (asked in another form).")

# %%
labels = {"mentions_answer": "mentions the answer", "ended_turn": "ended its turn", "accuracy": "both (correct)"}
fig = plots.grouped_bars({k: {labels[m]: v[m] for m in labels} for k, v in measures.items()},
                         title=f"{chat_qa.n} held-out chat questions", xlabel="measure",
                         ylabel="share of questions", ylim=(0, 1.15))

# %% [markdown]
# The two halves of "correct" tell different stories. Asked the plain question, the format it read
# in pre-training, the base names the right answer most of the time (it knows the facts) but rarely
# stops: it writes the next quiz question. Asked in the chat format, it hardly ever names the answer
# either: the template is foreign text to it. The chat model names the answer *and* ends its turn.
# (Ending counts the end-of-turn token and the end-of-text token that closes documents in
# pre-training, so the base has a fair way to stop.)
#
# Is it *only* format? Split the same questions by whether the fact was in the fine-tuning data. The
# base never saw any fine-tuning, so its split shows how hard each half is; the chat model's split
# shows what tuning on a fact added.

# %%
seen = np.array(qa["fact_in_finetuning"])
base_said = np.array(said)
chat_ok = np.array([r["correct"] for r in chat_qa.rows])
# plain-text facts of the relations tiny-chat was tuned on: every fact not held out was in its fine-tuning
facts_data = world.facts_eval()
chat_rel = np.isin(facts_data["relation"], ftlab.world.CHAT_RELATIONS)
fact_heldout = np.array(facts_data["heldout"])
base_fact_ok = np.array([r["correct"] for r in base_facts.rows])
split = {"chat, chat format: correct": (chat_ok[seen].mean(), chat_ok[~seen].mean()),
         "base, plain question: mentions the answer": (base_said[seen].mean(), base_said[~seen].mean()),
         "base, plain-text facts: correct": (base_fact_ok[chat_rel & ~fact_heldout].mean(),
                                             base_fact_ok[chat_rel & fact_heldout].mean())}
split = {k: (float(a), float(b)) for k, (a, b) in split.items()}
display(html_table([{"measure": k, "facts in fine-tuning": a, "facts held out": b, "gap": a - b}
                    for k, (a, b) in split.items()]))
chat_gap = split["chat, chat format: correct"][0] - split["chat, chat format: correct"][1]
base_gap = split["base, plain question: mentions the answer"][0] - split["base, plain question: mentions the answer"][1]
say(f"The chat model answers {split['chat, chat format: correct'][0]:.2f} of the questions about facts it was tuned "
    f"on, and {split['chat, chat format: correct'][1]:.2f} about held-out facts (n = {int(seen.sum())} and "
    f"{int((~seen).sum())}). For the base the two halves are about equally easy (plain question: "
    f"{split['base, plain question: mentions the answer'][0]:.2f} vs {split['base, plain question: mentions the answer'][1]:.2f}; "
    f"plain-text facts: {split['base, plain-text facts: correct'][0]:.2f} vs {split['base, plain-text facts: correct'][1]:.2f}). "
    f"So the chat model's gap of {chat_gap:.2f} is what tuning on those facts added: fine-tuning taught mostly the "
    f"format, which carries pre-trained knowledge to held-out facts, and also some knowledge of the facts it was tuned on.")

# %%
# CHECK: the tuned model chats, the base does not, and the base knows the facts as plain text.
chat_m, base_m, plain_m = measures["chat, chat format"], measures["base, chat format"], measures["base, plain question"]
# ending the turn is what tuning added: the base, in either format, seldom stops
assert chat_m["ended_turn"] >= 0.90, chat_m
assert max(base_m["ended_turn"], plain_m["ended_turn"]) <= chat_m["ended_turn"] - 0.50, measures
# the answer itself: the base knows it (plain question, plain-text facts) but not inside the template
assert plain_m["mentions_answer"] >= 0.50 and base_facts.accuracy >= 0.80, (plain_m, base_facts.summary())
assert chat_m["mentions_answer"] >= base_m["mentions_answer"] + 0.50, measures
assert chat_qa.accuracy >= 0.85, chat_qa.summary()
# the tuned model answers from pre-trained knowledge: facts absent from every fine-tuning example
assert chat_qa.metrics["accuracy_unseen_facts"] >= 0.75, chat_qa.summary()
# ... and tuning added some knowledge: facts it was tuned on are answered better, by more than the base's
# own difference between the two halves (0.05 is about 1.5 standard errors of the held-out half)
assert chat_gap >= 0.05 and chat_gap >= base_gap + 0.05, split
# greedy mostly keeps the capital on top in plain text too; in the chat format only the chat model has it on top
assert top_rate["chat"]["fact, plain text"] >= 0.5 and top_rate["base"]["fact, chat format"] <= 0.1, top_rate
assert top_rate["chat"]["fact, chat format"] >= 0.8, top_rate
# decoding: T=1.5 costs accuracy, top-p wins back more than half of it
A = decoding_accuracy
assert A["T=1.5"] <= A["greedy"] - 0.10 and A["T=1.5, top-p=0.8"] - A["T=1.5"] >= 0.5 * (A["greedy"] - A["T=1.5"]), A
# surprise: the format (house phrasing, end of turn) and the fact inside the template became far more
# likely (by > 3 nats, 20x); the plain-text fact became less likely (forgetting, > 0.5 nats)
for part in ("house phrasing", "end of turn", "fact, chat format"):
    assert mean_surprise["chat"][part] < mean_surprise["base"][part] - 3, (part, mean_surprise)
assert mean_surprise["base"]["fact, plain text"] < 0.5 < mean_surprise["chat"]["fact, plain text"] - mean_surprise["base"]["fact, plain text"], mean_surprise
print("All checks passed.")

# %% [markdown]
# ## Summary
#
# * A base model continues documents; it does not know that a question wants one answer and a stop.
# * Supervised fine-tuning on conversations mostly teaches the format — template, answer, end-of-turn —
#   and the tuned model applies it to facts it only ever saw in pre-training. It also learns a little
#   content: the facts it was tuned on are answered more reliably than held-out ones.
# * Next-token probabilities show both: the fact is likely in plain text for the base; the answer
#   sentence is likely in the chat format only for the tuned model.
# * Decoding is a choice on top of the model: greedy for facts, temperature/top-p for variety.
#
# **Next:** lesson 2 opens the chat template and builds the fine-tuning data by hand.
