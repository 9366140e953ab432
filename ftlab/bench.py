"""``ftlab bench``: measure this machine — import and load times, training throughput of ftlab's
SFT/LoRA path against a hand-written PyTorch loop doing the same work, the share of the machine's
peak FLOP/s that training reaches, grading throughput, and optionally each lesson's wall time as
nbmake runs it.

The training comparison is fair by construction: the hand-written loop trains on the very batches the
trainer's collator produced, with AdamW and the trainer's betas, epsilon and weight decay, the same gradient
clipping and the same learning-rate schedule. The two run in lockstep in one process (a ``TrainerCallback``
takes the hand loop's step right after each trainer step), so they take turns step by step and a drift in the
machine's speed hits both alike. Both are timed over the same steps ``k+1..N``, so set-up, optimizer creation
and the cold first steps are outside both clocks. Tokens per second counts real (non-padding) tokens. The
report gives the median and the spread (min-max) of the per-run ratios."""

from __future__ import annotations

import contextlib
import datetime
import io
import json
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks.json"  # the one run README's figures are generated from


def _seconds(code: str) -> float:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return round(float(out.stdout.strip().splitlines()[-1]), 3)


def import_and_load() -> dict:
    load = ("import time, ftlab; from ftlab.models import load_model; t = time.perf_counter(); "
            "load_model({!r}); print(time.perf_counter() - t)")
    return {"import ftlab (s)": _seconds("import time; t = time.perf_counter(); import ftlab; print(time.perf_counter() - t)"),
            "load tiny-base, fresh process, imports included (s)": _seconds(load.format("tiny-base")),
            "load tiny-chat, fresh process, imports included (s)": _seconds(load.format("tiny-chat"))}


def _sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def peak_flops(n: int = 1024, repeats: int = 5) -> float:
    """This machine's matmul peak, measured now: the best of ``repeats`` fp32 ``n x n`` ``torch.mm``s, in FLOP/s."""
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    torch.mm(a, b)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        _sync()
        start = time.perf_counter()
        for _ in range(4):
            torch.mm(a, b)
        _sync()
        best = min(best, (time.perf_counter() - start) / 4)
    return 2 * n ** 3 / best


def _texts(tokenizer, rows: int, seq_len: int, seed: int = 0):
    """Random token rows of varied length (half to full ``seq_len``), so batches carry real padding."""
    import torch
    from datasets import Dataset

    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(seq_len // 2, seq_len + 1, (rows,), generator=g).tolist()
    return Dataset.from_dict({"input_ids": [torch.randint(4, len(tokenizer), (n,), generator=g).tolist()
                                            for n in lengths]})


class HandLoop:
    """The trainer's step written by hand: forward with labels, backward, clip, AdamW (fused if the trainer's is,
    with its betas, epsilon and weight decay), the trainer's learning-rate schedule."""

    def __init__(self, model, args, steps: int):
        import torch
        from transformers import get_scheduler

        model.train()
        self.model, self.max_grad_norm = model, args.max_grad_norm
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(self.params, lr=args.learning_rate, betas=(args.adam_beta1, args.adam_beta2),
                                           eps=args.adam_epsilon, weight_decay=args.weight_decay,
                                           fused=args.optim == "adamw_torch_fused" or None)  # as the trainer's
        self.schedule = get_scheduler(args.lr_scheduler_type, self.optimizer, num_warmup_steps=args.warmup_steps,
                                      num_training_steps=steps)
        self.device = next(model.parameters()).device

    def step(self, batch: dict) -> None:
        import torch

        with torch.enable_grad():
            batch = {key: value.to(self.device) for key, value in batch.items()}
            loss = self.model(input_ids=batch["input_ids"], attention_mask=batch.get("attention_mask"),
                              labels=batch["labels"]).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.params, self.max_grad_norm)
            self.optimizer.step()
            self.schedule.step()
            self.optimizer.zero_grad(set_to_none=True)


def _lockstep(hand_model, batches: list, k: int, n: int):
    """A ``TrainerCallback`` that runs the hand-written loop in lockstep with the trainer: as each trainer step ends,
    the hand loop takes the same step on the same batch (``batches``, filled by the trainer's collator). Both are
    timed over steps ``k+1..N``: the hand loop's own steps, and the trainer's wall time from the start of step
    ``k+1`` to the end of step ``N`` less the hand steps that ran inside it. So the two sides take turns step by
    step and see the same machine, however its speed drifts."""
    from transformers import TrainerCallback

    class Lockstep(TrainerCallback):
        start = None
        trainer_seconds = hand_seconds = 0.0

        def on_train_begin(self, args, state, control, **kwargs):
            self.hand = HandLoop(hand_model, args, n)

        def on_step_begin(self, args, state, control, **kwargs):
            if state.global_step == k:
                _sync()
                self.start = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            step = state.global_step  # steps done; this one trained on batches[step - 1]
            _sync()
            before = time.perf_counter()
            self.hand.step(batches[step - 1])
            _sync()
            if step == n:
                self.trainer_seconds = before - self.start - self.hand_seconds
            if step > k:
                self.hand_seconds += time.perf_counter() - before

    return Lockstep()


def _paired_run(model, hand_model, tok, texts, profile, peft_config, steps: int, k: int, batch: int, seq_len: int,
                lr: float):
    """Train ``model`` through ``train_sft`` with ``hand_model`` trained by hand in lockstep on the same batches;
    return (trainer seconds, hand seconds, both over steps k+1..N; the N batches the trainer's collator built; trainer)."""
    import torch
    from trl import SFTTrainer

    from ftlab.training import train_sft

    batches = []
    original = None

    class Recording:  # the trainer's own collator, recording each batch it builds, in order
        def __call__(self, features):
            out = original(features)
            batches.append({key: value.clone() for key, value in out.items() if isinstance(value, torch.Tensor)})
            return out

    init = SFTTrainer.__init__

    def patched(self, *args, **kwargs):
        nonlocal original
        init(self, *args, **kwargs)
        original, self.data_collator = self.data_collator, Recording()

    lockstep = _lockstep(hand_model, batches, k, steps)
    SFTTrainer.__init__ = patched
    try:
        run = train_sft(model, tok, texts, profile, peft_config=peft_config, callbacks=[lockstep], max_steps=steps,
                        per_device_train_batch_size=batch, max_length=seq_len, learning_rate=lr,
                        logging_steps=steps, quiet=True)
    finally:
        SFTTrainer.__init__ = init
    return lockstep.trainer_seconds, lockstep.hand_seconds, batches[:steps], run.trainer


def _real_tokens(batches) -> int:
    return int(sum(int(b["attention_mask"].sum()) if "attention_mask" in b else b["input_ids"].numel() for b in batches))


def training_throughput(lora: bool, steps: int = 20, k: int = 4, batch: int = 16, seq_len: int = 128,
                        repeats: int = 3, peak: float | None = None) -> dict:
    """Real tokens per second of ``train_sft`` and of a hand-written loop doing the same work step by step in
    lockstep, ``repeats`` runs; ratio = ftlab / hand, median and min-max over the runs. With ``peak`` (FLOP/s),
    also the model FLOPs utilisation of each side."""
    from ftlab.lora import lora_config
    from ftlab.models import load_model
    from ftlab.profiles import setup

    if not 0 <= k < steps:
        raise ValueError(f"The timed steps are k+1..steps; k={k} must be in 0..{steps - 1}.")
    profile = setup("cpu", quiet=True)
    _, tok = load_model("tiny-base", profile)
    texts = _texts(tok, steps * batch, seq_len)
    lr = profile.learning_rates["lora" if lora else "sft"]

    def fresh():
        model, _ = load_model("tiny-base", profile, for_training=True)
        return model, (lora_config(model, r=8) if lora else None)

    ours, hand, flops_per_token = [], [], None
    for _ in range(repeats):
        model, peft_config = fresh()
        hand_model, config = fresh()
        if config is not None:
            from peft import get_peft_model

            hand_model = get_peft_model(hand_model, config)
        trainer_seconds, hand_seconds, batches, trainer = _paired_run(model, hand_model, tok, texts, profile, peft_config,
                                                                      steps, k, batch, seq_len, lr)
        tokens = _real_tokens(batches[k:])
        ours.append(tokens / trainer_seconds)
        hand.append(tokens / hand_seconds)
        if flops_per_token is None:
            everything = sum(p.numel() for p in trainer.model.parameters())
            trained = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
            # forward 2N + backward through every layer 2N + weight gradients of what trains 2N_trained
            flops_per_token = 4 * everything + 2 * trained
    ratios = [a / b for a, b in zip(ours, hand)]
    kind = "LoRA" if lora else "SFT"
    out = {f"{kind} real tokens/s, ftlab (TRL), median": round(statistics.median(ours)),
           f"{kind} real tokens/s, hand-written loop, median": round(statistics.median(hand)),
           f"{kind} ratio ftlab / hand, median": round(statistics.median(ratios), 3),
           f"{kind} ratio ftlab / hand, min-max": [round(min(ratios), 3), round(max(ratios), 3)],
           f"{kind} timed steps": f"{k + 1}..{steps} of {steps}, batch {batch}, up to {seq_len} tokens, {repeats} runs, "
                                  "the two sides in lockstep"}
    if peak:
        out[f"{kind} MFU, ftlab (% of peak)"] = round(100 * statistics.median(ours) * flops_per_token / peak, 1)
        out[f"{kind} MFU, hand-written loop (% of peak)"] = round(100 * statistics.median(hand) * flops_per_token / peak, 1)
    return out


def grading_throughput(n: int = 4) -> dict:
    from ftlab.grading import grade

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "subs"
        folder.mkdir()
        for i in range(n):
            shutil.copy(ROOT / "exercises" / "source" / "04_rlhf.ipynb", folder / f"s{i}.ipynb")
        from ftlab.sandbox import unavailable

        # as an instructor runs it: sandboxed where the machine allows it (its cost was 1% here: 7.4 vs 7.5 a minute)
        sandbox = not unavailable()
        for jobs in (1, 2):
            start = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):  # grade's one-line summary is not a benchmark result
                grade(folder, "04", Path(tmp) / f"g{jobs}{sandbox}.csv", jobs=jobs, sandbox=sandbox,
                      source_dir=ROOT / "exercises" / "source", progress=False)
            name = f"grading, --jobs {jobs}" + ("" if sandbox else " --no-sandbox")
            out[f"{name} (submissions/min)"] = round(n / (time.perf_counter() - start) * 60, 1)
    return out


LESSON_BUDGET_S = 120  # every lesson runs top to bottom in under 2 minutes on 2 CPU cores


def parse_junit(xml_text: str) -> dict:
    """Per-lesson results from pytest's JUnit XML: ``{"lesson NAME (s)": seconds}`` for a passed lesson,
    ``{"lesson NAME": "failed after S s"}`` for one that failed or errored; the total counts passed lessons only."""
    times, failed, slow = {}, [], []
    for case in ET.fromstring(xml_text).iter("testcase"):
        # nbmake names the test after the notebook (name="01_x.ipynb", classname="notebooks.01_x.ipynb");
        # other reporters put the path in file= or a dotted classname
        name = Path((case.get("name") or "").split("::")[0]).name
        if not name.endswith(".ipynb"):
            name = Path((case.get("file") or case.get("classname", "").removesuffix(".ipynb").replace(".", "/")
                         + ".ipynb").split("::")[0]).name
        seconds = round(float(case.get("time", 0)), 1)
        if any(case.find(tag) is not None for tag in ("failure", "error")):
            times[f"lesson {name}"] = f"failed after {seconds} s"
            failed.append(name)
        elif case.find("skipped") is not None:
            times[f"lesson {name}"] = "skipped"
        else:
            times[f"lesson {name} (s)"] = seconds
            if seconds > LESSON_BUDGET_S:
                slow.append(name)
    passed = [v for v in times.values() if isinstance(v, float)]
    if passed:
        times["all passed lessons (s)"] = round(sum(passed), 1)
    times["lessons failed"] = failed
    times[f"lessons over the {LESSON_BUDGET_S} s budget"] = slow
    return times


def lesson_times() -> dict:
    """Each lesson's wall time, executed by nbmake as the test suite executes it; a failing lesson is reported as failed."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "lessons.xml"
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}",
                               str(ROOT / "notebooks")], capture_output=True, text=True, cwd=ROOT)
        if not report.exists():
            return {"lessons": f"pytest did not run (exit {proc.returncode}): {proc.stderr.strip()[-300:]}"}
        return parse_junit(report.read_text())


def machine() -> str:
    import os

    import torch

    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"torch {torch.__version__}, {'CUDA ' + torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU'}")


def run(lessons: bool = True) -> dict:
    import os

    results = {"date": datetime.date.today().isoformat(), "machine": machine(),
               "load average (1 min) at start": round(os.getloadavg()[0], 1)}
    results |= import_and_load()
    peak = peak_flops()
    results["matmul peak, fp32 torch.mm 1024x1024 (GFLOP/s)"] = round(peak / 1e9, 1)
    results |= training_throughput(lora=False, peak=peak)
    results |= training_throughput(lora=True, peak=peak)
    results |= grading_throughput()
    if lessons:
        results |= lesson_times()
    return results


# --- README: its benchmark figures are generated from one JSON run ---------------------------------------------

START, END = "<!-- bench:start (generated by `ftlab bench --write-readme`; edit ftlab/bench.py, not this) -->", "<!-- bench:end -->"


def _fmt(value) -> str:
    if isinstance(value, list):
        return " – ".join(_fmt(v) for v in value) if value else "none"
    if isinstance(value, float) and value >= 1000 or isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def render(results: dict) -> str:
    """README's benchmark block from one ``ftlab bench --json`` result."""
    lines = [START, "",
             f"Measured by `ftlab bench --json` on {results.get('date', 'an unrecorded date')} "
             f"({results.get('machine', 'machine not recorded')}"
             + (f"; 1-minute load average {results['load average (1 min) at start']} at the start"
                if "load average (1 min) at start" in results else "") + "), saved in `benchmarks.json`:", "",
             "| measurement | value |", "|---|---|"]
    lines += [f"| {key} | {_fmt(value)} |" for key, value in results.items()
              if key not in ("date", "machine", "load average (1 min) at start", "method")]
    if "method" in results:
        lines += ["", f"Method of this run: {results['method']}."]
    if not any(key.startswith("lesson") for key in results):
        lines += ["", "Lesson wall times were not measured in this run (`--no-lessons`); `ftlab bench --json` "
                  "measures them with nbmake, and reports a failing lesson as failed."]
    return "\n".join(lines + ["", END])


def write_readme(results: dict, readme: Path = ROOT / "README.md") -> None:
    """Replace README's marked benchmark block with ``render(results)``."""
    text = readme.read_text()
    pattern = re.compile(re.escape(START.split(" (")[0]) + r".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        raise ValueError(f"{readme} has no block between '{START.split(' (')[0]} ...' and '{END}'; add the two markers "
                         "where the benchmark table belongs.")
    readme.write_text(pattern.sub(lambda _: render(results), text, count=1))


def load_results(path: Path = RESULTS) -> dict:
    return json.loads(Path(path).read_text())
