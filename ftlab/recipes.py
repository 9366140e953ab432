"""``ftlab export-recipe``: a lesson's training recipe as a standalone script (plain TRL + PEFT, no
ftlab import) plus an ``accelerate`` config, to run on real models and several GPUs.

The ``sft``, ``lora`` and ``dpo`` scripts read their data the way ``ftlab data check`` does: the
loading code of ``ftlab/data.py`` is copied into them. ``--data FILE`` checks FILE now, copies it next
to the script and makes it the script's default ``--dataset``.
"""

from __future__ import annotations

import shutil
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


DATA_RECIPES = {"sft": "conversations", "lora": "conversations", "dpo": "preferences"}


class UnknownRecipeError(ValueError):
    pass


def recipe_source(name: str) -> str:
    """The script for ``name``, with the shared helpers copied in so it imports nothing from ftlab."""
    if name not in RECIPES:
        raise UnknownRecipeError(f"No recipe {name!r}. Recipes: " + "; ".join(f"{k} ({v})" for k, v in RECIPES.items()))
    from ftlab.data import standalone_source

    common = (RECIPES_DIR / "_common.py").read_text(encoding="utf-8")
    data = standalone_source() + (RECIPES_DIR / "_data.py").read_text(encoding="utf-8")
    return (RECIPES_DIR / f"{name}.py").read_text(encoding="utf-8").replace("#COMMON\n", common, 1).replace(
        "#DATA\n", data, 1)


def check_data(name: str, data: str | Path):
    """``data`` read and checked as recipe ``name`` will read it (rows only: the script counts tokens with
    its model's tokenizer); the ``Report``. Raises ``UnknownRecipeError`` for a recipe that takes no ``--data``."""
    from ftlab.data import load

    if name not in DATA_RECIPES:
        raise UnknownRecipeError(f"--data works with the recipes {', '.join(DATA_RECIPES)}; {name!r} reads "
                                 "its data with --dataset when it runs.")
    return load(data, kind=DATA_RECIPES[name]).report


def export_recipe(name: str, out_dir: str | Path, data: str | Path | None = None) -> list[Path]:
    """Write ``train.py``, ``accelerate.yaml`` and a short ``README.md`` for recipe ``name`` into ``out_dir``.

    With ``data`` (sft, lora, dpo): refuse it if no row can be used (``check_data``), else copy it into
    ``out_dir`` as the script's default ``--dataset``."""
    source = recipe_source(name)
    if data is not None:
        report = check_data(name, data)
        if not report.kept:
            raise ValueError(f"{data}: no usable {DATA_RECIPES[name]} for the {name} recipe.\n{report}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(20, "it is a file; name a folder for train.py, accelerate.yaml and README.md")
    out.mkdir(parents=True, exist_ok=True)
    if data is not None:
        src = Path(data)
        copied = out / ("data" if src.is_dir() else "data" + src.suffix.lower())
        if src.is_dir():
            shutil.copytree(src, copied, dirs_exist_ok=True)
        else:
            shutil.copyfile(src, copied)
        source = source.replace("DATA_FILE = None ", f"DATA_FILE = {copied.name!r} ", 1)
    script = out / "train.py"
    script.write_text(source, encoding="utf-8")
    config = out / "accelerate.yaml"
    config.write_text((RECIPES_DIR / "accelerate.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    extra = " --reward-model REWARD_MODEL_DIR" if name == "rloo" else ""
    dataset = "" if data is not None else " --dataset DATA"
    shapes = ("conversations: chat 'messages', 'prompt'/'completion', or Alpaca 'instruction'/'input'/'output'"
              if DATA_RECIPES.get(name) == "conversations" else f"the column(s) {EXAMPLE_DATA[name]}")
    bundled = f"`{copied.name}` (copied here by `ftlab export-recipe --data`) is the default `--dataset`.\n" if data else ""
    readme = out / "README.md"
    readme.write_text(
        f"# {name}: {RECIPES[name]}\n\nStandalone: needs torch, transformers, trl, peft, datasets, accelerate.\n"
        f"The dataset needs {shapes}.\n{bundled}"
        + ("Every row is checked before training, as `ftlab data check` does; refused rows are listed and left out.\n"
           if name in DATA_RECIPES else "") +
        f"\n```bash\npython train.py --model HuggingFaceTB/SmolLM2-135M-Instruct{dataset}{extra} --max-steps 500\n"
        f"accelerate launch --config_file accelerate.yaml train.py --model ...{dataset}{extra}\n```\n",
        encoding="utf-8")
    return [script, config, readme]
