import os

import pytest

from ftlab.profiles import choose_profile, setup


def test_cpu_profile_without_a_gpu(monkeypatch):
    monkeypatch.delenv("FTLAB_PROFILE", raising=False)
    p = choose_profile()
    assert p.name == "cpu" and p.device == "cpu" and p.dtype == "float32" and p.offline
    assert p.base_model == "tiny-base" and p.chat_model == "tiny-chat"
    assert "no CUDA GPU" in p.reason


def test_env_override_and_bad_values(monkeypatch):
    monkeypatch.setenv("FTLAB_PROFILE", "cpu")
    assert "FTLAB_PROFILE=cpu" in choose_profile().reason
    monkeypatch.setenv("FTLAB_PROFILE", "tpu")
    with pytest.raises(ValueError, match="cpu, gpu"):
        choose_profile()
    monkeypatch.setenv("FTLAB_PROFILE", "gpu")
    with pytest.raises(RuntimeError, match="FTLAB_PROFILE=cpu"):
        choose_profile()


def test_cpu_trl_defaults_turn_off_bf16_and_checkpointing(tmp_path):
    from trl import SFTConfig

    p = choose_profile("cpu")
    args = SFTConfig(output_dir=str(tmp_path), **p.trl_defaults())
    assert args.bf16 is False and args.fp16 is False
    assert not getattr(args, "activation_checkpointing", False) and args.gradient_checkpointing is False
    assert args.use_cpu is True


def test_setup_goes_offline_and_says_so(capsys):
    p = setup("cpu")
    out = capsys.readouterr().out.strip()
    assert out.count("\n") == 0 and "cpu" in out and "offline" in out
    assert os.environ["HF_HUB_OFFLINE"] == "1" and os.environ["HF_HUB_DISABLE_TELEMETRY"] == "1"
    import huggingface_hub.constants

    assert huggingface_hub.constants.HF_HUB_OFFLINE is True
    assert p.steps["sft"] > 0


def test_learning_rates_follow_the_model_size(monkeypatch):
    from ftlab.models import MODELS_DIR
    from ftlab.profiles import CPU_LR, GPU_LR, _parameters

    assert 1_000_000 < _parameters("tiny-base") < 5_000_000
    assert _parameters("HuggingFaceTB/SmolLM2-135M") is None
    monkeypatch.setenv("FTLAB_BASE_MODEL", str(MODELS_DIR / "tiny-base"))
    assert choose_profile("cpu").learning_rates == CPU_LR
    assert GPU_LR["sft"] < CPU_LR["sft"] / 10


def _fake_gpu(monkeypatch, name: str, native_bf16: bool) -> None:
    import torch

    monkeypatch.delenv("FTLAB_PROFILE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *_: name)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: native_bf16 or including_emulation)


def test_gpu_profile_picks_fp16_on_a_t4_and_bf16_where_native(monkeypatch, tmp_path):
    """The choice only (no CUDA here): a T4 reports bf16 only through (slow) emulation, so fp16 weights + fp16
    autocast (what trains goes to fp32: tests/test_precision_policy.py)."""
    from trl import SFTConfig

    _fake_gpu(monkeypatch, "Tesla T4", native_bf16=False)
    t4 = choose_profile()
    assert (t4.name, t4.device, t4.dtype, t4.mixed_precision) == ("gpu", "cuda", "float16", "fp16")
    assert "Tesla T4" in t4.reason and not t4.offline and "SmolLM2" in t4.chat_model
    assert t4.trl_defaults()["fp16"] is True and t4.trl_defaults()["bf16"] is False
    _fake_gpu(monkeypatch, "NVIDIA A100", native_bf16=True)
    a100 = choose_profile()
    assert (a100.dtype, a100.mixed_precision) == ("bfloat16", "bf16")
    assert a100.trl_defaults()["bf16"] is True and a100.trl_defaults()["fp16"] is False


def test_colab_without_a_gpu_says_so_and_falls_back_to_cpu(monkeypatch, capsys):
    import sys
    import types

    monkeypatch.delenv("FTLAB_PROFILE", raising=False)
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    p = setup()
    assert p.name == "cpu" and p.base_model == "tiny-base"
    out = capsys.readouterr().out
    assert "Colab runtime has no GPU" in out and "Change runtime type" in out


def test_every_bf16_question_asks_for_native_support_only():
    """torch.cuda.is_bf16_supported() answers True on a T4 through emulation: every call passes
    including_emulation=False (the profile's and the exported recipes')."""
    import re
    from pathlib import Path

    import ftlab

    root = Path(ftlab.__file__).parent
    calls = [(path.name, m.group(0)) for path in root.rglob("*.py")
             for m in re.finditer(r"is_bf16_supported\([^)]*\)", path.read_text(encoding="utf-8"))]
    assert calls and all(call == "is_bf16_supported(including_emulation=False)" for _, call in calls), calls


def test_the_t4_profile_loads_what_the_memory_estimate_assumes(monkeypatch):
    """One truth for the T4: the profile's weights dtype and autocast equal the estimator's "16-mixed" regime
    (fp16 frozen base, fp32 trained weights), and the A100's equal "bf16-mixed"."""
    from ftlab.memory import PRECISIONS, precision_of

    for native_bf16, frozen in ((False, "float16"), (True, "bfloat16")):
        _fake_gpu(monkeypatch, "Tesla T4" if not native_bf16 else "NVIDIA A100", native_bf16=native_bf16)
        p = choose_profile()
        regime = PRECISIONS[precision_of(p)]
        assert p.dtype == frozen and regime.frozen == 2 and regime.trained == 4 and regime.autocast
        assert precision_of(p) == ("bf16-mixed" if native_bf16 else "16-mixed")


# Seconds per step at SmolLM2-135M's size in the T4's precision path (fp32 weights, fp16 autocast), measured on an
# H100 by tools/gpu_shapes.py (2026-11-27, random weights, 20 steps incl. start-up), doubled for a T4: these
# steps are bound by per-step overhead and kernel launches (an SFT step is ~0.5 TFLOP), and Colab's host is slower.
T4_SECONDS_PER_STEP = {kind: 2 * s for kind, s in
                       {"sft": 0.305, "lora": 0.289, "reward": 0.254, "rl": 1.963, "dpo": 0.202}.items()}


def test_gpu_step_budgets_keep_each_lesson_under_ten_minutes_on_a_t4():
    from ftlab.profiles import GPU_STEPS

    s = {kind: GPU_STEPS[kind] * T4_SECONDS_PER_STEP[kind] for kind in GPU_STEPS}
    per_step = T4_SECONDS_PER_STEP
    training = {  # the runs each lesson makes with the gpu profile's budgets, in seconds
        # EOS; masked and unmasked at 2 learning rates x 2 seeds on the gpu profile (3 seeds on the cpu), one of them
        # section 3's masked run; persona (3/5 of the sft budget); two one-epoch packing runs
        "02": 9 * s["sft"] / 2 + 0.6 * s["sft"] + 2 * 53 * per_step["sft"],
        # learning-rate sweep 2 x 3, 2 more seeds each, ranks 1/4/64 under two conventions, QLoRA: 6 steps each
        "03": 17 * 6 * per_step["lora"],
        "04": 60 * per_step["sft"] + 2 * s["reward"] + 2 * s["rl"] + s["dpo"],  # SFT, RM with and without the learner's labels, RLOO at two betas, DPO
        # part A: 2 passes over the known-task pool; part B: 18 passes over n = 16, 34, 99 facts in batches of 16
        "05": (2 * 4 + 18 * (1 + 3 + 7)) * per_step["lora"],
    }
    assert all(seconds < 9 * 60 for seconds in training.values()), training  # + evaluation: under ~10 minutes


def fake_gpu(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: "Fake GPU")


def test_gpu_without_a_hub_falls_back_to_the_bundled_models_with_one_line(monkeypatch, capsys):
    """A cluster node with a GPU and no internet: the first hub lookup fails (faked here), so the gpu profile
    loads the bundled pair, offline, instead of failing deep inside from_pretrained."""
    import huggingface_hub

    import ftlab
    from ftlab.profiles import CPU_LR, setup

    fake_gpu(monkeypatch)
    for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "FTLAB_BASE_MODEL", "FTLAB_CHAT_MODEL"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("FTLAB_CACHE", "/nonexistent-ftlab-cache")
    lookups = []

    def no_hub(repo_id, timeout=None):
        lookups.append(repo_id)
        raise OSError("Failed to resolve 'huggingface.co'")

    monkeypatch.setattr(huggingface_hub, "model_info", no_hub)
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda *a, **k: None)
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", huggingface_hub.constants.HF_HUB_OFFLINE)
    profile = setup("gpu", quiet=False)
    out = capsys.readouterr().out.splitlines()
    assert lookups == ["HuggingFaceTB/SmolLM2-135M"]
    assert out[0].startswith("No model hub here (the Hugging Face hub did not answer") and "ftlab real-model" in out[0]
    assert (profile.name, profile.base_model, profile.chat_model) == ("gpu", "tiny-base", "tiny-chat")
    assert profile.offline and profile.learning_rates == CPU_LR and profile.mixed_precision == "bf16"
    from dataclasses import replace

    model, tok = ftlab.load_model(profile.chat_model, replace(profile, device="cpu"))  # the gpu loading path works
    assert model.config.vocab_size == len(tok) or model.config.vocab_size > 0
    # offline flags already set: no lookup at all
    lookups.clear()
    profile = setup("gpu", quiet=True)
    assert lookups == [] and profile.chat_model == "tiny-chat"


def test_profiles_say_which_model_is_base_and_which_instruct(monkeypatch):
    from ftlab.profiles import choose_profile, model_label

    profile = choose_profile("cpu")
    assert profile.models().splitlines() == ["base model (pretrained only, not tuned to chat): tiny-base (bundled)",
                                             "chat model (instruction-tuned): tiny-chat (bundled)"]
    assert model_label("HuggingFaceTB/SmolLM2-135M") == "HuggingFaceTB/SmolLM2-135M"
