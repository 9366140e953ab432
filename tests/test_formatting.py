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


def test_chatml_templates_without_markers_get_them(tiny_chat):
    import copy

    from ftlab.formatting import CHAT_TEMPLATE, with_generation_markers

    _, tok = tiny_chat
    smol_like = copy.deepcopy(tok)
    # SmolLM2's own template: ChatML with a default system prompt and no generation markers
    smol_like.chat_template = ("{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
                               "{{ '<|im_start|>system\nYou are a helpful AI assistant<|im_end|>\n' }}{% endif %}"
                               "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
                               "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
    assert with_generation_markers(smol_like).chat_template == CHAT_TEMPLATE
    other = copy.deepcopy(tok)
    other.chat_template = "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}{% endfor %}"
    assert with_generation_markers(other).chat_template.startswith("{% for m")


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
