"""Bad input gets one line that says what to do (exit status 2 on the command line), never a traceback or
silent nonsense (issue 30, item 7)."""

import pytest

from ftlab.cli import main


def _refused(argv, capsys, *needles):
    rc = main(argv)
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.count("\n") == 0 and "Traceback" not in err, (rc, err)
    for needle in needles:
        assert needle in err, err
    return err


@pytest.mark.parametrize("flag,value,needle", [("--jobs", "0", "--jobs must be 1 or more"),
                                               ("--timeout", "-5", "--timeout must be more than 0"),
                                               ("--memory", "0", "--memory must be 1 or more")])
def test_grade_refuses_numbers_that_cannot_work(tmp_path, capsys, flag, value, needle):
    """--memory 0 used to lift the memory limit without a word."""
    _refused(["grade", str(tmp_path), "--exercise", "02", "--out", str(tmp_path / "g.csv"), flag, value], capsys,
             needle, "e.g.")
    assert not (tmp_path / "g.csv").exists()


def test_data_check_refuses_a_negative_max_length(tmp_path, capsys):
    data = tmp_path / "d.jsonl"
    data.write_text('{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}\n')
    err = _refused(["data", "check", str(data), "--max-length", "-5"], capsys, "--max-length must be 1 or more")
    assert "first -5" not in err


def test_bench_write_readme_without_its_json(tmp_path, capsys):
    _refused(["bench", "--write-readme", str(tmp_path / "missing.json")], capsys, "no file", "ftlab bench --out")
    wrong = tmp_path / "wrong.json"
    wrong.write_text("{not json")
    _refused(["bench", "--write-readme", str(wrong)], capsys, "cannot read", "ftlab bench --out")


@pytest.mark.parametrize("batch_size", [0, -1, 2.5])
def test_generate_refuses_a_batch_size_below_one(tiny_chat, batch_size):
    from ftlab.generation import generate

    model, tok = tiny_chat
    with pytest.raises(ValueError, match="batch_size must be a whole number of prompts, 1 or more") as err:
        generate(model, tok, ["Hi"], batch_size=batch_size)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("kwargs,needle", [
    (dict(r=0), "rank r must be a whole number, 1 or more"), (dict(r=-1), "rank r must be"),
    (dict(r=2.5), "rank r must be"), (dict(r=4, alpha=-1), "alpha must be a positive number"),
    (dict(r=4, dropout=2.0), "dropout is a probability"), (dict(r=4, dropout=-0.1), "dropout is a probability")])
def test_lora_config_refuses_values_that_cannot_work(tiny_chat, kwargs, needle):
    from ftlab.lora import lora_config

    with pytest.raises(ValueError, match=needle) as err:
        lora_config(tiny_chat[0], **kwargs)
    assert "\n" not in str(err.value)


def test_lora_config_takes_one_target_as_a_string(tiny_chat):
    """A string used to be split into characters ('q', '_', 'p', ...) and refused as unknown layers."""
    import copy

    from peft import get_peft_model

    from ftlab.lora import LoraTargetError, lora_config

    config = lora_config(tiny_chat[0], r=4, targets="q_proj")
    assert set(config.target_modules) == {"q_proj"}
    adapted = get_peft_model(copy.deepcopy(tiny_chat[0]), config)
    assert {n.split(".")[-4] for n, p in adapted.named_parameters() if p.requires_grad} == {"q_proj"}
    with pytest.raises(LoraTargetError, match=r"\['query'\]"):
        lora_config(tiny_chat[0], r=4, targets="query")
