"""``ftlab export-recipe``: a lesson's training recipe as a standalone script (plain TRL + PEFT, no
ftlab import) plus an ``accelerate`` config, to run on real models and several GPUs."""

from __future__ import annotations

from pathlib import Path

RECIPES_DIR = Path(__file__).parent / "assets" / "recipes"
RECIPES = {
    "sft": "lesson 2: supervised fine-tuning on conversations, loss on assistant tokens only",
    "lora": "lesson 3: LoRA adapter fine-tuning",
    "reward": "lesson 4: reward model on preference pairs (Bradley–Terry)",
    "rloo": "lesson 4: online RL (RLOO) against a reward model, with a KL penalty",
    "dpo": "lesson 4: DPO on preference pairs",
}
EXAMPLE_DATA = {"sft": "messages", "lora": "messages", "reward": "prompt/chosen/rejected",
                "rloo": "prompt", "dpo": "prompt/chosen/rejected"}


class UnknownRecipeError(ValueError):
    pass


def recipe_source(name: str) -> str:
    """The script for ``name``, with the shared helpers copied in so it imports nothing from ftlab."""
    if name not in RECIPES:
        raise UnknownRecipeError(f"No recipe {name!r}. Recipes: " + "; ".join(f"{k} ({v})" for k, v in RECIPES.items()))
    common = (RECIPES_DIR / "_common.py").read_text(encoding="utf-8")
    return (RECIPES_DIR / f"{name}.py").read_text(encoding="utf-8").replace("#COMMON\n", common, 1)


def export_recipe(name: str, out_dir: str | Path) -> list[Path]:
    """Write ``train.py``, ``accelerate.yaml`` and a short ``README.md`` for recipe ``name`` into ``out_dir``."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(20, "it is a file; name a folder for train.py, accelerate.yaml and README.md")
    out.mkdir(parents=True, exist_ok=True)
    script = out / "train.py"
    script.write_text(recipe_source(name), encoding="utf-8")
    config = out / "accelerate.yaml"
    config.write_text((RECIPES_DIR / "accelerate.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    extra = " --reward-model REWARD_MODEL_DIR" if name == "rloo" else ""
    readme = out / "README.md"
    readme.write_text(
        f"# {name}: {RECIPES[name]}\n\nStandalone: needs torch, transformers, trl, peft, datasets, accelerate.\n"
        f"The dataset needs the column(s) {EXAMPLE_DATA[name]}.\n\n```bash\n"
        f"python train.py --model HuggingFaceTB/SmolLM2-135M-Instruct --dataset DATA{extra} --max-steps 500\n"
        f"accelerate launch --config_file accelerate.yaml train.py --model ... --dataset ...{extra}\n```\n",
        encoding="utf-8")
    return [script, config, readme]
