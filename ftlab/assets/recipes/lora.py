"""LoRA fine-tuning (lesson 3's recipe): SFT with a PEFT LoRA adapter on the attention and MLP
projections; only the adapter is trained and saved. Run with `accelerate launch --config_file accelerate.yaml train.py ...`."""
#COMMON
#DATA
from peft import LoraConfig
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import SFTConfig, SFTTrainer


def main():
    parser = data_arguments(arguments(__doc__, learning_rate=2e-4))
    parser.add_argument("--rank", type=int, default=16)
    args = parser.parse_args()
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    data = checked_data(args, tokenizer, "conversations")
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=weights_dtype(frozen_base=True))
    lora = LoraConfig(r=args.rank, lora_alpha=2 * args.rank, target_modules="all-linear", task_type="CAUSAL_LM")
    config = SFTConfig(**common_config(args), max_length=args.max_length, assistant_only_loss=True)
    trainer = SFTTrainer(model=model, args=config, train_dataset=data.train, processing_class=tokenizer,
                         peft_config=lora)
    trainables_in_fp32(trainer).train()
    held_out_loss(trainer, data)
    trainer.save_model(args.output_dir)  # the adapter only: a few MB


if __name__ == "__main__":
    main()
