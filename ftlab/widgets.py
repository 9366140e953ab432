"""Interactive widgets for the lessons (ipywidgets 7.6+ and 8.x).

Each widget is a small class: its controls are attributes (so tests and notebooks can set them
from Python), ``run()`` does the work and returns what it showed, and displaying the object shows
the controls. Results go into an ``HTML`` widget, which works the same in JupyterLab and Colab.
"""

from __future__ import annotations

import html

import ipywidgets as w

from ftlab.generation import chat_prompt, generate


class _Widget:
    box: w.Widget

    def _ipython_display_(self):  # ipywidgets 7 and 8 both honour this
        from IPython.display import display

        display(self.box)


class CompareModels(_Widget):
    """Type a prompt, pick decoding settings, see several models' outputs side by side.

    ``models`` maps a label to ``(model, tokenizer, is_chat)``; chat models get the prompt wrapped in
    their chat template, and the templated text is shown too.
    """

    def __init__(self, models: dict[str, tuple], prompt: str = "What is the capital of France?", seed: int = 0):
        self.models = models
        self.seed = seed
        self.prompt = w.Textarea(value=prompt, description="Prompt", layout=w.Layout(width="95%"))
        self.decoding = w.Dropdown(options=["greedy", "temperature", "top-p"], value="greedy", description="Decoding")
        self.temperature = w.FloatSlider(value=1.0, min=0.1, max=2.0, step=0.1, description="Temperature")
        self.top_p = w.FloatSlider(value=0.9, min=0.1, max=1.0, step=0.05, description="top-p")
        self.max_new_tokens = w.IntSlider(value=30, min=5, max=80, description="New tokens")
        self.button = w.Button(description="Generate", button_style="primary")
        self.result = w.HTML()
        self.button.on_click(lambda _: self.run())
        self.box = w.VBox([self.prompt, w.HBox([self.decoding, self.temperature, self.top_p]),
                           w.HBox([self.max_new_tokens, self.button]), self.result])

    def run(self) -> dict[str, str]:
        """Generate with the current settings; returns ``{label: output}`` and shows the table."""
        mode = self.decoding.value
        outputs, cells = {}, []
        for label, (model, tok, is_chat) in self.models.items():
            text = chat_prompt(tok, self.prompt.value) if is_chat else self.prompt.value
            gen = generate(model, tok, [text], max_new_tokens=self.max_new_tokens.value, do_sample=mode != "greedy",
                           temperature=self.temperature.value, top_p=self.top_p.value if mode == "top-p" else 1.0,
                           seed=self.seed)[0]
            outputs[label] = gen.text
            stop = "stopped by itself" if gen.stopped else "ran out of tokens"
            cells.append(f"<td style='vertical-align:top;padding:6px'><b>{html.escape(label)}</b>"
                         f"<pre style='white-space:pre-wrap;color:#666'>{html.escape(text)}</pre>"
                         f"<pre style='white-space:pre-wrap'>{html.escape(gen.text)}</pre><i>{stop}</i></td>")
        self.result.value = "<table><tr>" + "".join(cells) + "</tr></table>"
        return outputs


def parse_conversation(text: str) -> list[dict]:
    """``"user: hi\\nassistant: hello"`` -> messages. Lines without a role continue the previous message."""
    messages: list[dict] = []
    for line in text.splitlines():
        role, sep, content = line.partition(":")
        if sep and role.strip().lower() in ("user", "assistant", "system"):
            messages.append({"role": role.strip().lower(), "content": content.strip()})
        elif messages:
            messages[-1]["content"] += "\n" + line
        elif line.strip():
            raise ValueError("Start each message with 'user:' or 'assistant:' (e.g. 'user: What is the capital of Peru?').")
    return messages


class LossMaskViewer(_Widget):
    """Type or pick a conversation; see its tokens, green where they carry loss."""

    def __init__(self, tokenizer, examples: list[list[dict]] | None = None):
        from ftlab.formatting import assistant_labels

        self._labels = assistant_labels
        self.tokenizer = tokenizer
        self.examples = examples or []
        self.picker = w.Dropdown(options=[("(type below)", -1)] + [(m[0]["content"][:50], i) for i, m in enumerate(self.examples)],
                                 value=-1, description="Example")
        self.text = w.Textarea(value="user: What is the capital of Peru?\nassistant: The capital of Peru is Lima.",
                               layout=w.Layout(width="95%", height="90px"))
        self.show_button = w.Button(description="Show tokens", button_style="primary")
        self.result = w.HTML()
        self.n_tokens = self.n_loss_tokens = 0
        self.picker.observe(self._pick, names="value")
        self.show_button.on_click(lambda _: self.run())
        self.box = w.VBox([self.picker, self.text, self.show_button, self.result])

    def _pick(self, change):
        if change["new"] >= 0:
            self.text.value = "\n".join(f"{m['role']}: {m['content']}" for m in self.examples[change["new"]])
            self.run()

    def run(self) -> str:
        from ftlab.formatting import tokens_html

        try:
            messages = parse_conversation(self.text.value)
            if not any(m["role"] == "assistant" for m in messages):
                raise ValueError("Add at least one 'assistant:' line: only the assistant's tokens carry loss.")
            ids, labels = self._labels(self.tokenizer, messages)
        except ValueError as err:
            self.result.value = f"<b style='color:#b00'>{html.escape(str(err))}</b>"
            return self.result.value
        self.n_tokens = len(ids)
        self.n_loss_tokens = sum(l != -100 for l in labels)
        self.result.value = (tokens_html(self.tokenizer, ids, labels) +
                             f"<p>{self.n_loss_tokens} of {self.n_tokens} tokens carry loss (green).</p>")
        return self.result.value


class ICLExplorer(_Widget):
    """Choose a task, k and which demonstrations; see the prompt, the prediction and its probability.

    ``model, tokenizer, pool, queries`` are the first task (lesson 5: the known task on the tiny base);
    ``tasks`` maps more task names to ``(model, tokenizer, pool, queries)`` (lesson 5: the new facts on the
    model that copies), switched with the ``task`` buttons. The query's own pair is left out of the drawn
    demonstrations unless ``own`` is ticked, which puts it at a random place among them.
    """

    def __init__(self, model, tokenizer, pool: list[tuple[str, str]], queries: list[tuple[str, str]],
                 tasks: dict | None = None, first_task: str = "known task"):
        self.tasks = {first_task: (model, tokenizer, pool, queries), **(tasks or {})}
        self.task = w.ToggleButtons(options=list(self.tasks), description="Task")
        self.k = w.IntSlider(value=4, min=0, max=min(64, len(pool)), description="k")
        self.seed = w.IntSlider(value=0, min=0, max=20, description="draw")
        self.own = w.Checkbox(value=False, description="the query's own pair in the prompt", indent=False)
        self.demos = w.SelectMultiple(rows=6, description="or pick", layout=w.Layout(width="60%"))
        self.query = w.Dropdown(description="Query")
        self.button = w.Button(description="Predict", button_style="primary")
        self.result = w.HTML()
        self._use(first_task)
        self.task.observe(lambda change: self._use(change["new"]), names="value")
        self.button.on_click(lambda _: self.run())
        self.box = w.VBox([self.task, w.HBox([self.k, self.seed, self.own]), self.demos, self.query, self.button,
                           self.result])

    def _use(self, name: str) -> None:
        from ftlab.icl import context_window

        self.model, self.tokenizer, self.pool, self.queries = self.tasks[name]
        self.window = context_window(self.tokenizer, self.model)
        self.k.max = min(64, len(self.pool))
        self.demos.value = ()
        self.demos.options = [f"{x} -> {y}" for x, y in self.pool]
        self.query.options = [(f"{x}  (answer: {y})", i) for i, (x, y) in enumerate(self.queries)]
        self.query.value = 0
        self.result.value = ""

    def chosen_demos(self, query: tuple[str, str]) -> list[tuple[str, str]]:
        """Hand-picked demonstrations if any are selected, else ``k`` random ones from draw ``seed``
        (with the query's own pair at a random place among them if ``own`` is ticked)."""
        import random

        from ftlab.icl import sample_demos

        if self.demos.value:
            picked = set(self.demos.value)
            return [(x, y) for x, y in self.pool if f"{x} -> {y}" in picked]
        x = query[0]
        k = self.k.value - 1 if self.own.value and self.k.value else self.k.value
        demos = sample_demos(self.pool, min(k, len([d for d in self.pool if d[0] != x])), seed=self.seed.value, exclude=x)
        if self.own.value:
            demos.insert(random.Random(self.seed.value).randint(0, len(demos)), query)
        return demos

    def run(self) -> dict:
        from ftlab.icl import ContextWindowError, build_prompt, predict

        x, y = self.queries[self.query.value]
        try:
            prompt = build_prompt(self.tokenizer, self.chosen_demos((x, y)), x, self.window)
        except ContextWindowError as err:
            self.result.value = f"<b style='color:#b00'>{html.escape(str(err))}</b>"
            return {"error": str(err)}
        pred = predict(self.model, self.tokenizer, [prompt.text])[0]
        verdict = "correct" if pred.text == y else f"wrong (answer: {y})"
        self.result.value = (f"<pre style='white-space:pre-wrap;color:#666'>{html.escape(prompt.text)}</pre>"
                             f"<p>prediction: <b>{html.escape(pred.text)}</b> with probability {pred.probability:.2f} "
                             f"&mdash; {verdict}; prompt: {prompt.tokens} tokens of {self.window}</p>")
        return {"prompt": prompt.text, "prediction": pred.text, "probability": pred.probability, "correct": pred.text == y}


class LoraExplorer(_Widget):
    """Pick a model config, rank, alpha and targets; see trainable parameters, adapter size and memory."""

    def __init__(self, configs: dict[str, dict], batch: int = 4, seq_len: int = 512, precision: str = "bf16-mixed"):
        from ftlab.memory import linear_shapes, read_config

        self.configs = {name: read_config(c) for name, c in configs.items()}
        self.batch, self.seq_len, self.precision = batch, seq_len, precision
        first = next(iter(self.configs.values()))
        self.model = w.Dropdown(options=list(self.configs), description="Model")
        self.rank = w.IntSlider(value=16, min=1, max=256, description="rank r")
        self.alpha = w.IntSlider(value=32, min=1, max=512, description="alpha")
        self.targets = w.SelectMultiple(options=list(linear_shapes(first)), value=("q_proj", "v_proj"),
                                        description="targets", rows=7)
        self.result = w.HTML()
        for control in (self.model, self.rank, self.alpha, self.targets):
            control.observe(lambda _: self.run(), names="value")
        self.box = w.VBox([self.model, w.HBox([self.rank, self.alpha]), self.targets, self.result])
        self.run()

    def run(self) -> dict:
        from ftlab.memory import ConfigError, estimate, parameter_counts

        cfg = self.configs[self.model.value]
        try:
            if not self.targets.value:
                raise ConfigError("Pick at least one target module.")
            lora = estimate(cfg, "lora", batch=self.batch, seq_len=self.seq_len, precision=self.precision,
                            lora_r=self.rank.value, lora_targets=list(self.targets.value))
            full = estimate(cfg, "full", batch=self.batch, seq_len=self.seq_len, precision=self.precision)
        except ConfigError as err:
            self.result.value = f"<b style='color:#b00'>{html.escape(str(err))}</b>"
            return {"error": str(err)}
        total = parameter_counts(cfg)["total"]
        out = {"trainable": lora.trainable, "percent": 100 * lora.trainable / total,
               "adapter_mb": lora.trainable * 2 / 2**20, "lora_gib": lora.total / 2**30, "full_gib": full.total / 2**30,
               "scale": self.alpha.value / self.rank.value}
        self.result.value = (f"<p>trainable: <b>{out['trainable']:,}</b> of {total:,} ({out['percent']:.3f}%); "
                             f"adapter file ≈ {out['adapter_mb']:.1f} MB in 16-bit; scale alpha/r = {out['scale']:.2f}</p>"
                             f"<p>estimated training memory (batch {self.batch} × {self.seq_len} tokens, {self.precision}): "
                             f"LoRA <b>{out['lora_gib']:.2f} GiB</b> vs full fine-tuning {out['full_gib']:.2f} GiB</p>")
        return out


class PreferenceLabeler(_Widget):
    """Show a prompt and two replies; the learner clicks A, B or Tie, and each label is appended to a
    JSONL file (``ftlab.preferences.PreferenceLog``) at once, so it survives a kernel restart.

    ``pairs`` has TRL preference columns (``prompt``, ``chosen``, ``rejected``); which reply is shown as
    A is decided by a seeded coin per pair, so position says nothing. Pairs already in the file are
    not asked again. ``choose("A")`` does what a click does (for tests and for driving it from code);
    **Start over** (``reset()``) sets the file aside as ``<name>.bak`` and asks every pair again.
    """

    def __init__(self, pairs, path: str = "my_preferences.jsonl", seed: int = 0):
        import random

        from ftlab.preferences import PreferenceLog

        self.log = PreferenceLog(path)
        rng = random.Random(seed)
        self.items = []
        for p, c, r in zip(pairs["prompt"], pairs["chosen"], pairs["rejected"]):
            prompt, good, bad = p[-1]["content"], c[-1]["content"], r[-1]["content"]
            self.items.append((prompt, good, bad) if rng.random() < 0.5 else (prompt, bad, good))
        self.buttons = {c: w.Button(description=c if c != "tie" else "Tie", button_style="info") for c in ("A", "B", "tie")}
        for choice, button in self.buttons.items():
            button.on_click(lambda _, choice=choice: self.choose(choice))
        self.reset_button = w.Button(description="Start over", button_style="warning",
                                     tooltip="Set your labels aside (kept as a .bak file) and label every pair again")
        self.reset_button.on_click(lambda _: self.reset())
        self.card = w.HTML()
        self.status = w.HTML()
        self.note = ""  # what the last reset did, shown under the tally
        self.box = w.VBox([self.card, w.HBox(list(self.buttons.values()) + [self.reset_button]), self.status])
        self.run()

    @property
    def count(self) -> int:
        """How many of these pairs are labelled (in the file)."""
        done = self.log.labels()
        return sum(self.log.key(*item) in done for item in self.items)

    def current(self) -> tuple[str, str, str] | None:
        """The next unlabelled ``(prompt, reply A, reply B)``, or None when all are done."""
        done = self.log.labels()
        return next((item for item in self.items if self.log.key(*item) not in done), None)

    def choose(self, choice: str) -> None:
        item = self.current()
        if item is not None:
            self.log.add(*item, choice)
        self.note = ""
        self.run()

    def reset(self) -> None:
        """Forget the labels (the file is set aside, not deleted) and start again from the first pair."""
        backup = self.log.clear()
        self.note = f"Started over; your earlier labels are in <code>{html.escape(str(backup))}</code>." if backup else ""
        self.run()

    def run(self) -> tuple[str, str, str] | None:
        """Show the next pair and the tally; returns the pair shown."""
        item = self.current()
        labelled = self.count
        problems = "".join(f"<br><span style='color:#b00'>{html.escape(p)}</span>" for p in self.log.problems)
        note = f"<br>{self.note}" if self.note else ""
        self.status.value = (f"{labelled} of {len(self.items)} labelled, saved in "
                             f"<code>{html.escape(str(self.log.path))}</code>{problems}{note}")
        for button in self.buttons.values():
            button.disabled = item is None
        if item is None:
            self.card.value = "<b>All pairs labelled. Thank you!</b>"
            return None
        prompt, a, b = item
        reply = "<td style='vertical-align:top;padding:6px;border:1px solid #ccc;width:45%'><b>{}</b><br>{}</td>"
        self.card.value = (f"<p><b>Prompt:</b> {html.escape(prompt)}</p><table><tr>"
                           + reply.format("A", html.escape(a)) + reply.format("B", html.escape(b)) + "</tr></table>"
                           "<p>Which reply would you rather get?</p>")
        return item


def uploaded_files(value) -> list[tuple[str, bytes]]:
    """``[(name, content)]`` from a ``FileUpload``'s value, in either format: ipywidgets 8 gives a tuple of
    dicts with ``name`` and ``content`` (a memoryview); 7.x a dict ``{name: {"metadata": ..., "content": bytes}}``."""
    if isinstance(value, dict):  # ipywidgets 7
        return [(name, bytes(item["content"])) for name, item in value.items()]
    return [(item["name"], bytes(item["content"])) for item in value]


class DataChecker(_Widget):
    """Upload a file of examples (or type a path), press **Check**, read the report.

    ``run()`` loads the uploaded file if there is one, else the path, with ``ftlab.data.load`` and the
    given tokenizer; the result is in ``.data`` (``LoadedData``: ``train``, ``test``, ``report``).
    Uploaded files are saved in ``folder`` first, under their own names.
    """

    def __init__(self, tokenizer, path: str = "", folder: str = "uploads", **load_kwargs):
        self.tokenizer, self.folder, self.load_kwargs = tokenizer, folder, load_kwargs
        self.upload = w.FileUpload(accept=".jsonl,.json,.csv,.parquet", multiple=False, description="Upload")
        self.path = w.Text(value=str(path), description="or a path", layout=w.Layout(width="80%"))
        self.button = w.Button(description="Check", button_style="primary")
        self.result = w.HTML()
        self.data = None
        self.button.on_click(lambda _: self.run())
        self.box = w.VBox([w.HBox([self.upload, self.button]), self.path, self.result])

    def source(self) -> str:
        """The file to read: the latest upload (saved to ``folder``), else the path typed."""
        import os

        files = uploaded_files(self.upload.value)
        if not files:
            return self.path.value.strip()
        name, content = files[-1]
        os.makedirs(self.folder, exist_ok=True)
        target = os.path.join(self.folder, os.path.basename(name))
        with open(target, "wb") as f:
            f.write(content)
        self.path.value = target
        return target

    def run(self):
        """Load and check the file; show the report (at most 20 problems); returns ``LoadedData`` or None."""
        from ftlab.data import DataError, load

        try:
            self.data = load(self.source(), self.tokenizer, **self.load_kwargs)
        except (DataError, ValueError) as err:
            self.data = None
            self.result.value = f"<b style='color:#b00'>{html.escape(str(err))}</b>"
            return None
        report = self.data.report
        shown = report.problems[:20]
        more = f"<br>… and {len(report.problems) - 20} more (all in <code>.data.report.problems</code>)" if len(report.problems) > 20 else ""
        problems = "<br>".join(f"<span style='color:{'#b00' if p.action == 'refused' else '#a60'}'>{html.escape(str(p))}</span>"
                               for p in shown) or "no problems"
        self.result.value = (f"<pre style='white-space:pre-wrap'>{html.escape(report.summary())}</pre>"
                             f"<p><b>problems:</b><br>{problems}{more}</p>")
        return self.data
