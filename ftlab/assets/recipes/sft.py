"""Supervised fine-tuning (lesson 2's recipe): conversations in a `messages` column, loss on the
assistant's tokens only, with TRL's SFTTrainer. Run with `accelerate launch --config_file accelerate.yaml train.py ...`."""
#COMMON
#DATA
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import SFTConfig, SFTTrainer


def main():
    args = data_arguments(arguments(__doc__, learning_rate=5e-5)).parse_args()
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    data = checked_data(args, tokenizer, "conversations")
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=weights_dtype())
    config = SFTConfig(**common_config(args), max_length=args.max_length, assistant_only_loss=True)
    trainer = SFTTrainer(model=model, args=config, train_dataset=data.train, processing_class=tokenizer)
    trainables_in_fp32(trainer).train()
    held_out_loss(trainer, data)
    trainer.save_model(args.output_dir)


if __name__ == "__main__":
    main()
