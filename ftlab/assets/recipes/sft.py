"""Supervised fine-tuning (lesson 2's recipe): conversations in a `messages` column, loss on the
assistant's tokens only, with TRL's SFTTrainer. Run with `accelerate launch --config_file accelerate.yaml train.py ...`."""
#COMMON
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import SFTConfig, SFTTrainer


def main():
    args = arguments(__doc__, learning_rate=5e-5).parse_args()
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model)
    config = SFTConfig(**common_config(args), max_length=512, assistant_only_loss=True)
    trainer = SFTTrainer(model=model, args=config, train_dataset=load_data(args.dataset, args.split),
                         processing_class=tokenizer)
    trainer.train()
    trainer.save_model(args.output_dir)


if __name__ == "__main__":
    main()
