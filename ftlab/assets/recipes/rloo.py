"""Online RL against a reward model with a KL leash (lesson 4's recipe): TRL's RLOOTrainer samples
`--num-generations` replies per prompt and uses the others' mean reward as each one's baseline.
Run with `accelerate launch --config_file accelerate.yaml train.py ...`."""
#COMMON
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer
from trl import RLOOConfig, RLOOTrainer


def main():
    parser = arguments(__doc__, learning_rate=3e-6)
    parser.add_argument("--reward-model", required=True, help="a reward model folder (e.g. from the reward recipe)")
    parser.add_argument("--beta", type=float, default=0.05, help="KL penalty to the starting model (0: no leash)")
    parser.add_argument("--num-generations", type=int, default=4)
    parser.add_argument("--max-completion-length", type=int, default=128)
    args = parser.parse_args()
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    reward_tokenizer = AutoTokenizer.from_pretrained(args.reward_model)
    reward_model = AutoModelForSequenceClassification.from_pretrained(args.reward_model, num_labels=1)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=weights_dtype())
    config = RLOOConfig(**common_config(args), beta=args.beta, num_generations=args.num_generations,
                        max_completion_length=args.max_completion_length)
    prompts = load_data(args.dataset, args.split).select_columns(["prompt"])
    trainer = RLOOTrainer(model=model, reward_funcs=reward_model, args=config, train_dataset=prompts,
                          processing_class=tokenizer, reward_processing_classes=reward_tokenizer)
    trainables_in_fp32(trainer).train()
    trainer.save_model(args.output_dir)


if __name__ == "__main__":
    main()
