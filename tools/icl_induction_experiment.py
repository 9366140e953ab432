"""Experiment: does the tiny base learn in context (copy `x -> y` from its prompt) if pre-training
contains induction-style documents (random made-up pairs that repeat later in the same document)?

    python tools/icl_induction_experiment.py build --variant a --out /tmp/icl_exp/a --steps N
    python tools/icl_induction_experiment.py build --variant b --out /tmp/icl_exp/b --steps N
    python tools/icl_induction_experiment.py eval /tmp/icl_exp/a/tiny-base /tmp/icl_exp/b/tiny-base

Variant a: the world's corpus as ``ftlab build-models`` makes it. Variant b: the same documents plus
``--induction-frac`` x as many induction documents (see ``induction_doc``). Only the base model is
built (no SFT); nothing is written to ftlab/assets.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import torch

from ftlab.icl import made_up_word


def induction_doc(rng: random.Random, xs: list[str], ys: list[str]) -> str:
    """A list of random `x -> y` pairs (a fresh made-up mapping each document), then some of the pairs
    again in a new order, so that the `y` of a repeated line can only be predicted by copying it from
    earlier in the document. Sometimes the repeats are interleaved with new pairs (unpredictable ys),
    as in a prompt whose query may or may not be among the demonstrations."""
    n = rng.randint(2, 16)
    keys = rng.sample(xs, n)
    pairs = [(x, rng.choice(ys)) for x in keys]
    lines = [f"{x} -> {y}" for x, y in pairs]
    repeat = rng.sample(pairs, rng.randint(1, n))
    extra = [(x, rng.choice(ys)) for x in rng.sample([x for x in xs if x not in keys], rng.randint(0, 3))]
    tail = repeat + extra
    rng.shuffle(tail)
    lines += [f"{x} -> {y}" for x, y in tail]
    return "\n".join(lines)


def build(args):
    from ftlab.build import BuildConfig, new_model, pretrain, train_tokenizer
    from ftlab.icl import MASCOTS
    from ftlab.world import World

    cfg = BuildConfig(pretrain_steps=args.steps, corpus_docs=args.docs)
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    world = World(cfg.seed)
    texts = list(world.corpus(cfg.corpus_docs)["text"])
    if args.variant == "b":
        rng = random.Random(12345)
        wrng = random.Random(999)
        subjects = sorted({f.subject for f in world.facts})
        objects = sorted({f.object for f in world.facts})
        xs = subjects + [made_up_word(wrng) for _ in range(300)]
        ys = objects + list(MASCOTS) + [made_up_word(wrng).lower() for _ in range(100)]
        n_ind = int(args.induction_frac * len(texts))
        ind = [induction_doc(rng, xs, ys) for _ in range(n_ind)]
        print("example induction doc:\n" + ind[0] + "\n")
        texts = texts + ind
        random.Random(7).shuffle(texts)
        print(f"added {n_ind} induction documents")
    t0 = time.perf_counter()
    tokenizer = train_tokenizer(texts, cfg.vocab_size, cfg.context)
    model = new_model(cfg, tokenizer)
    print(f"tiny-base: {sum(p.numel() for p in model.parameters()):,} parameters")
    pretrain(model, tokenizer, texts, cfg)
    secs = time.perf_counter() - t0
    out = Path(args.out) / "tiny-base"
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (Path(args.out) / "build.json").write_text(json.dumps({"variant": args.variant, "steps": args.steps, "docs": args.docs,
                                                            "induction_frac": args.induction_frac, "seconds": secs}))
    print(f"built {out} in {secs:.0f} s (tokenizer + pretraining)")


def continue_training(args):
    """Extra check: continue a built base on induction documents only (50%) mixed with world text."""
    from ftlab.build import BuildConfig, pretrain
    from ftlab.icl import MASCOTS
    from ftlab.models import load_model
    from ftlab.world import World

    model, tok = load_model(args.base)
    world = World(0)
    wrng, rng = random.Random(999), random.Random(54321)
    xs = sorted({f.subject for f in world.facts}) + [made_up_word(wrng) for _ in range(300)]
    ys = sorted({f.object for f in world.facts}) + list(MASCOTS) + [made_up_word(wrng).lower() for _ in range(100)]
    texts = list(world.corpus(6000)["text"]) + [induction_doc(rng, xs, ys) for _ in range(6000)]
    random.Random(3).shuffle(texts)
    cfg = BuildConfig(pretrain_steps=args.steps, pretrain_lr=args.lr, seed=1)
    t0 = time.perf_counter()
    pretrain(model, tok, texts, cfg)
    model.save_pretrained(Path(args.out) / "tiny-base")
    tok.save_pretrained(Path(args.out) / "tiny-base")
    print(f"continued in {time.perf_counter() - t0:.0f} s")


def evaluate(path: str) -> dict:
    from ftlab.icl import (accuracy, build_prompt, context_window, coverage, max_demos, new_facts, predict,
                           sample_demos)
    from ftlab.models import load_model

    model, tok = load_model(path)
    window = context_window(tok, model)
    res = {}
    for seed in (0, 1):
        facts = new_facts(seed=seed)
        answers = [y for _, y in facts]
        fit = max_demos(tok, facts, max(facts, key=lambda f: len(tok(f[0])["input_ids"]))[0], window)
        ks = sorted({0, 1, 4, 16, fit})
        for k in ks:
            preds = predict(model, tok, [build_prompt(tok, facts[:k], x, window).text for x, _ in facts],
                            max_new_tokens=4, with_probability=False)
            res[f"seed{seed} lesson k={k}"] = {
                "all 99": accuracy(preds, answers), "perfect copier": coverage(facts[:k], facts),
                "queries in prompt": accuracy(preds[:k], answers[:k]) if k else float("nan"),
                "queries not in prompt": accuracy(preds[k:], answers[k:])}

        def own_fact_prompt(i, x, y, position, n_other):
            others = sample_demos(facts, n_other, seed=i, exclude=x)
            return build_prompt(tok, others[:position] + [(x, y)] + others[position:], x, window).text
        for n_other, pos in ((0, 0), (7, 7), (7, 0), (15, 15), (15, 0)):
            preds = predict(model, tok, [own_fact_prompt(i, x, y, pos, n_other) for i, (x, y) in enumerate(facts)],
                            max_new_tokens=4, with_probability=False)
            res[f"seed{seed} own fact, {n_other} others, at position {pos}"] = accuracy(preds, answers)
    res["window"], res["fit"] = window, fit
    return res


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build")
    b.add_argument("--variant", choices=["a", "b"], required=True)
    b.add_argument("--out", required=True)
    b.add_argument("--steps", type=int, default=600)
    b.add_argument("--docs", type=int, default=60000)
    b.add_argument("--induction-frac", type=float, default=0.25)
    c = sub.add_parser("continue")
    c.add_argument("--base", required=True)
    c.add_argument("--out", required=True)
    c.add_argument("--steps", type=int, default=250)
    c.add_argument("--lr", type=float, default=1e-3)
    e = sub.add_parser("eval")
    e.add_argument("paths", nargs="+")
    args = p.parse_args()
    if args.cmd == "build":
        build(args)
    elif args.cmd == "continue":
        continue_training(args)
    else:
        for path in args.paths:
            t0 = time.perf_counter()
            res = evaluate(path)
            print(path, f"({time.perf_counter() - t0:.0f} s)")
            for key, val in res.items():
                print(f"  {key}: {json.dumps(val) if isinstance(val, dict) else val}")


if __name__ == "__main__":
    main()
