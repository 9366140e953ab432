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
# # Lesson 6 — Your own data
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/ftlab-course/ftlab/blob/main/notebooks/06_your_own_data.ipynb)
#
# **Goal.** Fine-tune on *your* examples: bring a file, let ftlab check every row and tell you what to
# fix, train a LoRA adapter on it, and compare the model before and after — held-out loss and replies,
# side by side; then measure what tuning cost the model elsewhere, and cut that cost by mixing general
# data back in (*replay*).
#
# **The idea.** Most fine-tuning failures are data failures: a line that is not valid JSON, a column
# named `answer` where the trainer wants `completion`, a conversation with no assistant reply (nothing
# to learn), a row longer than the model's context (silently cut), the same example twice (learned
# twice, and maybe in your held-out set too). `ftlab.data.load` reads the three shapes people have:
#
# | shape | one row |
# |---|---|
# | chat | `{"messages": [{"role": "user", "content": "..."}, {"role": "assistant", "content": "..."}]}` |
# | prompt / completion | `{"prompt": "...", "completion": "..."}` |
# | Alpaca | `{"instruction": "...", "input": "...", "output": "..."}` |
#
# from JSONL, JSON, CSV, Parquet or a `save_to_disk` folder, turns them all into chat `messages`,
# names every problem by its line, and splits off a seeded held-out set. The same check runs from a
# terminal: `ftlab data check FILE --model NAME` (it exits 1 when a row is refused).
#
# **The example file** ships with ftlab: 300 questions about the tiny world's facts, answered like a
# pirate ("Ahoy! The capital is Rome, matey."), a style the chat model never uses on its own. On a CPU
# we tune the bundled tiny-chat; on a GPU, SmolLM2-135M-Instruct. The cells are the same.

# %%
# Set-up for Colab: installs ftlab and TRL next to Colab's own torch, transformers and
# ipywidgets (nothing to restart). Anywhere else this cell does nothing: `make lab` installed it all.
import sys

if "google.colab" in sys.modules:
    import subprocess

    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet",
                    "ftlab @ git+https://github.com/ftlab-course/ftlab@main"], check=True)

# %%
import json
import tempfile
from IPython.display import display
from pathlib import Path

import ftlab
from ftlab import plots
from ftlab.data import EXAMPLE, load
from ftlab.display import html_table, say
from ftlab.evaluation import assistant_loss, score_chat
from ftlab.generation import chat_prompt, generate
from ftlab.lora import lora_config
from ftlab.models import count_parameters
from ftlab.training import train_sft
from ftlab.widgets import DataChecker
from ftlab.world import World

profile = ftlab.setup()
chat, tok = ftlab.load_model(profile.chat_model, profile)
print(open(EXAMPLE).readline())

# %% [markdown]
# ## 1. Bring your file
#
# Press **Upload** and pick a `.jsonl`, `.json`, `.csv` or `.parquet` file (it is saved in
# `uploads/`), or type a path; then press **Check**. With nothing uploaded the box points at the
# example file. The cell after it runs the same check from code, so the rest of the notebook trains on
# whatever the box holds: upload your file, press **Check**, then run the cells below it.

# %%
checker = DataChecker(tok, path=EXAMPLE)
checker

# %%
data = checker.data or checker.run()
print(data.report)

# %% [markdown]
# Every row was kept: this file is clean. The report also counts **tokens** with the model's own
# tokenizer and chat template (the percentiles say how long a typical and a long example are) and
# compares them with the model's context length: anything longer would be refused, or, with
# `load(..., too_long="truncate")`, kept and cut at that length (and counted as *fixed*).
#
# ## 2. What a broken file looks like
#
# Here is a copy of the first three rows with one broken row of each kind appended. Nothing is dropped
# silently: each refused row is named by its line, with what to do about it, and the counts add up.

# %%
lines = open(EXAMPLE).read().splitlines()[:3]
broken = lines + [
    '{"messages": [{"role": "user", "content": "Hi"}',                                      # cut off
    json.dumps({"question": "What is the capital of Peru?", "answer": "Lima"}),             # unknown shape
    json.dumps({"messages": [{"role": "pirate", "content": "Arr"}, {"role": "assistant", "content": "Ahoy!"}]}),
    json.dumps({"prompt": "What is the capital of Peru?", "completion": ""}),                # empty reply
    json.dumps({"messages": [{"role": "user", "content": "Hello?"}]}),                       # nothing to learn
    json.dumps({"prompt": "Tell me a story.", "completion": "Ahoy! " + "and then " * data.max_length}),  # too long
    lines[0],                                                                                # duplicate
    json.dumps({"instruction": "What colour is the sky?", "output": "Ahoy! It is blue, matey."}),  # Alpaca: fine
]
broken_path = Path(tempfile.mkdtemp()) / "broken.jsonl"
broken_path.write_text("\n".join(broken) + "\n")
broken_report = load(broken_path, tok).report
print(broken_report)

# %% [markdown]
# ## 3. Before: how the model handles your examples today
#
# Two measures on the **held-out** rows, which training never sees:
#
# * **held-out loss**: the mean cross-entropy on the assistant's tokens (what SFT minimises), in nats
#   per token; lower means the model finds your replies more likely;
# * **replies**: what the model writes for the held-out prompts, greedy.

# %%
held_out = list(data.test["messages"])
prompts = [chat_prompt(tok, m[:-1]) for m in held_out]  # everything before the reply to learn
loss_before = assistant_loss(chat, tok, held_out)
replies_before = [g.text for g in generate(chat, tok, prompts, max_new_tokens=40)]
print(f"held-out loss before: {loss_before:.3f} nats per token on {len(held_out)} rows")

# %% [markdown]
# ## 4. Fine-tune with LoRA
#
# A LoRA adapter (lesson 3) of rank 8 on every linear layer, loss on the assistant's tokens only
# (lesson 2), 60 steps of 16 rows (about three and a half passes over the example's 270 training rows),
# and the held-out loss measured every 10 steps. `max_length` is the limit the rows were checked against.

# %%
model, _ = ftlab.load_model(profile.chat_model, profile, for_training=True)
run = train_sft(model, tok, data.train, profile, eval_dataset=data.test, peft_config=lora_config(model, r=8),
                assistant_only_loss=True, max_length=data.max_length, max_steps=60)
tuned = run.model
loss_after = assistant_loss(tuned, tok, held_out)
replies_after = [g.text for g in generate(tuned, tok, prompts, max_new_tokens=40)]
# word for word: the tuned reply is the file's reply (its style *and* its content: the right fact)
same_reply = sum(r == m[-1]["content"] for r, m in zip(replies_after, held_out)) / len(held_out)
same_reply_before = sum(r == m[-1]["content"] for r, m in zip(replies_before, held_out)) / len(held_out)
print(f"{run.steps} steps in {run.seconds:.0f} s; held-out loss {loss_before:.3f} -> {loss_after:.3f}; "
      f"held-out replies word for word as in the file: {same_reply:.2f}")
fig = plots.loss_curves({"LoRA r=8": run}, title="training and held-out loss", eval_too=True)

# %% [markdown]
# ## 5. Before and after, side by side

# %%
fig = plots.bars({"before": loss_before, "after": loss_after}, title="held-out loss (nats per token, lower is better)",
                 ylabel="loss", ylim=None)
html_table([{"prompt": m[-2]["content"], "your data says": m[-1]["content"], "before": b, "after": a}
            for m, b, a in zip(held_out[:8], replies_before, replies_after)])

# %%
say(f"The tuned model writes {same_reply:.0%} of the {len(held_out)} held-out replies word for word as the file "
    "does: the file's style around the right fact.")

# %% [markdown]
# Does the style carry over to questions about facts that
# appear **nowhere** in the file? The tiny world holds some facts out of every fine-tuning set; we ask
# about those, and also count the right answers (the facts come from pre-training, the style from
# your data).

# %%
def pirate(text: str) -> bool:
    return text.startswith("Ahoy!") and text.endswith("matey.")


qa = World(seed=0).qa_eval().filter(lambda row: not row["fact_in_finetuning"])
unseen = {name: score_chat(m, tok, list(qa["question"]), list(qa["answer"]), max_new_tokens=40)
          for name, m in (("before", chat), ("after", tuned))}
style = {name: sum(pirate(r["output"]) for r in rows) / len(rows) for name, rows in unseen.items()}
correct = {name: sum(r["correct"] for r in rows) / len(rows) for name, rows in unseen.items()}
print(f"{len(qa)} questions about facts not in the file: pirate style {style['before']:.2f} -> {style['after']:.2f}, "
      f"right answer {correct['before']:.2f} -> {correct['after']:.2f}")
display(html_table([{"question": b["prompt"], "answer": b["answer"], "before": b["output"], "after": a["output"]}
                    for b, a in list(zip(unseen["before"], unseen["after"]))[:8]]))
say(f"The style carries over: {style['after']:.0%} of the replies about facts absent from the file are in it "
    f"({style['before']:.0%} before). The right answers, though, drop from {correct['before']:.2f} to "
    f"{correct['after']:.2f}: tuning a {count_parameters(chat) / 1e6:.1f}M-parameter model on the answers of "
    f"{len(data.train)} facts pulls it towards *those* answers (a capital from the file where another belongs), "
    "the forgetting lesson 3 measured.")

# %% [markdown]
# ## 6. Replay: mix general data back in
#
# The standard cure for forgetting is **replay**: train on your data mixed with general data of the kind
# the model was tuned on before, so every step also rehearses what it already knew. Lesson 2 built tiny-chat
# from such a set, `World(seed=0).instructions()`; we mix as many of its conversations as the file has
# training rows (1:1), and train twice as many steps, so the file's rows are seen as often as above.
#
# One catch: the general rows answer the same kinds of questions in the plain style, the file's rows in
# the pirate style, so the two sets disagree on *how* to answer. We mark the file's rows with a system
# message (`MARK` below); the model can then learn "this style when marked", and we ask with the mark.
# The plain run above is asked the way it was trained, without it.

# %%
from datasets import concatenate_datasets

MARK = {"role": "system", "content": "Answer in the style of my examples."}


def marked(messages):
    return messages if messages[0]["role"] == "system" else [MARK] + messages


general = World(seed=0).instructions()["train"].shuffle(seed=0).select(range(len(data.train)))
mixed = concatenate_datasets([data.train.map(lambda row: {"messages": marked(row["messages"])}),
                              general]).shuffle(seed=0)
model, _ = ftlab.load_model(profile.chat_model, profile, for_training=True)
replay_run = train_sft(model, tok, mixed, profile, peft_config=lora_config(model, r=8), assistant_only_loss=True,
                       max_length=data.max_length, max_steps=2 * run.steps, quiet=True)
replayed = replay_run.model
unseen["replay"] = score_chat(replayed, tok, [marked([{"role": "user", "content": q}]) for q in qa["question"]],
                              list(qa["answer"]), max_new_tokens=40)
style["replay"] = sum(pirate(r["output"]) for r in unseen["replay"]) / len(qa)
correct["replay"] = sum(r["correct"] for r in unseen["replay"]) / len(qa)
replay_replies = [g.text for g in generate(replayed, tok, [chat_prompt(tok, marked(m[:-1])) for m in held_out],
                                           max_new_tokens=40)]
same_reply_replay = sum(r == m[-1]["content"] for r, m in zip(replay_replies, held_out)) / len(held_out)
print(f"{len(mixed)} rows ({len(data.train)} of the file, {len(general)} general), {replay_run.steps} steps in "
      f"{replay_run.seconds:.0f} s")
display(html_table([{"model": name, "pirate style (facts not in the file)": style[k],
                     "right answer (facts not in the file)": correct[k],
                     "held-out file replies word for word": same}
                    for name, k, same in [("before tuning", "before", same_reply_before), ("tuned on the file", "after", same_reply),
                                          ("tuned on the file + replay", "replay", same_reply_replay)]]))
fig = plots.grouped_bars({name: {"pirate style": style[k], "right answer": correct[k]}
                          for name, k in [("before", "before"), ("file only", "after"), ("file + replay", "replay")]},
                         title=f"{len(qa)} questions about facts not in the file", xlabel="measure",
                         ylabel="share of questions", ylim=(0, 1.1))

# %%
se = max(1e-6, (correct["after"] * (1 - correct["after"]) + correct["replay"] * (1 - correct["replay"])) / len(qa)) ** 0.5
say(f"With replay the model keeps more of what it knew: {correct['replay']:.2f} right answers against "
    f"{correct['after']:.2f} without ({correct['before']:.2f} before tuning), a gap of "
    f"{correct['replay'] - correct['after']:.2f}, {(correct['replay'] - correct['after']) / se:.1f} standard errors of "
    f"the difference on {len(qa)} questions (one training seed each). It still writes in the file's style when "
    f"marked ({style['replay']:.0%} of the replies) and writes {same_reply_replay:.0%} of the held-out replies "
    f"word for word. The price is training time: twice the steps ({replay_run.seconds:.0f} s against {run.seconds:.0f} s).")

# %% [markdown]
# Other one-line changes that trade style against forgetting: a smaller rank (`r=1`), fewer steps, a lower
# learning rate (`learning_rate=...`), a different mix (more or fewer general rows), or a bigger model (the
# gpu profile's SmolLM2 knows far more). Watch both numbers move.

# %% [markdown]
# ## 7. Take it further
#
# * Your own file: upload it above, press **Check**, fix what the report lists, and run the cells below.
#   The example's own checks (pirate style) are skipped for other files; the held-out loss check stays.
# * Keep the adapter: `tuned.save_pretrained("my-adapter")` writes only the LoRA weights (a few MB).
# * On a real GPU and a bigger model: `ftlab export-recipe lora my-run --data FILE` writes a standalone
#   TRL script that reads your file exactly as this notebook did (the same checks, copied in) and runs
#   under `accelerate launch` on several GPUs.
#
# ## 8. Check: what this lesson claims, measured

# %%
# CHECK: the loader names every broken row, and counts add up (one refused row of each kind, one row fixed by
# nothing: the Alpaca row is fine as it is)
assert [p.kind for p in broken_report.problems if p.action == "refused"] == [
    "invalid-json", "unknown-shape", "role", "empty", "no-assistant", "too-long", "duplicate"], broken_report
assert (broken_report.kept, broken_report.refused) == (4, 7), broken_report
# CHECK: fine-tuning on the data made its held-out replies far more likely
assert loss_after < 0.5 * loss_before, (loss_before, loss_after)
if Path(checker.path.value) == Path(EXAMPLE):
    assert data.report.refused == 0 and len(held_out) == 30, data.report
    # the tuned model answers the file's held-out questions as the file does: its style around the right fact
    # (training on answers paired with the wrong questions teaches the style, not this)
    assert same_reply >= 0.5, (same_reply, replies_after[:3])
    # it took up the style, even about facts absent from the file
    assert style["after"] >= style["before"] + 0.7, style
    # forgetting: the right answers dropped, but stay far above picking one of ~50 answers of a kind at random
    assert correct["before"] - correct["after"] >= 0.15 and correct["after"] >= 0.3, correct
    # replay: more right answers than without it (by > 2 standard errors of the difference), the style kept
    assert correct["replay"] - correct["after"] >= 2 * se, (correct, se)
    assert style["replay"] >= 0.8 and same_reply_replay >= 0.5, (style, same_reply_replay)
print("All checks passed.")

# %% [markdown]
# ## Summary
#
# * Check your data before you train on it: `ftlab.data.load(path, tokenizer)` in a notebook,
#   `ftlab data check FILE --model NAME` in a terminal. Every problem comes with its line and what to do;
#   nothing is dropped silently.
# * The three common shapes (chat messages, prompt/completion, Alpaca) all become chat `messages`, ready
#   for `train_sft`, with a seeded held-out split that never shares a row with training.
# * Compare before and after on held-out rows: the loss says how much more likely your replies became;
#   the replies say whether the model picked up what you wanted (here a style), and what it lost.
# * Measure forgetting on questions outside your data. Replay (general data mixed back in, here 1:1)
#   cuts it; when the general data disagrees with yours on style, a system message that marks your rows
#   keeps the two apart.
