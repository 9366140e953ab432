"""``ftlab bench``: measure this machine — import and load times, training throughput of ftlab's
SFT/LoRA path against a minimal hand-written PyTorch loop (same model, batch, sequence length,
optimizer), grading throughput, and optionally each lesson's wall time as nbmake runs it."""

from __future__ import annotations

import contextlib
import io
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _seconds(code: str) -> float:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return round(float(out.stdout.strip().splitlines()[-1]), 3)


def import_and_load() -> dict:
    load = ("import time, ftlab; from ftlab.models import load_model; t = time.perf_counter(); "
            "load_model({!r}); print(time.perf_counter() - t)")
    return {"import ftlab (s)": _seconds("import time; t = time.perf_counter(); import ftlab; print(time.perf_counter() - t)"),
            "load tiny-base, fresh process, imports included (s)": _seconds(load.format("tiny-base")),
            "load tiny-chat, fresh process, imports included (s)": _seconds(load.format("tiny-chat"))}


def _batches(tokenizer, n: int, batch: int, seq_len: int, seed: int = 0):
    import torch

    g = torch.Generator().manual_seed(seed)
    return [torch.randint(4, len(tokenizer), (batch, seq_len), generator=g) for _ in range(n)]


def training_throughput(lora: bool, steps: int = 40, batch: int = 16, seq_len: int = 128) -> dict:
    """Tokens per second of ``train_sft`` and of a hand-written loop on the same data; ratio = ftlab / hand."""
    import torch
    from datasets import Dataset

    from ftlab.lora import lora_config
    from ftlab.models import load_model
    from ftlab.profiles import setup
    from ftlab.training import train_sft

    profile = setup("cpu", quiet=True)
    _, tok = load_model("tiny-base", profile)
    data = _batches(tok, steps, batch, seq_len)
    texts = Dataset.from_dict({"input_ids": [row.tolist() for b in data for row in b]})
    lr = profile.learning_rates["lora" if lora else "sft"]

    def fresh():
        model, _ = load_model("tiny-base", profile, for_training=True)
        return model, (lora_config(model, r=8) if lora else None)

    model, peft_config = fresh()
    run = train_sft(model, tok, texts, profile, peft_config=peft_config, max_steps=steps, per_device_train_batch_size=batch,
                    max_length=seq_len, learning_rate=lr, lr_scheduler_type="constant", warmup_steps=0,
                    logging_steps=steps, quiet=True)
    ours = steps * batch * seq_len / run.seconds

    hand_model, config = fresh()
    if config is not None:
        from peft import get_peft_model

        hand_model = get_peft_model(hand_model, config)
    hand_model.train()
    optimizer = torch.optim.AdamW([p for p in hand_model.parameters() if p.requires_grad], lr=lr)
    start = time.perf_counter()
    for ids in data:
        loss = hand_model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    hand = steps * batch * seq_len / (time.perf_counter() - start)
    kind = "LoRA" if lora else "SFT"
    return {f"{kind} tokens/s, ftlab (TRL)": round(ours), f"{kind} tokens/s, hand-written loop": round(hand),
            f"{kind} ratio ftlab / hand": round(ours / hand, 3)}


def grading_throughput(n: int = 6) -> dict:
    from ftlab.grading import grade

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "subs"
        folder.mkdir()
        for i in range(n):
            shutil.copy(ROOT / "exercises" / "source" / "04_rlhf.ipynb", folder / f"s{i}.ipynb")
        from ftlab.sandbox import unavailable

        # the sandbox's cost: the same folder graded without it, in the same run
        runs = [(1, False), (1, True), (2, True)] if not unavailable() else [(1, False), (2, False)]
        for jobs, sandbox in runs:
            start = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):  # grade's one-line summary is not a benchmark result
                grade(folder, "04", Path(tmp) / f"g{jobs}{sandbox}.csv", jobs=jobs, sandbox=sandbox,
                      source_dir=ROOT / "exercises" / "source", progress=False)
            name = f"grading, --jobs {jobs}" + ("" if sandbox else " --no-sandbox")
            out[f"{name} (submissions/min)"] = round(n / (time.perf_counter() - start) * 60, 1)
    return out


def lesson_times() -> dict:
    """Each lesson's wall time, executed by nbmake as the test suite executes it."""
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--durations=0",
                           str(ROOT / "notebooks")], capture_output=True, text=True, cwd=ROOT)
    times = {}
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[1] == "call" and parts[2].endswith(".ipynb"):
            times[f"lesson {Path(parts[2].split('::')[0]).name} (s)"] = float(parts[0].rstrip("s"))
    if times:
        times["all lessons (s)"] = round(sum(times.values()), 1)
    return times


def machine() -> str:
    import os

    import torch

    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"torch {torch.__version__}, {'CUDA ' + torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU'}")


def run(lessons: bool = True) -> dict:
    results = {"machine": machine()}
    results |= import_and_load()
    results |= training_throughput(lora=False)
    results |= training_throughput(lora=True)
    results |= grading_throughput()
    if lessons:
        results |= lesson_times()
    return results
