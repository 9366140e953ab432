"""One precision policy on every training route (issue 30, item 1): under bf16 and fp16 mixed precision the
trained weights and AdamW's states are fp32 and a frozen base is 16-bit, whether training goes through
``ftlab.training``, plain TRL with ``profile.trl_defaults()``, or an exported recipe.

On the CPU: the profile is chosen on a faked GPU (an A100: native bf16; a T4: bf16 only through emulation)
and then run on the CPU, where bf16 and fp16 autocast both exist. Each route takes one real AdamW step at a
learning rate that moves the typical weight by 1e-6 of its size: in 16 bits that update rounds away
(bf16 keeps ~3 significant digits, fp16 ~4), in fp32 it does not."""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import replace

import pytest
import torch

import ftlab
from ftlab.profiles import GPU_LR, choose_profile

RELATIVE = 1e-6
INIT_SCALE = 2.0**10  # GradScaler starts at 2**16: its first fp16 backward overflows here and the step is skipped, as on a GPU


def _gpu_profile(monkeypatch, native_bf16: bool):
    monkeypatch.delenv("FTLAB_PROFILE", raising=False)
    for key in ("FTLAB_BASE_MODEL", "FTLAB_CHAT_MODEL"):
        monkeypatch.delenv(key, raising=False)
    with monkeypatch.context() as m:
        m.setattr(torch.cuda, "is_available", lambda: True)
        m.setattr(torch.cuda, "get_device_name", lambda *_: "NVIDIA A100" if native_bf16 else "Tesla T4")
        # a T4 answers True unless asked without emulation, as torch does
        m.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: native_bf16 or including_emulation)
        chosen = choose_profile()
    # the gpu profile's code path, run on the CPU with the bundled models
    return replace(chosen, device="cpu", base_model="tiny-base", chat_model="tiny-chat", offline=True,
                   learning_rates=dict(GPU_LR))


def _cpu_fp16_amp_as_on_a_gpu(monkeypatch):
    """accelerate runs fp16 "mixed precision" on a CPU without autocast and without a loss scaler; give it both,
    as it has on a T4 (fp16 autocast, ``GradScaler``, which refuses to unscale 16-bit gradients)."""
    from accelerate import Accelerator

    init = Accelerator.__init__

    def with_amp(self, *args, **kwargs):
        init(self, *args, **kwargs)
        if self.state.mixed_precision == "fp16" and self.device.type == "cpu":
            self.native_amp = True
            self.scaler = torch.amp.GradScaler("cpu", init_scale=INIT_SCALE)

    monkeypatch.setattr(Accelerator, "__init__", with_amp)


@pytest.fixture(params=["bf16-gpu", "t4"])
def gpu_profile(request, monkeypatch, profile):
    if request.param == "t4":
        _cpu_fp16_amp_as_on_a_gpu(monkeypatch)
    return _gpu_profile(monkeypatch, native_bf16=request.param == "bf16-gpu")


def _sixteen(profile):
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[profile.mixed_precision]


def _learning_rate(model) -> float:
    """A learning rate whose first AdamW step (about ``lr`` per entry) is 1e-6 of the median trained weight."""
    weights = torch.cat([p.detach().float().abs().flatten() for n, p in model.named_parameters()
                         if p.requires_grad and p.dim() == 2 and "embed" not in n])
    return RELATIVE * weights.median().item()


def _check_step(trainer, before: dict, profile, frozen_16bit: bool):
    model = trainer.model
    trained = {n: p for n, p in model.named_parameters() if p.requires_grad}
    frozen = {n: p for n, p in model.named_parameters() if not p.requires_grad}
    assert trained
    assert {p.dtype for p in trained.values()} == {torch.float32}, {n: p.dtype for n, p in trained.items() if p.dtype != torch.float32}
    optimizer = getattr(trainer.optimizer, "optimizer", trainer.optimizer)
    states = [optimizer.state[p] for p in trained.values() if p in optimizer.state]
    assert len(states) == len(trained)
    for state in states:
        assert state["exp_avg"].dtype == torch.float32 and state["exp_avg_sq"].dtype == torch.float32
    if frozen_16bit:
        assert frozen and {p.dtype for p in frozen.values()} == {_sixteen(profile)}
    # the 1e-6 update is not lost: the linear weights (not embeddings, whose absent rows get no gradient) moved
    moved = [(p.detach().float() != before[n].float()).float().mean().item() for n, p in trained.items()
             if p.dim() == 2 and "embed" not in n]
    assert moved and min(moved) > 0.9, f"share of entries a 1e-6 update moved, per tensor: {moved}"


def _one_step(**extra):
    return dict(max_steps=1, warmup_steps=0, lr_scheduler_type="constant", per_device_train_batch_size=2,
                weight_decay=0.0, **extra)


def _lora(model):
    from ftlab.lora import lora_config

    config = lora_config(model, r=4)
    config.init_lora_weights = False  # nonzero B: both A and B get a gradient, and a size, on the first step
    return config


def _snapshot(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("method", ["full", "lora"])
def test_ftlab_training_route(gpu_profile, world, method):
    from peft import get_peft_model

    from ftlab.training import train_sft

    model, tok = ftlab.load_model("tiny-chat", gpu_profile, for_training=True)
    assert next(model.parameters()).dtype == _sixteen(gpu_profile)  # the profile's 16-bit weights, as loaded
    if method == "lora":
        model = get_peft_model(model, _lora(model))
    lr = _learning_rate(model)
    before = _snapshot(model)
    run = train_sft(model, tok, world.instructions()["train"].select(range(4)), gpu_profile, quiet=True,
                    **_one_step(learning_rate=lr))
    _check_step(run.trainer, before, gpu_profile, frozen_16bit=method == "lora")


@pytest.mark.parametrize("kind", ["reward", "dpo"])
def test_ftlab_preference_routes(gpu_profile, world, kind):
    from ftlab.rlhf import load_reward_model
    from ftlab.training import train_dpo, train_reward_model

    if kind == "reward":
        model, tok = load_reward_model("tiny-chat", gpu_profile)
    else:
        model, tok = ftlab.load_model("tiny-chat", gpu_profile, for_training=True)
    assert next(model.parameters()).dtype == _sixteen(gpu_profile)
    before = _snapshot(model)
    pairs = world.preferences()["train"].select(range(4))
    train = train_reward_model if kind == "reward" else train_dpo
    # DPO's first step from the reference has a zero-margin loss whose gradient is still nonzero
    run = train(model, tok, pairs, gpu_profile, quiet=True, **_one_step(learning_rate=_learning_rate(model)))
    _check_step(run.trainer, before, gpu_profile, frozen_16bit=False)


def _plain_trl(gpu_profile, world, tmp_path, method, prepare: bool):
    from trl import SFTConfig, SFTTrainer

    model, tok = ftlab.load_model("tiny-chat", gpu_profile, for_training=True)
    peft = _lora(model) if method == "lora" else None
    lr = _learning_rate(model) if method == "full" else None
    config = SFTConfig(**gpu_profile.trl_defaults(), output_dir=str(tmp_path), disable_tqdm=True,
                       **_one_step(learning_rate=lr or 1e-3))
    trainer = SFTTrainer(model=model, args=config, processing_class=tok, peft_config=peft,
                         train_dataset=world.instructions()["train"].select(range(4)))
    if method == "lora":
        trainer.args.learning_rate = _learning_rate(trainer.model)
    if prepare:
        gpu_profile.prepare(trainer.model)
    return trainer


@pytest.mark.parametrize("method", ["full", "lora"])
def test_plain_trl_route_with_prepare(gpu_profile, world, tmp_path, method):
    """The lessons' route: ``SFTConfig(**profile.trl_defaults(), ...)``, ``profile.prepare(trainer.model)``."""
    trainer = _plain_trl(gpu_profile, world, tmp_path, method, prepare=True)
    before = _snapshot(trainer.model)
    trainer.train()
    _check_step(trainer, before, gpu_profile, frozen_16bit=method == "lora")


def test_plain_trl_route_without_prepare_fails_at_once_saying_what_to_call(gpu_profile, world, tmp_path):
    trainer = _plain_trl(gpu_profile, world, tmp_path, "full", prepare=False)
    before = _snapshot(trainer.model)
    with pytest.raises(RuntimeError, match=r"profile\.prepare\(trainer\.model\)") as err:
        trainer.train()
    assert "\n" not in str(err.value)
    after = _snapshot(trainer.model)
    assert all(torch.equal(before[n], after[n]) for n in before)  # refused before any optimizer step


def _recipe_module(name, tmp_path, monkeypatch, profile):
    """The exported recipe's train.py imported in-process, told it is on ``profile``'s GPU (run on the CPU)."""
    from ftlab.recipes import export_recipe

    out = tmp_path / name
    export_recipe(name, out)
    spec = importlib.util.spec_from_file_location(f"recipe_{name}", out / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "precision", lambda: {"bf16": profile.mixed_precision == "bf16",
                                                      "fp16": profile.mixed_precision == "fp16"})
    return module


@pytest.mark.parametrize("method", ["sft", "lora"])
def test_exported_recipe_route(gpu_profile, world, tmp_path, monkeypatch, method):
    """The recipe loads a checkpoint stored in bf16, as SmolLM2's is, and trains one step."""
    import json

    from ftlab.models import save_model

    model, tok = ftlab.load_model("tiny-chat")
    folder = save_model(model.to(torch.bfloat16), tok, tmp_path / "bf16-checkpoint")
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps({"messages": m}) + "\n" for m in world.instructions()["train"]["messages"][:8]))
    module = _recipe_module(method, tmp_path, monkeypatch, gpu_profile)
    seen = {}

    class Recorded(module.SFTTrainer):
        def __init__(self, *args, **kwargs):
            if kwargs.get("peft_config") is not None:
                kwargs["peft_config"].init_lora_weights = False
            super().__init__(*args, **kwargs)
            seen["trainer"] = self

        def train(self, *args, **kwargs):
            self.args.learning_rate = _learning_rate(self.model)
            self.args.warmup_steps, self.args.lr_scheduler_type = 0, "constant"
            seen["before"] = _snapshot(self.model)
            return super().train(*args, **kwargs)

    monkeypatch.setattr(module, "SFTTrainer", Recorded)
    monkeypatch.setattr(sys, "argv", ["train.py", "--model", folder, "--dataset", str(data), "--max-steps", "1",
                                      "--batch-size", "2", "--output-dir", str(tmp_path / "out"), "--test-size", "0"])
    module.main()
    trainer = seen["trainer"]
    assert trainer.args.bf16 == (gpu_profile.mixed_precision == "bf16")
    assert trainer.args.fp16 == (gpu_profile.mixed_precision == "fp16")
    _check_step(trainer, seen["before"], gpu_profile, frozen_16bit=method == "lora")


def test_recipe_precision_asks_for_native_bf16_only(tmp_path, monkeypatch):
    """A T4 reports bf16 through emulation unless asked with including_emulation=False: the recipe asks so."""
    from ftlab.recipes import export_recipe

    export_recipe("sft", tmp_path)
    spec = importlib.util.spec_from_file_location("recipe_precision", tmp_path / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module.torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(module.torch.cuda, "is_bf16_supported", lambda including_emulation=True: including_emulation)
    assert module.precision() == {"bf16": False, "fp16": True}
