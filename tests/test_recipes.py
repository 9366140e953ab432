"""`ftlab export-recipe`: each exported script runs on its own (no ftlab import) for a few steps on
the tiny model, on the CPU."""

import json
import subprocess
import sys

import pytest

from ftlab.models import resolve
from ftlab.recipes import DATA_RECIPES, RECIPES, UnknownRecipeError, export_recipe


def _data(world, kind, path):
    prefs = world.preferences()["train"].select(range(16))
    if kind in ("sft", "lora"):
        rows = [{"messages": m} for m in world.instructions()["train"]["messages"][:16]]
    elif kind == "rloo":
        rows = [{"prompt": p} for p in prefs["prompt"]]
    else:
        rows = [{"prompt": p, "chosen": c, "rejected": r} for p, c, r in zip(prefs["prompt"], prefs["chosen"], prefs["rejected"])]
    lines = [json.dumps(r) for r in rows]
    if kind in DATA_RECIPES:  # the sft, lora and dpo scripts check rows as `ftlab data check` does
        lines.insert(3, '{"prompt": "not valid JSON"')
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_exported_recipe_runs_standalone(recipe, world, tmp_path):
    """sft, lora and dpo are exported with --data (the file is copied next to the script and checked by the
    script's own copy of ftlab.data's loader); reward and rloo read --dataset."""
    out = tmp_path / recipe
    data = tmp_path / "data.jsonl"
    _data(world, recipe, data)
    export_recipe(recipe, out, data=data if recipe in DATA_RECIPES else None)
    script = (out / "train.py").read_text()
    assert "import ftlab" not in script and "from ftlab" not in script and "accelerate launch" in script
    assert "distributed_type: MULTI_GPU" in (out / "accelerate.yaml").read_text()
    cmd = [sys.executable, str(out / "train.py"), "--model", resolve("tiny-chat"),
           "--max-steps", "2", "--batch-size", "4", "--output-dir", str(tmp_path / "run")]
    if recipe in DATA_RECIPES:
        assert (out / "data.jsonl").read_bytes() == data.read_bytes()
        data.unlink()  # the script reads its own copy
    else:
        cmd += ["--dataset", str(data)]
    if recipe == "rloo":
        cmd += ["--reward-model", resolve("tiny-chat"), "--max-completion-length", "8"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path,
                          env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert any((tmp_path / "run").iterdir())
    if recipe in DATA_RECIPES:
        assert "line 4: not valid JSON" in proc.stdout and "16 kept (0 of them fixed), 1 refused" in proc.stdout
        assert "held-out loss after training:" in proc.stdout, proc.stdout[-2000:]


def test_export_with_data_refuses_what_the_recipe_cannot_train(world, tmp_path, capsys):
    from ftlab.cli import main

    pairs = tmp_path / "pairs.jsonl"
    _data(world, "dpo", pairs)
    assert main(["export-recipe", "sft", str(tmp_path / "sft"), "--data", str(pairs)]) == 2
    assert "no usable conversations" in capsys.readouterr().err and not (tmp_path / "sft").exists()
    assert main(["export-recipe", "reward", str(tmp_path / "r"), "--data", str(pairs)]) == 2
    assert "--data works with the recipes sft, lora, dpo" in capsys.readouterr().err
    assert main(["export-recipe", "dpo", str(tmp_path / "dpo"), "--data", str(pairs)]) == 0
    out = capsys.readouterr().out
    assert "16 kept (0 of them fixed), 1 refused" in out and "line 4: not valid JSON" in out
    assert "DATA_FILE = 'data.jsonl'" in (tmp_path / "dpo" / "train.py").read_text()


def test_unknown_recipe_lists_the_known_ones(tmp_path):
    with pytest.raises(UnknownRecipeError, match="sft.*lora.*reward.*rloo.*dpo"):
        export_recipe("ppo", tmp_path)
