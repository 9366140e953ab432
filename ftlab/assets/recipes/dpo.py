"""Direct preference optimisation (lesson 4's recipe): preference pairs and TRL's DPOTrainer, with
the SFT loss on the chosen reply added (RPO), as in the lesson. Run with `accelerate launch --config_file accelerate.yaml train.py ...`."""
#COMMON
#DATA
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import DPOConfig, DPOTrainer


def main():
    parser = data_arguments(arguments(__doc__, learning_rate=1e-6))
    parser.add_argument("--beta", type=float, default=0.1)
    args = parser.parse_args()
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    data = checked_data(args, tokenizer, "preferences")
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=weights_dtype())
    config = DPOConfig(**common_config(args), beta=args.beta, loss_type=["sigmoid", "sft"], max_length=args.max_length)
    trainer = DPOTrainer(model=model, args=config, train_dataset=data.train, processing_class=tokenizer)
    trainables_in_fp32(trainer).train()
    held_out_loss(trainer, data)
    trainer.save_model(args.output_dir)


if __name__ == "__main__":
    main()
