"""The release check's switches (``make test-real-lessons``): ``FTLAB_DEVICE=cpu`` puts the gpu profile's code path
on the CPU, ``FTLAB_SMOKE_STEPS`` caps every training run, and a smoke run reports a failing lesson check instead
of raising it, while any other exception still stops the cell."""

import ast

import pytest

import ftlab
from ftlab.profiles import choose_profile
from ftlab.smoke import MARK, _ReportAsserts


def test_gpu_profile_forced_onto_the_cpu(monkeypatch):
    monkeypatch.setenv("FTLAB_DEVICE", "cpu")
    p = choose_profile("gpu")
    assert (p.name, p.device, p.dtype, p.mixed_precision) == ("gpu", "cpu", "bfloat16", "bf16")
    assert p.trl_defaults()["bf16"] and p.trl_defaults()["use_cpu"]
    assert p.steps == ftlab.profiles.GPU_STEPS and p.smoke_steps is None


def test_without_the_override_the_gpu_profile_still_needs_a_gpu(monkeypatch):
    monkeypatch.delenv("FTLAB_DEVICE", raising=False)
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    with pytest.raises(RuntimeError, match="needs a CUDA GPU"):
        choose_profile("gpu")


@pytest.mark.parametrize("env,value", [("FTLAB_DEVICE", "tpu"), ("FTLAB_SMOKE_STEPS", "0"), ("FTLAB_SMOKE_STEPS", "2.5")])
def test_bad_switches_say_what_to_do(monkeypatch, env, value):
    monkeypatch.setenv(env, value)
    with pytest.raises(ValueError, match=env):
        choose_profile("cpu")


def test_smoke_steps_cap_every_training_run(monkeypatch):
    from ftlab.training import _base_args, sft_config

    monkeypatch.setenv("FTLAB_SMOKE_STEPS", "2")
    p = choose_profile("cpu")
    assert p.smoke_steps == 2 and "Smoke run" in p.describe()
    assert sft_config(p, max_steps=100).max_steps == 2
    assert _base_args(p, "rl", {})["max_steps"] == 2 and _base_args(p, "rl", {})["warmup_steps"] <= 1


def test_a_shared_base_is_said(monkeypatch):
    monkeypatch.setenv("FTLAB_BASE_MODEL", "tiny-chat")
    assert "stands in for the base" in choose_profile("cpu").describe()
    monkeypatch.delenv("FTLAB_BASE_MODEL")
    assert "stands in for the base" not in choose_profile("cpu").describe()


def _run_cell(code: str) -> None:
    tree = ast.fix_missing_locations(_ReportAsserts(3).visit(ast.parse(code)))
    exec(compile(tree, "<cell>", "exec"), {})


def test_a_failing_check_is_reported_and_the_cell_goes_on(capsys):
    _run_cell("x = 1\nassert x == 2, ('why', x)\nprint('after')\nassert x == 1")
    out = capsys.readouterr().out
    assert MARK in out and "assert x == 2 (('why', 1))" in out and out.rstrip().endswith("after")
    assert out.count(MARK) == 1


def test_other_errors_still_stop_the_cell():
    with pytest.raises(ZeroDivisionError):
        _run_cell("assert 1 / 0")
    with pytest.raises(KeyError):
        _run_cell("{}['k']")
