"""Direct preference optimisation (lesson 4's recipe): preference pairs and TRL's DPOTrainer, with
the SFT loss on the chosen reply added (RPO), as in the lesson. Run with `accelerate launch --config_file accelerate.yaml train.py ...`."""
#COMMON
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import DPOConfig, DPOTrainer


def main():
    parser = arguments(__doc__, learning_rate=1e-6)
    parser.add_argument("--beta", type=float, default=0.1)
    args = parser.parse_args()
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model)
    config = DPOConfig(**common_config(args), beta=args.beta, loss_type=["sigmoid", "sft"], max_length=512)
    pairs = load_data(args.dataset, args.split).select_columns(["prompt", "chosen", "rejected"])
    trainer = DPOTrainer(model=model, args=config, train_dataset=pairs, processing_class=tokenizer)
    trainer.train()
    trainer.save_model(args.output_dir)


if __name__ == "__main__":
    main()
