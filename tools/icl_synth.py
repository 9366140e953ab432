"""Experiment 2: does the tiny base architecture form induction heads (copying) at all, and with what recipe?

    python tools/icl_synth.py synth --steps 400 --context 128 --lr 3e-3 --out /tmp/icl_exp2/s1
    python tools/icl_synth.py mix --steps 600 --warm 150 --share 0.1 --out /tmp/icl_exp2/m1
    python tools/icl_induction_experiment.py eval /tmp/icl_exp2/m1/tiny-base

``synth``: the BuildConfig architecture (Llama, RoPE) trained from scratch on 100% synthetic rows: each
row is a concatenation of segments ``<eos> s s`` where ``s`` is a fresh random token sequence of random
length (4..maxlen), so the second ``s`` can only be predicted by copying (an induction head: find the
previous occurrence of the current token, attend to the token after it). Reported: loss on the copyable
tokens (second copy, first token excluded) vs ln(V) ~ 7.6 for a model that does not copy.

``mix``: ftlab's world corpus and tokenizer (BuildConfig defaults), the same pre-training loop as
``ftlab.build.pretrain`` (AdamW, warm-up + cosine), but the first ``--warm`` steps are 100% synthetic
copy rows (random token ids of the real vocabulary), and afterwards a ``--share`` of the rows of every
batch are synthetic copy rows, the rest world-corpus windows. Reported every ``--eval-every`` steps: the
synthetic copy loss and the word-level pair check (NLL of the right y with its pair in the prompt vs
removed) in the lesson's ``x -> y`` format.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import time
from pathlib import Path

import torch

torch.set_num_threads(1)


def copy_rows(gen: torch.Generator, batch: int, context: int, vocab_lo: int, vocab_hi: int, eos: int,
              minlen: int = 4, maxlen: int = 40):
    """(batch, context) ids and a mask of the copyable positions (targets predictable only by copying)."""
    rows, masks = [], []
    for _ in range(batch):
        ids, mask = [], []
        while len(ids) < context + 1:
            n = int(torch.randint(minlen, maxlen + 1, (1,), generator=gen))
            s = torch.randint(vocab_lo, vocab_hi, (n,), generator=gen).tolist()
            ids += [eos] + s + s
            mask += [0] * (1 + n) + [0] + [1] * (n - 1)
        rows.append(ids[:context])
        masks.append(mask[:context])
    return torch.tensor(rows), torch.tensor(masks, dtype=torch.bool)


def copy_loss(model, gen, context, lo, hi, eos, n=4, minlen=4, maxlen=40):
    """Mean loss on the copyable positions of a fresh synthetic batch (label at position t is token t)."""
    x, m = copy_rows(gen, n * 4, context, lo, hi, eos, minlen, maxlen)
    with torch.no_grad():
        logits = model(input_ids=x).logits[:, :-1]
    lp = torch.log_softmax(logits.float(), -1).gather(-1, x[:, 1:, None])[..., 0]
    mm = m[:, 1:]
    acc = (logits.argmax(-1) == x[:, 1:])[mm].float().mean().item()
    return -lp[mm].mean().item(), acc


def make_model(vocab, hidden, layers, heads, context, inter, seed, eos=0, pad=1):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=inter, num_hidden_layers=layers,
                      num_attention_heads=heads, num_key_value_heads=heads, max_position_embeddings=context,
                      tie_word_embeddings=True, bos_token_id=eos, eos_token_id=eos, pad_token_id=pad)
    return LlamaForCausalLM(cfg)


def schedule(opt, steps, warmup_frac=0.05):
    warmup = max(1, int(steps * warmup_frac))
    return torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))


def synth(args):
    V = args.vocab
    model = make_model(V, args.hidden, args.layers, args.heads, args.context, args.inter, args.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.1, betas=(0.9, 0.95))
    sched = schedule(opt, args.steps)
    gen, egen = torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)
    t0 = time.perf_counter()
    log = []
    for step in range(1, args.steps + 1):
        x, _ = copy_rows(gen, args.batch, args.context, 3, 3 + args.alpha, 0, args.minlen, args.maxlen)
        model.train()
        loss = model(input_ids=x, labels=x).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step(); sched.step(); opt.zero_grad(set_to_none=True)
        if step % args.eval_every == 0 or step == args.steps:
            model.eval()
            cl, ca = copy_loss(model, egen, args.context, 3, 3 + args.alpha, 0, minlen=args.minlen, maxlen=args.maxlen)
            rec = {"step": step, "train_loss": round(loss.item(), 3), "copy_loss": round(cl, 3), "copy_acc": round(ca, 3),
                   "s": round(time.perf_counter() - t0, 1)}
            log.append(rec)
            print(json.dumps(rec), flush=True)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "log.json").write_text(json.dumps({"args": vars(args), "log": log}, indent=1))


# ---------------------------------------------------------------- word-level pair check (lesson format)

def pair_vocab(world):
    from ftlab.icl import MASCOTS
    import importlib.util
    spec = importlib.util.spec_from_file_location("ie", Path(__file__).with_name("icl_induction_experiment.py"))
    ie = importlib.util.module_from_spec(spec); spec.loader.exec_module(ie)
    wrng = random.Random(999)
    xs = sorted({f.subject for f in world.facts}) + [ie.made_up_word(wrng) for _ in range(300)]
    ys = sorted({f.object for f in world.facts}) + list(MASCOTS) + [ie.made_up_word(wrng).lower() for _ in range(100)]
    return xs, ys, ie


def pair_check(model, tok, xs, ys, n=100, k=8, seed=0):
    """Mean NLL (nats) of the right y: pair in the prompt vs the same prompt with the pair removed.
    Also greedy-first-token accuracy with the pair present."""
    from ftlab.icl import demo_line
    rng = random.Random(seed)
    with_, without, hits = [], [], 0
    model.eval()
    for _ in range(n):
        keys = rng.sample(xs, k)
        pairs = [(x, rng.choice(ys)) for x in keys]
        qx, qy = pairs[rng.randrange(k)]
        for present in (True, False):
            demos = pairs if present else [p for p in pairs if p[0] != qx]
            prompt = "".join(demo_line(x, y) for x, y in demos) + f"{qx} ->"
            p_ids = tok(prompt, add_special_tokens=False)["input_ids"]
            a_ids = tok(prompt + " " + qy, add_special_tokens=False)["input_ids"][len(p_ids):]
            ids = torch.tensor([p_ids + a_ids])
            with torch.no_grad():
                lp = torch.log_softmax(model(input_ids=ids).logits[0, len(p_ids) - 1:-1].float(), -1)
            nll = -lp.gather(-1, torch.tensor(a_ids)[:, None]).sum().item()
            (with_ if present else without).append(nll)
            if present:
                hits += int(lp[0].argmax().item() == a_ids[0])
    return sum(with_) / n, sum(without) / n, hits / n


def mix(args):
    from ftlab.build import BuildConfig, new_model, train_tokenizer
    from ftlab.world import World

    cfg = BuildConfig(pretrain_steps=args.steps, pretrain_lr=args.lr)
    random.seed(cfg.seed); torch.manual_seed(cfg.seed)
    world = World(cfg.seed)
    texts = list(world.corpus(cfg.corpus_docs)["text"])
    xs, ys, ie = pair_vocab(world)
    t0 = time.perf_counter()
    n_word = int(args.word_frac * len(texts))
    if n_word:  # optional word-level induction documents (as in experiment 1, variant b)
        rng = random.Random(12345)
        texts = texts + [ie.induction_doc(rng, xs, ys) for _ in range(n_word)]
        random.Random(7).shuffle(texts)
    tok = train_tokenizer(texts, cfg.vocab_size, cfg.context)
    model = new_model(cfg, tok)
    eos = tok.eos_token_id
    lo, hi = max(tok.all_special_ids) + 1, len(tok)
    ids: list[int] = []
    for enc in tok(texts, add_special_tokens=False)["input_ids"]:
        ids += enc + [eos]
    print(f"corpus {len(texts)} docs {len(ids):,} tokens; tokenizer+encode {time.perf_counter() - t0:.0f} s; "
          f"synthetic ids {lo}..{hi - 1}", flush=True)
    from ftlab.build import packed_batches
    batches = packed_batches(ids, cfg.context, cfg.pretrain_batch, cfg.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.pretrain_lr, weight_decay=0.1, betas=(0.9, 0.95))
    sched = schedule(opt, cfg.pretrain_steps)
    gen, egen = torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)
    stream = torch.tensor(ids)
    counts = torch.bincount(stream, minlength=len(tok)); counts[eos] = 0
    top = counts.argsort(descending=True)
    alphabet = top[:args.alpha]  # the most frequent real tokens

    def alpha_rows(g, b, ctx):  # phase 1: short segments over a small alphabet of real tokens
        x, m = copy_rows(g, b, ctx, 0, args.alpha, -1, 2, 8)
        return torch.where(x < 0, torch.tensor(eos), alphabet[x.clamp(min=0)]), m

    def span_rows(g, b, ctx):  # phase 2: repeated spans of real corpus text, segments 2..16 tokens
        rows, masks = [], []
        for _ in range(b):
            r, mk = [], []
            while len(r) < ctx:
                n = int(torch.randint(2, 17, (1,), generator=g)); o = int(torch.randint(0, len(ids) - n, (1,), generator=g))
                sp = ids[o:o + n]
                r += [eos] + sp + sp; mk += [0] * (2 + n) + [1] * (n - 1)
            rows.append(r[:ctx]); masks.append(mk[:ctx])
        return torch.tensor(rows), torch.tensor(masks, dtype=torch.bool)

    def masked_loss(x, m):
        with torch.no_grad():
            logits = model(input_ids=x).logits[:, :-1]
        lp = torch.log_softmax(logits.float(), -1).gather(-1, x[:, 1:, None])[..., 0]
        return -lp[m[:, 1:]].mean().item(), (logits.argmax(-1) == x[:, 1:])[m[:, 1:]].float().mean().item()

    n_syn = round(args.share * cfg.pretrain_batch)
    log = []
    ts = time.perf_counter()
    for step in range(1, cfg.pretrain_steps + 1):
        if step <= args.warm:
            x, _ = alpha_rows(gen, cfg.pretrain_batch, args.warm_context)
        else:
            x = next(batches)
            if n_syn and args.alpha2:
                x2, m2 = copy_rows(gen, n_syn, cfg.context, 0, args.alpha2, -1, 2, 12)
                s_ = torch.where(x2 < 0, torch.tensor(eos), top[x2.clamp(min=0)])
            elif n_syn:
                s_, _ = span_rows(gen, n_syn, cfg.context)
                x = torch.cat([x[:cfg.pretrain_batch - n_syn], s_])
        model.train()
        loss = model(input_ids=x, labels=x).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step(); sched.step(); opt.zero_grad(set_to_none=True)
        if step % args.eval_every == 0 or step == cfg.pretrain_steps:
            model.eval()
            ca_l, ca_a = masked_loss(*alpha_rows(torch.Generator().manual_seed(5), 16, args.warm_context))
            sp_l, sp_a = masked_loss(*span_rows(torch.Generator().manual_seed(6), 8, 128))
            rec = {"step": step, "loss": round(loss.item(), 3), "alpha_copy_loss": round(ca_l, 3), "alpha_copy_acc": round(ca_a, 3),
                   "span_copy_loss": round(sp_l, 3), "span_copy_acc": round(sp_a, 3), "s": round(time.perf_counter() - ts, 1)}
            if step % args.pair_every == 0 or step == cfg.pretrain_steps:
                w_, wo, acc = pair_check(model, tok, xs, ys, n=60)
                rec.update(pair_nll_with=round(w_, 2), pair_nll_without=round(wo, 2), pair_first_tok_acc=round(acc, 2))
            log.append(rec)
            print(json.dumps(rec), flush=True)
    out = Path(args.out) / "tiny-base"
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(out); tok.save_pretrained(out)
    (Path(args.out) / "log.json").write_text(json.dumps({"args": vars(args), "seconds": time.perf_counter() - t0,
                                                         "log": log}, indent=1))
    print(f"saved {out}; total {time.perf_counter() - t0:.0f} s", flush=True)


def check(args):
    from ftlab.models import load_model
    from ftlab.world import World
    model, tok = load_model(args.path)
    xs, ys, _ = pair_vocab(World(0))
    print(json.dumps(dict(zip(("nll_with", "nll_without", "first_tok_acc"), pair_check(model, tok, xs, ys, n=200)))))


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("synth")
    for k, v in dict(steps=400, context=128, batch=16, vocab=2048, hidden=192, layers=4, heads=6, inter=512,
                     seed=0, eval_every=25, alpha=2045, minlen=4, maxlen=40).items():
        s.add_argument(f"--{k.replace('_', '-')}", type=int, default=v)
    s.add_argument("--lr", type=float, default=3e-3)
    s.add_argument("--out", required=True)
    m = sub.add_parser("mix")
    for k, v in dict(steps=600, warm=150, eval_every=50, pair_every=100).items():
        m.add_argument(f"--{k.replace('_', '-')}", type=int, default=v)
    m.add_argument("--share", type=float, default=0.25)
    m.add_argument("--alpha", type=int, default=64)
    m.add_argument("--alpha2", type=int, default=0, help="phase 2: copy rows over the N most frequent tokens (0: corpus spans)")
    m.add_argument("--warm-context", type=int, default=32)
    m.add_argument("--word-frac", type=float, default=0.0)
    m.add_argument("--lr", type=float, default=1e-3)
    m.add_argument("--out", required=True)
    c = sub.add_parser("check")
    c.add_argument("path")
    args = p.parse_args()
    {"synth": synth, "mix": mix, "check": check}[args.cmd](args)


if __name__ == "__main__":
    main()
