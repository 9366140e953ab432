"""SFT data formatting: chat templates, which tokens carry loss, padding vs packing.

``assistant_labels`` is the masking function lesson 2 writes by hand; later lessons import it from
here. The rest is plumbing for showing tokens and checking input.
"""

from __future__ import annotations

import html

IGNORE_INDEX = -100  # PyTorch's cross-entropy skips targets equal to this

# ChatML, as SmolLM2 uses it, with {% generation %} around what the assistant says, so that
# ``return_assistant_tokens_mask`` (and TRL's ``assistant_only_loss``) can find it.
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{%- if message['role'] == 'assistant' %}"
    "{{- '<|im_start|>assistant\\n' }}{% generation %}{{- message['content'] + '<|im_end|>' }}{% endgeneration %}{{- '\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


class TemplateError(ValueError):
    pass


class DatasetFormatError(ValueError):
    pass


def check_conversations(dataset, column: str = "messages") -> None:
    """Refuse, with what to do, a dataset that is not in the conversational format SFT needs."""
    if column not in dataset.column_names:
        raise DatasetFormatError(
            f"The dataset has columns {dataset.column_names}, but SFT on conversations needs a {column!r} column: "
            "a list of {'role': ..., 'content': ...} dicts per row. Rename your column or build it with "
            "[{'role': 'user', 'content': q}, {'role': 'assistant', 'content': a}].")
    first = dataset[0][column]
    if not (isinstance(first, list) and first and all(isinstance(m, dict) and {"role", "content"} <= set(m) for m in first)):
        raise DatasetFormatError(f"Rows of {column!r} must be lists of {{'role', 'content'}} dicts; the first row is {first!r:.200}.")
    if not any(m["role"] == "assistant" for m in first):
        raise DatasetFormatError("The first conversation has no 'assistant' message: there is nothing to learn from.")


def check_template(tokenizer) -> None:
    """Refuse a chat template that cannot mark assistant tokens (no ``{% generation %}`` block)."""
    if not has_generation_markers(tokenizer.chat_template):
        raise TemplateError(
            "This chat template has no {% generation %} ... {% endgeneration %} markers around the assistant's reply, "
            "so assistant-only loss cannot find the assistant tokens. Wrap the assistant content (and its end-of-turn "
            "token) in those markers, or use TRL's training template.")


def has_generation_markers(template: str | None) -> bool:
    return template is not None and "generation %}" in template


def with_generation_markers(tokenizer):
    """Make sure ``tokenizer``'s chat template can mark the assistant's tokens, keeping the model's own format.

    In order: a template that already has ``{% generation %}`` markers is kept; one TRL has a training
    version of (``trl.chat_template_utils.get_training_chat_template``: the same text with markers) gets
    that; a ChatML template (SmolLM2, the tiny models), or no template on a tokenizer with the ChatML tokens
    (a base model's), gets ftlab's ChatML template with markers, carrying over the default system prompt
    the model's template adds when a conversation has none (SmolLM2-Instruct's "You are a helpful AI
    assistant named SmolLM..."). Other templates are left alone and ``check_template`` explains what to do.
    """
    template = tokenizer.chat_template
    if isinstance(template, dict) or has_generation_markers(template):
        return tokenizer
    if template is not None:
        trl_version = _trl_training_template(tokenizer)
        if trl_version is not None:
            tokenizer.chat_template = trl_version
            return tokenizer
        if "<|im_start|>" in template:
            tokenizer.chat_template = chatml_template(_default_system_prompt(tokenizer))
        return tokenizer
    vocab = tokenizer.get_vocab()  # a base model's tokenizer may ship no template while knowing the ChatML tokens
    if "<|im_start|>" in vocab and "<|im_end|>" in vocab:
        tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def chatml_template(default_system: str | None = None) -> str:
    """ftlab's ChatML template with generation markers; with ``default_system``, a conversation that does
    not start with a system message gets that one first, as SmolLM2-Instruct's own template does."""
    if default_system is None:
        return CHAT_TEMPLATE
    import json

    first = ("{%- if loop.first and message['role'] != 'system' %}{{- '<|im_start|>system\\n' + "
             + json.dumps(default_system) + " + '<|im_end|>\\n' }}{%- endif %}")
    return CHAT_TEMPLATE.replace("{%- for message in messages %}", "{%- for message in messages %}" + first, 1)


def _default_system_prompt(tokenizer) -> str | None:
    """The system message a ChatML template adds to a conversation without one (None if it adds none)."""
    import re

    probe = "ftlab-probe-9f3c"
    try:
        text = tokenizer.apply_chat_template([{"role": "user", "content": probe}], tokenize=False)
    except Exception:  # a template that needs more than messages: no default to carry over
        return None
    head = text.split(f"<|im_start|>user\n{probe}", 1)[0]
    found = re.fullmatch(r"<\|im_start\|>system\n(.*)<\|im_end\|>\n", head, flags=re.S)
    return found.group(1) if found else None


def _trl_training_template(tokenizer) -> str | None:
    """TRL's training version (with markers) of a template it knows, else None."""
    try:
        from trl.chat_template_utils import get_training_chat_template

        return get_training_chat_template(tokenizer)
    except Exception:  # an unknown template (ValueError), or a TRL without this helper
        return None


def assistant_labels(tokenizer, messages: list[dict]) -> tuple[list[int], list[int]]:
    """Token ids of a conversation and labels that keep only the assistant's tokens (others -100).

    An assistant turn starts where the template's generation prompt ends, and runs through the
    end-of-turn token, which must be learned too, or the model never learns to write it. Labels are not
    shifted: a kept label is the token's own id (the model shifts by one inside its loss).
    """
    from ftlab.generation import end_of_turn_id

    ids = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=False)
    labels = [IGNORE_INDEX] * len(ids)
    eot = end_of_turn_id(tokenizer)
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        start = len(tokenizer.apply_chat_template(messages[:i], tokenize=True, add_generation_prompt=True,
                                                  return_dict=False))
        end = ids.index(eot, start) + 1
        labels[start:end] = ids[start:end]
    return ids, labels


def tokens_html(tokenizer, ids: list[int], labels: list[int] | None = None) -> str:
    """Tokens as coloured boxes: green if the token carries loss, grey if it is masked."""
    spans = []
    for j, tid in enumerate(ids):
        text = tokenizer.convert_ids_to_tokens(tid)
        text = text.replace("Ġ", "·").replace("Ċ", "↵")
        learn = labels is not None and labels[j] != IGNORE_INDEX
        colour = "#b7f0b1" if learn else "#e6e6e6"
        spans.append(f"<span title='id {tid}' style='background:{colour};border:1px solid #999;border-radius:3px;"
                     f"padding:1px 3px;margin:1px;display:inline-block;font-family:monospace'>{html.escape(text)}</span>")
    return "<div style='line-height:2'>" + "".join(spans) + "</div>"


def pad_fraction(batch, pad_token_id: int) -> float:
    """Share of the positions in a collated batch that hold the padding token.

    Counted from the token ids, not the attention mask: padding-free (packed) batches carry no mask."""
    if pad_token_id is None:
        raise ValueError("pad_fraction needs the tokenizer's pad_token_id (this tokenizer has none); "
                         "set tokenizer.pad_token first.")
    ids = batch["input_ids"]
    return (ids == pad_token_id).sum().item() / ids.numel()
