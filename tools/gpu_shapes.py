"""Seconds per training step of each lesson's methods at the sizes of the gpu profile's real models.

No hub is reachable on the machines this was written for, so the models are randomly initialised with
SmolLM2-135M's and SmolLM2-360M's configs (``ftlab.memory.bundled_configs``) and the tiny tokenizer:
the arithmetic per step is the real models', the text is the tiny world's. Prints one JSON object.

    FTLAB_PROFILE=gpu python tools/gpu_shapes.py [--steps 20]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import replace

import torch
from transformers import AutoConfig, AutoModelForCausalLM

import ftlab
from ftlab import rlhf
from ftlab.lora import lora_config
from ftlab.memory import bundled_configs
from ftlab.models import load_tokenizer, save_model
from ftlab.training import train_dpo, train_reward_model, train_rloo, train_sft
from ftlab.world import World


def random_model(name: str) -> str:
    """A folder holding ``name``'s architecture with random weights and the tiny tokenizer."""
    config = AutoConfig.for_model(**bundled_configs()[name])
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    return save_model(model, load_tokenizer("tiny-chat"), tempfile.mkdtemp(prefix=f"{name}-"))


def per_step(profile, folder: str, steps: int, instructions, pairs) -> dict:
    out = {}

    def timed(kind, make, train, n):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        model, tok = make()
        run = train(model, tok, n)
        out[kind] = {"s/step": round(run.seconds / n, 4), "steps": n,
                     "peak GiB": round(torch.cuda.max_memory_allocated() / 2**30, 2)}
        del model, run

    load = lambda: ftlab.load_model(folder, profile, for_training=True)  # noqa: E731
    timed("sft", load, lambda m, t, n: train_sft(m, t, instructions, profile, assistant_only_loss=True,
                                                   max_steps=n, quiet=True), steps)
    timed("lora", load, lambda m, t, n: train_sft(m, t, instructions, profile, peft_config=lora_config(m, r=16),
                                                    assistant_only_loss=True, max_steps=n, quiet=True), steps)
    timed("reward", lambda: rlhf.load_reward_model(folder, profile),
          lambda m, t, n: train_reward_model(m, t, pairs, profile, max_steps=n, quiet=True), steps)
    rm, rm_tok = rlhf.load_reward_model(folder, profile)
    timed("rl", load, lambda m, t, n: train_rloo(m, t, pairs, rm, rm_tok, profile, beta=2.0, max_steps=n, quiet=True),
          max(4, steps // 2))
    timed("dpo", load, lambda m, t, n: train_dpo(m, t, pairs, profile, beta=0.1, max_steps=n, quiet=True), steps)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--models", nargs="+", default=["SmolLM2-135M", "SmolLM2-360M"])
    args = parser.parse_args()
    profile = ftlab.setup(quiet=True)
    assert profile.device == "cuda", "needs a CUDA GPU"
    world = World(seed=0)
    instructions, pairs = world.instructions()["train"], world.preferences()["train"]
    report = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__}
    precisions = {profile.mixed_precision: profile}
    if profile.mixed_precision == "bf16":  # a T4's path on the same card: fp32 weights, fp16 autocast
        precisions["fp16"] = replace(profile, dtype="float32", mixed_precision="fp16")
    for name in args.models:
        folder = random_model(name)
        for precision, p in precisions.items():
            start = time.perf_counter()
            report[f"{name} {precision}"] = per_step(p, folder, args.steps, instructions, pairs)
            report[f"{name} {precision}"]["wall s"] = round(time.perf_counter() - start, 1)
            print(json.dumps({f"{name} {precision}": report[f"{name} {precision}"]}), flush=True)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
