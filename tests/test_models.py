import time
from pathlib import Path

import pytest
import torch

import ftlab
from ftlab.models import MODELS_DIR, ModelNotFoundError


@pytest.mark.parametrize("name", ["tiny-base", "tiny-chat", "tiny-base-induction"])
def test_bundled_models_load_fast_and_are_small_llamas(name, profile):
    ftlab.load_model(name, profile)  # warm the import machinery
    start = time.perf_counter()
    model, tok = ftlab.load_model(name, profile)
    assert time.perf_counter() - start < 2.0
    assert model.config.model_type == "llama"
    assert 1_000_000 <= sum(p.numel() for p in model.parameters()) <= 5_000_000
    assert model.dtype == torch.float32 and not model.training
    assert "{% generation %}" in tok.chat_template


def test_bundled_models_fit_the_size_budget():
    total = sum(f.stat().st_size for f in Path(MODELS_DIR).rglob("*") if f.is_file())
    assert total <= 30 * 1024 * 1024  # three fp32 models of ~2.2M parameters


def test_chat_template_marks_assistant_tokens(tiny_chat):
    _, tok = tiny_chat
    conv = [{"role": "user", "content": "What is the capital of France?"},
            {"role": "assistant", "content": "The capital of France is Paris."}]
    enc = tok.apply_chat_template(conv, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    marked = [t for t, m in zip(enc["input_ids"], enc["assistant_masks"]) if m]
    assert tok.decode(marked) == "The capital of France is Paris.<|im_end|>"
    assert tok.eos_token == "<|im_end|>"


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(ModelNotFoundError, match="tiny-base, tiny-chat"):
        ftlab.load_model("tiny-bsae")


def test_hub_id_offline_says_how_to_switch(profile):
    with pytest.raises(ModelNotFoundError, match="FTLAB_PROFILE=gpu"):
        ftlab.load_model("HuggingFaceTB/SmolLM2-135M", profile)


def test_local_folder_goes_through_the_same_path(tiny_chat, tmp_path, profile):
    """The gpu profile's hub path is the same from_pretrained call: test it from a local folder."""
    model, tok = tiny_chat
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    again, tok2 = ftlab.load_model(tmp_path, profile)
    ids = tok("The capital of France is", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        assert torch.equal(model(ids).logits, again(ids).logits)
    assert tok2.chat_template == tok.chat_template


def test_a_folder_without_a_model_is_explained(tmp_path):
    with pytest.raises(ModelNotFoundError, match="config.json"):
        ftlab.load_model(tmp_path)


def test_a_model_too_big_for_the_gpu_is_refused_before_loading_with_the_calculators_numbers():
    from ftlab.memory import bundled_configs
    from ftlab.models import ModelTooBigError, check_fits

    configs = bundled_configs()
    t4_free = 14.5 * 2**30
    check_fits(configs["SmolLM2-1.7B"], t4_free, dtype="float16")  # 3.2 GiB of weights: fine
    with pytest.raises(ModelTooBigError, match=r"does not fit.*GiB.*LoRA.*QLoRA.*smaller model") as err:
        check_fits(configs["Llama-3.1-8B"], 4 * 2**30, dtype="bfloat16", name="meta-llama/Llama-3.1-8B")
    assert "15.0 GiB for the weights" in str(err.value)
    check_fits({"model_type": "something-else"}, 1, name="x")  # unreadable config: loading decides


def test_four_bit_weights_are_checked_as_four_bit():
    from ftlab.memory import bundled_configs
    from ftlab.models import ModelTooBigError, check_fits

    llama8b = bundled_configs()["Llama-3.1-8B"]
    with pytest.raises(ModelTooBigError):
        check_fits(llama8b, 8 * 2**30, dtype="float16")  # 15 GiB in fp16
    check_fits(llama8b, 8 * 2**30, dtype="float16", method="qlora")  # about 5.6 GiB in NF4


def test_four_bit_loading_explains_what_it_needs(monkeypatch):
    import sys

    from ftlab.models import _four_bit
    from ftlab.profiles import choose_profile

    with pytest.raises(RuntimeError, match="needs a CUDA GPU.*LoRA"):
        ftlab.load_model("tiny-chat", choose_profile("cpu"), load_in_4bit=True)
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # as if it were not installed
    with pytest.raises(ImportError, match="pip install bitsandbytes"):
        _four_bit("cuda", None)
