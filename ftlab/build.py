"""``ftlab build-models``: rebuild tiny-base and tiny-chat from the world, reproducibly.

1. train a byte-level BPE tokenizer on the corpus (``tokenizers``);
2. pretrain a small Llama (``transformers.LlamaForCausalLM``) on packed corpus text with a plain
   PyTorch loop (the fastest way on two CPU cores);
3. supervised fine-tuning with TRL's ``SFTTrainer`` (loss on assistant tokens only) gives tiny-chat.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ftlab.formatting import CHAT_TEMPLATE
from ftlab.world import World

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>"]

@dataclass
class BuildConfig:
    """Everything that decides the bundled models. Change a field, rebuild, get a different model."""

    seed: int = 0
    vocab_size: int = 2048
    hidden_size: int = 192
    intermediate_size: int = 512
    num_layers: int = 4
    num_heads: int = 6
    context: int = 256
    corpus_docs: int = 60000
    pretrain_steps: int = 1500
    pretrain_batch: int = 16
    pretrain_lr: float = 3e-3
    sft_epochs: int = 3
    sft_lr: float = 1e-3
    sft_batch: int = 16

    @classmethod
    def smoke(cls) -> "BuildConfig":
        """A few steps of everything: proves the pipeline runs (CI), not a useful model."""
        return cls(corpus_docs=500, pretrain_steps=5, sft_epochs=1, vocab_size=512)


def train_tokenizer(texts: list[str], vocab_size: int, context: int = 256):
    """A byte-level BPE tokenizer with ChatML special tokens, wrapped for ``transformers``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", bos_token="<|endoftext|>",
                                   pad_token="<|pad|>", extra_special_tokens=["<|im_start|>", "<|im_end|>"],
                                   chat_template=CHAT_TEMPLATE, model_max_length=context)


def new_model(cfg: BuildConfig, tokenizer):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=cfg.hidden_size, intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers, num_attention_heads=cfg.num_heads, num_key_value_heads=cfg.num_heads,
        max_position_embeddings=cfg.context, tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(cfg.seed)
    return LlamaForCausalLM(config)


def packed_batches(token_ids: list[int], context: int, batch: int, seed: int):
    """Endless batches of ``context``-long windows cut from one long stream of documents."""
    data = torch.tensor(token_ids, dtype=torch.long)
    n = (len(data) - 1) // context
    rng = torch.Generator().manual_seed(seed)
    while True:
        order = torch.randperm(n, generator=rng)
        for i in range(0, n - batch + 1, batch):
            starts = order[i:i + batch] * context
            yield torch.stack([data[s:s + context] for s in starts])


def pretrain(model, tokenizer, texts: list[str], cfg: BuildConfig, log=print):
    """Next-token prediction on the packed corpus, AdamW with warm-up and cosine decay."""
    eos = tokenizer.eos_token_id
    ids: list[int] = []
    for enc in tokenizer(texts, add_special_tokens=False)["input_ids"]:
        ids += enc + [eos]
    log(f"corpus: {len(texts)} documents, {len(ids):,} tokens")
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.pretrain_lr, weight_decay=0.1, betas=(0.9, 0.95))
    warmup = max(1, cfg.pretrain_steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, cfg.pretrain_steps) / cfg.pretrain_steps)))
    model.train()
    batches = packed_batches(ids, cfg.context, cfg.pretrain_batch, cfg.seed)
    start = time.perf_counter()
    for step in range(1, cfg.pretrain_steps + 1):
        x = next(batches)
        loss = model(input_ids=x, labels=x).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        if step % 50 == 0 or step == cfg.pretrain_steps:
            rate = step * x.numel() / (time.perf_counter() - start)
            log(f"pretrain step {step}/{cfg.pretrain_steps}  loss {loss.item():.3f}  {rate:,.0f} tok/s")
    model.eval()
    return model


def sft(model, tokenizer, dataset, cfg: BuildConfig):
    """tiny-chat: the lessons' own SFT wrapper (TRL's SFTTrainer), assistant tokens only, cpu profile."""
    from ftlab.profiles import choose_profile
    from ftlab.training import train_sft

    run = train_sft(model, tokenizer, dataset, choose_profile("cpu", seed=cfg.seed), assistant_only_loss=True,
                    num_train_epochs=cfg.sft_epochs, max_steps=-1, learning_rate=cfg.sft_lr,
                    per_device_train_batch_size=cfg.sft_batch, max_length=cfg.context, warmup_steps=10,
                    logging_steps=20, disable_tqdm=True)
    return run.model


def build_models(out: Path, cfg: BuildConfig | None = None, log=print) -> dict[str, Path]:
    """Build tiny-base and tiny-chat into ``out/`` and return their folders."""
    cfg = cfg or BuildConfig()
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    world = World(cfg.seed)
    texts = list(world.corpus(cfg.corpus_docs)["text"])
    tokenizer = train_tokenizer(texts, cfg.vocab_size, cfg.context)
    model = new_model(cfg, tokenizer)
    log(f"tiny-base: {sum(p.numel() for p in model.parameters()):,} parameters, vocabulary {len(tokenizer)}")
    pretrain(model, tokenizer, texts, cfg, log)
    base_dir = Path(out) / "tiny-base"
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(base_dir)
    tokenizer.save_pretrained(base_dir)

    # the chat model ends its turns with <|im_end|>: that is its end-of-sequence token
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    tokenizer.eos_token = "<|im_end|>"
    model = sft(model, tokenizer, world.instructions()["train"], cfg)
    chat_dir = Path(out) / "tiny-chat"
    model.config.eos_token_id = im_end
    model.generation_config.eos_token_id = [im_end, tokenizer.convert_tokens_to_ids("<|endoftext|>")]
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(chat_dir)
    tokenizer.save_pretrained(chat_dir)
    return {"tiny-base": base_dir, "tiny-chat": chat_dir}
