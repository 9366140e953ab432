"""Reward model (lesson 4's recipe): preference pairs (`prompt`, `chosen`, `rejected`) and TRL's
RewardTrainer (Bradley–Terry loss) on a one-output head. Run with `accelerate launch --config_file accelerate.yaml train.py ...`."""
#COMMON
from transformers import AutoModelForSequenceClassification, AutoTokenizer
from trl import RewardConfig, RewardTrainer


def main():
    args = arguments(__doc__, learning_rate=2e-5).parse_args()
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForSequenceClassification.from_pretrained(args.model, num_labels=1, dtype=weights_dtype())
    model.config.pad_token_id = tokenizer.pad_token_id
    pairs = load_data(args.dataset, args.split).select_columns(["prompt", "chosen", "rejected"])
    trainer = RewardTrainer(model=model, args=RewardConfig(**common_config(args), max_length=512),
                            train_dataset=pairs, processing_class=tokenizer)
    trainables_in_fp32(trainer).train()
    trainer.save_model(args.output_dir)


if __name__ == "__main__":
    main()
