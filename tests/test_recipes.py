"""`ftlab export-recipe`: each exported script runs on its own (no ftlab import) for a few steps on
the tiny model, on the CPU."""

import json
import subprocess
import sys

import pytest

from ftlab.models import resolve
from ftlab.recipes import RECIPES, UnknownRecipeError, export_recipe


def _data(world, kind, path):
    prefs = world.preferences()["train"].select(range(16))
    if kind in ("sft", "lora"):
        rows = [{"messages": m} for m in world.instructions()["train"]["messages"][:16]]
    elif kind == "rloo":
        rows = [{"prompt": p} for p in prefs["prompt"]]
    else:
        rows = [{"prompt": p, "chosen": c, "rejected": r} for p, c, r in zip(prefs["prompt"], prefs["chosen"], prefs["rejected"])]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_exported_recipe_runs_standalone(recipe, world, tmp_path):
    out = tmp_path / recipe
    export_recipe(recipe, out)
    script = (out / "train.py").read_text()
    assert "import ftlab" not in script and "from ftlab" not in script and "accelerate launch" in script
    assert "distributed_type: MULTI_GPU" in (out / "accelerate.yaml").read_text()
    data = tmp_path / "data.jsonl"
    _data(world, recipe, data)
    cmd = [sys.executable, str(out / "train.py"), "--model", resolve("tiny-chat"), "--dataset", str(data),
           "--max-steps", "2", "--batch-size", "4", "--output-dir", str(tmp_path / "run")]
    if recipe == "rloo":
        cmd += ["--reward-model", resolve("tiny-chat"), "--max-completion-length", "8"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path,
                          env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert any((tmp_path / "run").iterdir())


def test_unknown_recipe_lists_the_known_ones(tmp_path):
    with pytest.raises(UnknownRecipeError, match="sft.*lora.*reward.*rloo.*dpo"):
        export_recipe("ppo", tmp_path)
