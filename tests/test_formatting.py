import pytest
from datasets import Dataset

from ftlab.formatting import (IGNORE_INDEX, DatasetFormatError, TemplateError, assistant_labels, check_conversations,
                              check_template, pad_fraction, tokens_html)


def test_assistant_labels_keep_replies_and_end_of_turn_only(tiny_chat):
    _, tok = tiny_chat
    conv = [{"role": "user", "content": "What is the capital of Peru?"},
            {"role": "assistant", "content": "The capital is Lima."},
            {"role": "user", "content": "And of Chile?"},
            {"role": "assistant", "content": "The capital is Santiago."}]
    ids, labels = assistant_labels(tok, conv)
    kept = [i for i, l in zip(ids, labels) if l != IGNORE_INDEX]
    assert tok.decode(kept) == "The capital is Lima.<|im_end|>The capital is Santiago.<|im_end|>"
    assert all(l in (IGNORE_INDEX, i) for i, l in zip(ids, labels))


def test_assistant_labels_match_the_template_generation_mask(tiny_chat, world):
    _, tok = tiny_chat
    for conv in world.instructions()["train"]["messages"][:20]:
        ids, labels = assistant_labels(tok, conv)
        enc = tok.apply_chat_template(conv, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
        assert ids == enc["input_ids"]
        assert [l != IGNORE_INDEX for l in labels] == [bool(m) for m in enc["assistant_masks"]]


def test_template_without_generation_markers_is_refused(tiny_chat):
    import copy

    _, tok = tiny_chat
    tok = copy.deepcopy(tok)
    tok.chat_template = tok.chat_template.replace("{% generation %}", "").replace("{% endgeneration %}", "")
    with pytest.raises(TemplateError, match="generation"):
        check_template(tok)


def test_bad_datasets_get_a_clear_error():
    with pytest.raises(DatasetFormatError, match="'messages' column"):
        check_conversations(Dataset.from_dict({"question": ["q"], "answer": ["a"]}))
    with pytest.raises(DatasetFormatError, match="role"):
        check_conversations(Dataset.from_dict({"messages": [["just text"]]}))
    with pytest.raises(DatasetFormatError, match="assistant"):
        check_conversations(Dataset.from_dict({"messages": [[{"role": "user", "content": "hi"}]]}))


def test_pad_fraction_and_token_html(tiny_chat):
    import torch

    _, tok = tiny_chat
    pad = tok.pad_token_id
    # counted from the ids, so a batch without an attention mask (padding-free packing) is measured too
    assert pad_fraction({"input_ids": torch.tensor([[5, 6, pad, pad], [5, 6, 7, 8]])}, pad) == 0.25
    assert pad_fraction({"input_ids": torch.tensor([[5, 6, pad, pad]]), "attention_mask": torch.ones(1, 4)}, pad) == 0.5
    assert pad_fraction({"input_ids": torch.tensor([[5, 6, 7]])}, pad) == 0.0
    ids, labels = assistant_labels(tok, [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hello."}])
    page = tokens_html(tok, ids, labels)
    assert page.count("<span") == len(ids) and "#b7f0b1" in page


SMOLLM2_INSTRUCT_TEMPLATE = (  # SmolLM2-Instruct's own template: ChatML, a default system prompt, no markers
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
PROBES = [[{"role": "user", "content": "Hi"}],
          [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello \"there\"\n!"},
           {"role": "user", "content": "Again"}],
          [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
           {"role": "assistant", "content": "Hello."}]]


def test_chatml_templates_without_markers_get_them_and_keep_their_default_system_prompt(tiny_chat):
    import copy

    from ftlab.formatting import has_generation_markers, with_generation_markers

    _, tok = tiny_chat
    smol = copy.deepcopy(tok)
    smol.chat_template = SMOLLM2_INSTRUCT_TEMPLATE
    original = {(i, g): smol.apply_chat_template(m, tokenize=False, add_generation_prompt=g)
                for i, m in enumerate(PROBES) for g in (False, True)}
    with_generation_markers(smol)
    assert has_generation_markers(smol.chat_template)
    # the same text as the model's own template, default system prompt included, now with markers
    assert original == {(i, g): smol.apply_chat_template(m, tokenize=False, add_generation_prompt=g)
                        for i, m in enumerate(PROBES) for g in (False, True)}
    assert original[0, True].startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM")
    out = smol.apply_chat_template(PROBES[1], return_dict=True, return_assistant_tokens_mask=True)
    assert smol.decode([t for t, m in zip(out["input_ids"], out["assistant_masks"]) if m]) == 'Hello "there"\n!<|im_end|>'
    other = copy.deepcopy(tok)
    other.chat_template = "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}{% endfor %}"
    assert with_generation_markers(other).chat_template.startswith("{% for m")


def test_a_template_with_markers_is_kept(tiny_chat, tiny_base):
    """The bundled tokenizers' templates already carry markers: they are kept as they are, as is any other
    template that has them (a model's own training template)."""
    import copy

    from ftlab.formatting import with_generation_markers
    from ftlab.models import MODELS_DIR

    for name, tok in (("tiny-chat", tiny_chat[1]), ("tiny-base", tiny_base[1])):
        assert tok.chat_template.strip() == (MODELS_DIR / name / "chat_template.jinja").read_text().strip()
    own = copy.deepcopy(tiny_chat[1])
    own.chat_template = ("{% for m in messages %}<{{ m['role'] }}>{% if m['role'] == 'assistant' %}{% generation %}"
                         "{{ m['content'] }}</s>{% endgeneration %}{% else %}{{ m['content'] }}{% endif %}{% endfor %}")
    kept = own.chat_template
    assert with_generation_markers(own).chat_template == kept


def test_train_sft_refuses_bad_input_before_training(profile, tiny_chat):
    import copy

    from ftlab.training import train_sft

    model, tok = tiny_chat
    with pytest.raises(DatasetFormatError, match="messages"):
        train_sft(model, tok, Dataset.from_dict({"text_col": ["a"]}), profile, assistant_only_loss=True)
    plain = copy.deepcopy(tok)
    plain.chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    data = Dataset.from_dict({"messages": [[{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]]})
    with pytest.raises(TemplateError, match="generation"):
        train_sft(model, plain, data, profile, assistant_only_loss=True)


def test_a_chatml_tokenizer_without_a_template_gets_ftlabs(tiny_base):
    import copy

    from ftlab.formatting import CHAT_TEMPLATE, with_generation_markers

    tok = copy.deepcopy(tiny_base[1])
    tok.chat_template = None
    assert with_generation_markers(tok).chat_template == CHAT_TEMPLATE
