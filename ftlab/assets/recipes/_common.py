# --- shared by every exported recipe (copied in; no ftlab import) --------------------------------
DATA_FILE = None  # `ftlab export-recipe ... --data FILE` copies FILE next to this script and names it here
import argparse
import os

import torch
from datasets import load_dataset, load_from_disk


def arguments(description: str, **defaults):
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--model", required=True, help="hub id (e.g. HuggingFaceTB/SmolLM2-135M) or a local folder")
    data_file = DATA_FILE and os.path.join(os.path.dirname(os.path.abspath(__file__)), DATA_FILE)
    parser.add_argument("--dataset", required=data_file is None, default=data_file,
                        help="hub id, a .jsonl/.json/.csv/.parquet file, or a save_to_disk folder"
                             + (f" (default: {DATA_FILE}, exported with this script)" if data_file else ""))
    parser.add_argument("--split", default="train")
    parser.add_argument("--output-dir", default=defaults.get("output_dir", "out"))
    parser.add_argument("--max-steps", type=int, default=defaults.get("max_steps", 500))
    parser.add_argument("--learning-rate", type=float, default=defaults.get("learning_rate", 5e-5))
    parser.add_argument("--batch-size", type=int, default=defaults.get("batch_size", 8))
    parser.add_argument("--gradient-accumulation-steps", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    return parser


def load_data(source: str, split: str):
    if os.path.isdir(source):
        data = load_from_disk(source)
        return data[split] if hasattr(data, "keys") and split in data else data
    if source.endswith((".json", ".jsonl")):
        return load_dataset("json", data_files=source, split="train")
    return load_dataset(source, split=split)


def precision() -> dict:
    """bf16 autocast where the GPU does it natively, fp16 autocast on older GPUs (a T4, which reports bf16
    through slow emulation unless asked with including_emulation=False), none on the CPU."""
    if torch.cuda.is_available():
        bf16 = torch.cuda.is_bf16_supported(including_emulation=False)
        return {"bf16": bf16, "fp16": not bf16}
    return {"bf16": False, "fp16": False}


def weights_dtype(frozen_base: bool = False):
    """The dtype to load weights in. What trains is fp32 (mixed precision keeps fp32 weights and fp32 AdamW
    states; autocast computes in 16 bits); a frozen LoRA base is loaded in the 16-bit compute dtype."""
    mixed = precision()
    if frozen_base and mixed["bf16"]:
        return torch.bfloat16
    if frozen_base and mixed["fp16"]:
        return torch.float16
    return torch.float32


def trainables_in_fp32(trainer):
    """Every parameter that trains in fp32 (TRL casts QLoRA adapters to bf16; a 16-bit checkpoint loads so):
    call after building the trainer, before trainer.train()."""
    if trainer.args.bf16 or trainer.args.fp16:
        for param in trainer.model.parameters():
            if param.requires_grad and param.dtype != torch.float32:
                param.data = param.data.float()
    return trainer


def common_config(args) -> dict:
    return dict(output_dir=args.output_dir, max_steps=args.max_steps, learning_rate=args.learning_rate,
                per_device_train_batch_size=args.batch_size, gradient_accumulation_steps=args.gradient_accumulation_steps,
                seed=args.seed, logging_steps=10, save_strategy="no", report_to="none", lr_scheduler_type="cosine",
                warmup_steps=5, use_cpu=not torch.cuda.is_available(), **precision())
# -------------------------------------------------------------------------------------------------
