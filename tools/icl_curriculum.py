"""Experiment 3: a curriculum so that a copy (induction) head forms on an easy task and generalises to the
whole vocabulary and to long range *before* the world corpus arrives.

    python tools/icl_curriculum.py prep --out /tmp/icl_exp3/data
    python tools/icl_curriculum.py stage --data /tmp/icl_exp3/data --out /tmp/icl_exp3/s1 --steps 800 \
        --alpha 256 --minlen 2 --maxlen 8 --context 32 --lr 1e-3 --stop-acc 0.5
    python tools/icl_curriculum.py stage --data ... --init /tmp/icl_exp3/s1 --out /tmp/icl_exp3/s2a \
        --steps 200 --alpha 1024 --new-from 256 ...
    python tools/icl_induction_experiment.py eval /tmp/icl_exp3/LAST/tiny-base

``prep``: the world corpus (BuildConfig defaults) + 25% variant-b ``x -> y`` induction documents (experiment
1), the BPE tokenizer trained on both (as experiment 2's m1/m2), both streams encoded and cached, and the
tokens ranked by frequency in the world stream ("alphabet A" = the A most frequent real tokens;
``--alphabet-kind word``: word-initial tokens (leading space) first).

``stage``: one stage of the curriculum, started from ``--init`` (model + AdamW state) or from scratch
(BuildConfig architecture). CONSTANT lr after a short linear warm-up. Every batch of 16 rows is
``--copy-share`` synthetic copy rows (``<eos> s s`` segments, ``s`` random over the alphabet, length
minlen..maxlen), ``--doc-share`` windows of the induction-document stream, the rest world-corpus windows,
all ``--context`` long. Logged every ``--eval-every`` steps, on fixed evaluation batches: copy loss/acc
(copyable tokens only: the second ``s`` without its first token; no copying = ln(alphabet size)) on
  cur  -- the current alphabet, current segment lengths and context;
  new  -- only ids top[new_from:alpha] (never seen in copy rows before this stage), same lengths;
  all  -- all 2044 non-special ids, same lengths;
  s256 -- top 256, segments 2-8, context 32 (does the original skill survive?);
  far  -- top 256, segments 16-32, context 128 (distance);
and, when the stage has doc/world rows or ``--pair``, the lesson-format pair NLL check (60 prompts) and
the loss on fixed world windows.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import icl_synth  # noqa: E402  (sets 1 thread; we take 2 below)

torch.set_num_threads(int(os.environ.get("ICL_THREADS", "2")))


def prep(args):
    from ftlab.build import BuildConfig, train_tokenizer
    from ftlab.world import World

    t0 = time.perf_counter()
    cfg = BuildConfig()
    world = World(cfg.seed)
    texts = list(world.corpus(cfg.corpus_docs)["text"])
    xs, ys, ie = icl_synth.pair_vocab(world)
    rng = random.Random(12345)
    docs = [ie.induction_doc(rng, xs, ys) for _ in range(int(0.25 * len(texts)))]
    tok = train_tokenizer(texts + docs, cfg.vocab_size, cfg.context)
    eos = tok.eos_token_id

    def stream(tt):
        ids = []
        for enc in tok(tt, add_special_tokens=False)["input_ids"]:
            ids += enc + [eos]
        return torch.tensor(ids)

    world_ids, doc_ids = stream(texts), stream(docs)
    counts = torch.bincount(world_ids, minlength=len(tok)).float()
    for s in tok.all_special_ids:
        counts[s] = -1
    order = counts.argsort(descending=True)
    order = order[: len(tok) - len(tok.all_special_ids)]
    word_initial = torch.tensor([tok.convert_ids_to_tokens(int(i)).startswith("\u0120") for i in order])
    word_order = torch.cat([order[word_initial], order[~word_initial]])
    out = Path(args.out)
    tok.save_pretrained(out / "tok")
    torch.save({"world": world_ids, "docs": doc_ids, "freq": order, "word": word_order,
                "n_word_initial": int(word_initial.sum())}, out / "data.pt")
    print(f"world {len(world_ids):,} tokens, docs {len(doc_ids):,} tokens, {len(order)} ranked ids, "
          f"{int(word_initial.sum())} word-initial; top 20: {tok.convert_ids_to_tokens(order[:20].tolist())}; "
          f"{time.perf_counter() - t0:.0f} s", flush=True)


def copy_batch(gen, alphabet, b, ctx, minlen, maxlen, eos):
    x, m = icl_synth.copy_rows(gen, b, ctx, 0, len(alphabet), -1, minlen, maxlen)
    return torch.where(x < 0, torch.tensor(eos), alphabet[x.clamp(min=0)]), m


def pair_rows(gen, alphabet, b, ctx, arrow, nl, eos, first_only=False, maxlines=16):
    """Synthetic ``x -> y`` documents over random ids: ``<eos>`` then 2-16 lines ``x ARROW y NL`` (x, y 1-3
    random ids each, ARROW/NL the real ' ->' and newline tokens), then a random subset of the same lines again in
    a new order. The y of a repeated line is predictable only by matching its x (several tokens back, since
    ARROW follows every x): mask = the y tokens of the repeated lines (``first_only``: just their first token)."""
    def r(lo, hi):
        return int(torch.randint(lo, hi + 1, (1,), generator=gen))
    rows, masks = [], []
    for _ in range(b):
        ids, mask = [], []
        while len(ids) < ctx:
            n = r(2, maxlines)
            pairs = [(alphabet[torch.randint(0, len(alphabet), (r(1, 3),), generator=gen)].tolist(),
                      alphabet[torch.randint(0, len(alphabet), (r(1, 3),), generator=gen)].tolist()) for _ in range(n)]
            ids.append(eos); mask.append(0)
            for x, y in pairs:
                ids += x + [arrow] + y + [nl]; mask += [0] * (len(x) + 1 + len(y) + 1)
            rep = torch.randperm(n, generator=gen)[:r(1, n)].tolist()
            for i in rep:
                x, y = pairs[i]
                ids += x + [arrow] + y + [nl]
                mask += [0] * (len(x) + 1) + ([1] + [0 if first_only else 1] * (len(y) - 1)) + [0]
        rows.append(ids[:ctx]); masks.append(mask[:ctx])
    return torch.tensor(rows), torch.tensor(masks, dtype=torch.bool)


def windows(gen, data, b, ctx):
    starts = torch.randint(0, len(data) - ctx - 1, (b,), generator=gen)
    return torch.stack([data[s:s + ctx] for s in starts.tolist()])


@torch.no_grad()
def masked_eval(model, x, m):
    logits = model(input_ids=x).logits[:, :-1]
    lp = torch.log_softmax(logits.float(), -1).gather(-1, x[:, 1:, None])[..., 0]
    mm = m[:, 1:]
    return round(-lp[mm].mean().item(), 3), round((logits.argmax(-1) == x[:, 1:])[mm].float().mean().item(), 3)


def stage(args):
    from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

    from ftlab.build import BuildConfig, new_model
    from ftlab.world import World

    t0 = time.perf_counter()
    d = torch.load(Path(args.data) / "data.pt")
    tok = PreTrainedTokenizerFast.from_pretrained(Path(args.data) / "tok")
    eos = tok.eos_token_id
    ranked = d[args.alphabet_kind]
    alphabet = ranked[args.alpha_from:args.alpha]
    cfg = BuildConfig()
    if args.init:
        model = LlamaForCausalLM.from_pretrained(Path(args.init) / "tiny-base")
    else:
        model = new_model(cfg, tok)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.1, betas=(0.9, 0.95))
    if args.init and (Path(args.init) / "opt.pt").exists() and not args.fresh_opt:
        opt.load_state_dict(torch.load(Path(args.init) / "opt.pt"))
        for g in opt.param_groups:
            g["lr"] = args.lr
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / max(1, args.warmup)))
    B = cfg.pretrain_batch
    n_copy = round(args.copy_share * B)
    n_doc = round(args.doc_share * B)
    n_pair = round(args.pair_share * B)
    n_keep = round(args.keep_share * B) if args.keep_alpha else 0
    n_world = B - n_copy - n_doc - n_pair
    arrow = tok.convert_tokens_to_ids("\u0120->"); nl = tok.convert_tokens_to_ids("\u010a")
    pair_alpha = ranked[:args.alpha][(ranked[:args.alpha] != arrow) & (ranked[:args.alpha] != nl)]
    gen = torch.Generator().manual_seed(args.seed)
    world_pairs = args.pair or n_doc or n_world
    xs, ys, _ = icl_synth.pair_vocab(World(0)) if world_pairs else (None, None, None)
    C, lo, hi = args.context, args.minlen, args.maxlen
    # fixed evaluation batches
    eb = max(8, 16 * 32 // C)
    ev = {"cur": copy_batch(torch.Generator().manual_seed(11), alphabet, eb, C, lo, hi, eos),
          "all": copy_batch(torch.Generator().manual_seed(12), d["freq"], eb, C, lo, hi, eos),
          "s256": copy_batch(torch.Generator().manual_seed(13), d["freq"][:256], 32, 32, 2, 8, eos),
          "far": copy_batch(torch.Generator().manual_seed(14), d["freq"][:256], 8, 128, 16, 32, eos)}
    ev["synpair1"] = pair_rows(torch.Generator().manual_seed(17), pair_alpha, 8, 256, arrow, nl, eos, first_only=True)
    if args.new_from:
        ev["new"] = copy_batch(torch.Generator().manual_seed(15), ranked[args.new_from:args.alpha], eb, C, lo, hi, eos)
    wev = windows(torch.Generator().manual_seed(16), d["world"], 8, 256) if world_pairs else None
    log = []

    def evaluate(step, loss):
        model.eval()
        rec = {"step": step, "train_loss": round(loss, 3)}
        for k, (x, m) in ev.items():
            rec[k] = masked_eval(model, x, m)
        if world_pairs:
            with torch.no_grad():
                rec["world_loss"] = round(model(input_ids=wev, labels=wev).loss.item(), 3)
            if step % args.pair_every == 0 or step == args.steps:
                w_, wo, acc = icl_synth.pair_check(model, tok, xs, ys, n=60)
                rec["pair"] = [round(w_, 2), round(wo, 2), round(acc, 2)]
        rec["s"] = round(time.perf_counter() - t0, 1)
        log.append(rec)
        print(json.dumps(rec), flush=True)
        model.train()
        return rec

    print(f"stage: alphabet {len(alphabet)} ({args.alphabet_kind}), ln = {math.log(len(alphabet)):.2f}; "
          f"rows copy/synpair/doc/world = {n_copy}/{n_pair}/{n_doc}/{n_world} (replay {n_keep} over top {args.keep_alpha}); context {C}; seg {lo}-{hi}; lr {args.lr}", flush=True)
    evaluate(0, float("nan"))
    model.train()
    step = 0
    for step in range(1, args.steps + 1):
        parts = []
        if n_keep:  # replay: copy rows over the previous (small) alphabet at short range
            parts.append(copy_batch(gen, ranked[:args.keep_alpha], n_keep, C, args.keep_minlen, args.keep_maxlen, eos)[0])
        if n_copy - n_keep:
            parts.append(copy_batch(gen, alphabet, n_copy - n_keep, C, lo, hi, eos)[0])
        if n_pair:
            parts.append(pair_rows(gen, pair_alpha, n_pair, C, arrow, nl, eos, maxlines=args.pair_maxlines)[0])
        if n_doc:
            parts.append(windows(gen, d["docs"], n_doc, C))
        if n_world:
            parts.append(windows(gen, d["world"], n_world, C))
        x = torch.cat(parts)
        loss = model(input_ids=x, labels=x).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step(); sched.step(); opt.zero_grad(set_to_none=True)
        if step % args.eval_every == 0 or step == args.steps:
            rec = evaluate(step, loss.item())
            if args.stop_acc and rec["cur"][1] >= args.stop_acc:
                print(f"stop: cur copy acc {rec['cur'][1]} >= {args.stop_acc}", flush=True)
                break
    out = Path(args.out)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(out / "tiny-base"); tok.save_pretrained(out / "tiny-base")
    torch.save(opt.state_dict(), out / "opt.pt")
    secs = time.perf_counter() - t0
    (out / "log.json").write_text(json.dumps({"args": vars(args), "steps_run": step, "seconds": secs, "log": log}, indent=1))
    print(f"saved {out}; {step} steps; {secs:.0f} s", flush=True)


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    pp = sub.add_parser("prep")
    pp.add_argument("--out", required=True)
    s = sub.add_parser("stage")
    s.add_argument("--data", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--init", default="")
    for k, v in dict(steps=200, alpha=256, alpha_from=0, new_from=0, minlen=2, maxlen=8, context=32, warmup=20,
                     keep_alpha=0, pair_maxlines=16, keep_minlen=2, keep_maxlen=8,
                     eval_every=50, pair_every=100, seed=1).items():
        s.add_argument(f"--{k.replace('_', '-')}", type=int, default=v)
    for k, v in dict(lr=1e-3, copy_share=1.0, doc_share=0.0, pair_share=0.0, stop_acc=0.0, keep_share=0.0).items():
        s.add_argument(f"--{k.replace('_', '-')}", type=float, default=v)
    s.add_argument("--alphabet-kind", choices=["freq", "word"], default="freq")
    s.add_argument("--pair", action="store_true")
    s.add_argument("--fresh-opt", action="store_true")
    args = p.parse_args()
    {"prep": prep, "stage": stage}[args.cmd](args)


if __name__ == "__main__":
    main()
