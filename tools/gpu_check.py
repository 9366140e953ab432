"""Exercise the ``gpu`` profile on a CUDA machine and print measured numbers.

    FTLAB_PROFILE=gpu python tools/gpu_check.py            # SmolLM2 from the hub (needs internet)
    FTLAB_PROFILE=gpu FTLAB_BASE_MODEL=ftlab/assets/models/tiny-base \\
        FTLAB_CHAT_MODEL=ftlab/assets/models/tiny-chat python tools/gpu_check.py   # no network

Runs the same library calls as lessons 1-2: load, evaluate, SFT with the profile's TRL defaults
(bf16 autocast where native, else fp16 with fp32 weights), and reports time and accuracy.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace

import torch

import ftlab
from ftlab.evaluation import evaluate
from ftlab.training import train_sft
from ftlab.world import World


def main() -> None:
    profile = ftlab.setup()
    assert profile.name == "gpu", "run with a CUDA GPU (FTLAB_PROFILE=gpu)"
    report: dict = {"profile": profile.describe(), "torch": torch.__version__}
    world = World(0)
    for name in (profile.base_model, profile.chat_model):
        start = time.perf_counter()
        model, tok = ftlab.load_model(name, profile)
        report[f"load {name} s"] = round(time.perf_counter() - start, 2)
        report[f"dtype {name}"] = str(model.dtype)
        for task in ("facts", "qa"):
            start = time.perf_counter()
            result = evaluate(model, tok, task, world=world)
            report[f"{name} {task}"] = result.summary() | {"seconds": round(time.perf_counter() - start, 2)}
    data = world.instructions()["train"]
    precisions = [profile, replace(profile, dtype="float32", mixed_precision="fp16")]  # T4-like path too
    for p in precisions:
        model, tok = ftlab.load_model(p.base_model, p, for_training=True)
        torch.cuda.reset_peak_memory_stats()
        run = train_sft(model, tok, data, p, assistant_only_loss=True, max_steps=150, disable_tqdm=True)
        qa = evaluate(run.model, tok, "qa", world=world)
        report[f"sft {p.mixed_precision}"] = {"steps": run.steps, "seconds": round(run.seconds, 2),
                                              "s/step": round(run.seconds_per_step, 4),
                                              "peak MiB": round(torch.cuda.max_memory_allocated() / 2**20, 1),
                                              "qa accuracy": round(qa.accuracy, 3),
                                              "qa unseen": round(qa.metrics["accuracy_unseen_facts"], 3)}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
