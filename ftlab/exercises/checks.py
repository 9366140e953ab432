"""The public checks of every exercise question, run by ``ftlab.check("q1")``.

Each check gets the notebook's namespace (the student's functions and variables) and raises
(``AssertionError`` or anything else) when the answer is wrong. Its message says what is wrong in the
question's terms (which case, expected shape, by how much) without giving the answer away; its
``hint`` points at the idea or the lesson section, never at code to paste. A check on a measured
number measures it again here, with models loaded here, rather than comparing with a constant.
Instructor-only tests live in the exercise sources (hidden tests), not here.
"""

from __future__ import annotations

import functools
import inspect
import math
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Check:
    name: str
    hint: str
    fn: Callable[[dict], None]


CHECKS: dict[str, dict[str, list[Check]]] = {}


def _check(exercise: str, question: str, hint: str):
    def register(fn):
        CHECKS.setdefault(exercise, {}).setdefault(question, []).append(Check(fn.__name__.replace("_", " "), hint, fn))
        return fn
    return register


@functools.lru_cache(maxsize=None)
def _model(name: str):
    """``(model, tokenizer)``, loaded once per kernel. Checks never hand these to student code."""
    from ftlab.models import load_model

    return load_model(name)


def _fresh_tokenizer(name: str = "tiny-chat"):
    from ftlab.models import load_tokenizer

    return load_tokenizer(name)


def _close(a: float, b: float, tol: float = 1e-5) -> bool:
    return math.isclose(float(a), float(b), rel_tol=tol, abs_tol=tol)


def _parameters(fn) -> list[str]:
    """The positional parameter names of ``fn``; for a student's function seen through the grader's proxy,
    read from its code object in the student's kernel (the proxy's own signature is ``*args, **kwargs``)."""
    from ftlab.grading_proxy import RemoteObject

    if isinstance(fn, RemoteObject):
        code = fn._remote.request({"op": "getattr", "id": fn._id, "name": "__code__"})
        return list(code.co_varnames)[: code.co_argcount]
    return list(inspect.signature(fn).parameters)


def _first_difference(got: str, expected: str) -> int:
    return next((i for i, (a, b) in enumerate(zip(got, expected)) if a != b), min(len(got), len(expected)))


def _measured(name: str, got, reference: float, tol: float, recipe: str) -> None:
    """A measured number is measured again; the message gives the size of the gap, not the number."""
    try:
        value = float(got)
    except (TypeError, ValueError):
        raise AssertionError(f"{name} should be a number, not {type(got).__name__}") from None
    gap = value - reference
    assert abs(gap) <= tol + 1e-9, (f"{name} is {abs(gap):.3f} {'above' if gap > 0 else 'below'} a fresh measurement "
                                    f"of the same thing (allowed: {tol:.3f}); {recipe}")


# ------------------------------------------------------------------ 01: base vs tuned
E1 = "01_base_vs_tuned"
_ASSISTANT_HEADER = "<|im_start|>assistant\n"


def _chat_reference(tok, question: str) -> str:
    return tok.apply_chat_template([{"role": "user", "content": question}], tokenize=False, add_generation_prompt=True)


@_check(E1, "q1", "the tokenizer's chat template writes this text for you; one of its options adds the header that "
                  "opens the assistant's turn (lesson 1, section 1; lesson 2, section 1 prints both versions).")
def chat_text_is_the_template_with_the_assistant_header(ns):
    tok = _fresh_tokenizer()
    got = ns["chat_text"](tok, "Name the capital of Peru.")
    assert isinstance(got, str), f"chat_text returned a {type(got).__name__}, not the text (a str)"
    assert got.endswith(_ASSISTANT_HEADER), (f"the text ends with {got[-25:]!r}: the model's reply must start right "
                                             "after the header of the assistant's turn")
    expected = _chat_reference(tok, "Name the capital of Peru.")
    i = _first_difference(got, expected)
    assert got == expected, (f"the text differs from the chat template's at character {i} of {len(expected)} "
                             f"(yours has {got[max(0, i - 10):i + 10]!r} around there)")


@_check(E1, "q2", "a reply is correct when the answer appears in it as a whole word (any case) AND the turn ended.")
def is_correct_on_simple_cases(ns):
    f = ns["is_correct"]
    assert f("The capital is Paris.", "Paris", True) is True, "'The capital is Paris.' should be correct for 'Paris'"
    assert f("The capital is Paris.", "Paris", False) is False, "a reply that did not end its turn is not correct"
    assert f("The capital is Rome.", "Paris", True) is False, "'The capital is Rome.' is not correct for 'Paris'"


@_check(E1, "q2", "match whole words only: the answer counts where no letter or digit touches it on either side. "
                  "Beware that a regex word boundary (\\b) needs a letter or digit on its inside, so it fails for answers "
                  "that start or end with punctuation, like '(a+b)'. Return a real bool.")
def is_correct_matches_whole_words(ns):
    assert ns["is_correct"]("A Parisian sky.", "Paris", True) is False, "'Parisian' does not contain the word 'Paris'"
    assert ns["is_correct"]("it is paris", "Paris", True) is True, "case must not matter"
    assert ns["is_correct"]("The answer is (a+b).", "(a+b)", True) is True, \
        "'(a+b)' appears in 'The answer is (a+b).' with no letter or digit touching it"
    assert ns["is_correct"]("x(a+b)", "(a+b)", True) is False, "in 'x(a+b)' the letter x touches the answer"


def _generate_accuracy(model, tok, questions, answers, as_chat: bool) -> float:
    from ftlab.evaluation import mentions
    from ftlab.generation import generate

    stop = [tok.convert_tokens_to_ids(t) for t in ("<|im_end|>", "<|endoftext|>")]  # lesson 1's end of a turn
    prompts = [_chat_reference(tok, q) if as_chat else q for q in questions]
    gens = generate(model, tok, prompts, max_new_tokens=24, stop_ids=stop)
    return sum(g.stopped and mentions(g.text, a) for g, a in zip(gens, answers)) / len(questions)


@_check(E1, "q3", "the function takes (model, tokenizer, questions, answers, chat), in that order.")
def accuracy_has_the_asked_signature(ns):
    params = _parameters(ns["accuracy"])
    assert len(params) == 5, f"accuracy takes {params}; the question asks for (model, tokenizer, questions, answers, chat)"


@_check(E1, "q3", "chat=True wraps each question with chat_text; chat=False sends it as it is. Greedy, at most 24 new "
                  "tokens, stop at <|im_end|> or <|endoftext|> (lesson 1, section 5), and a reply counts only if "
                  "is_correct says so.")
def accuracy_agrees_with_a_measurement_on_other_questions(ns):
    from ftlab.world import World

    qa = World(0).qa_eval()
    qs, ans = list(qa["question"][30:40]), list(qa["answer"][30:40])
    for name, as_chat in (("tiny-chat", True), ("tiny-chat", False), ("tiny-base", True)):
        model, tok = _model(name)
        # the student's function gets the notebook's own model (set-up names; the grader passes them by name)
        got = ns["accuracy"](ns["chat" if name == "tiny-chat" else "base"], ns["tok"], qs, ans, as_chat)
        _measured(f"accuracy({name}, ..., chat={as_chat}) on 10 other questions", got,
                  _generate_accuracy(model, tok, qs, ans, as_chat), 0.1, "see the hint.")


@_check(E1, "q3", "measure each number with your accuracy() on the 30 questions in qa: the base model in plain text "
                  "and in the chat format, the chat model in the chat format.")
def the_three_accuracies_are_measured(ns):
    from ftlab.world import World

    values = {name: ns[name] for name in ("base_plain_acc", "base_acc", "chat_acc")}  # NameError first, if any
    qa = World(0).qa_eval()
    qs, ans = list(qa["question"][:30]), list(qa["answer"][:30])
    for name, model_name, as_chat in (("base_plain_acc", "tiny-base", False), ("base_acc", "tiny-base", True),
                                      ("chat_acc", "tiny-chat", True)):
        model, tok = _model(model_name)
        _measured(name, values[name], _generate_accuracy(model, tok, qs, ans, as_chat), 1 / 30,
                  f"measure it on the {model_name.split('-')[1]} model, {'chat format' if as_chat else 'plain text'}.")


def _sampling_reference(logits, temperature: float, top_p: float):
    import torch

    probs = torch.softmax(logits.float() / temperature, dim=-1)
    sorted_probs, order = probs.sort(descending=True)
    keep = (sorted_probs.cumsum(0) - sorted_probs) < top_p
    keep[0] = True
    kept = torch.zeros_like(probs)
    kept[order[keep]] = sorted_probs[keep]
    return kept / kept.sum()


@_check(E1, "q4", "temperature divides the logits before the softmax; top-p then keeps the most likely tokens until "
                  "their probabilities add up to top_p, and renormalises (lesson 1, section 3).")
def sampling_probs_on_small_cases(ns):
    import torch

    logits = torch.tensor([2.0, 1.0, 0.5, -1.0, 3.0])
    for t, p in ((1.0, 1.0), (2.0, 1.0), (0.5, 1.0), (1.0, 0.7), (1.5, 0.9)):
        got = torch.as_tensor(ns["sampling_probs"](logits.clone(), t, p)).float()
        assert tuple(got.shape) == (5,), f"for 5 logits the result has shape {tuple(got.shape)}, not (5,)"
        assert abs(float(got.sum()) - 1) < 1e-5, f"temperature={t}, top_p={p}: the probabilities add up to {float(got.sum()):.4f}, not 1"
        expected = _sampling_reference(logits, t, p)
        kept, want = int((got > 0).sum()), int((expected > 0).sum())
        assert kept == want, f"temperature={t}, top_p={p}: {kept} tokens can be sampled; should be {'more' if kept < want else 'fewer'}"
        gap = float((got - expected).abs().max())
        assert gap < 1e-5, f"temperature={t}, top_p={p}: a probability is off by {gap:.4f}"


@_check(E1, "q4", "count the tokens your sampling_probs gives a probability above 0, at each temperature, "
                  "with top_p 0.9, for the next_logits given.")
def candidate_counts_are_measured(ns):
    import torch

    values = {name: ns[name] for name in ("n_cool", "n_hot")}
    model, tok = _model("tiny-base")
    ids = tok("A country in Europe is", return_tensors="pt", add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logits = model(ids).logits[0, -1]
    for name, t in (("n_cool", 0.7), ("n_hot", 1.5)):
        want = int((_sampling_reference(logits, t, 0.9) > 0).sum())
        got = values[name]
        assert int(got) == want, f"{name} is {'too high' if int(got) > want else 'too low'} (a fresh count differs by {abs(int(got) - want)})"


# ------------------------------------------------------------------ 02: SFT formatting
E2 = "02_sft_formatting"
_CONV = [{"role": "user", "content": "Who are you?"}, {"role": "assistant", "content": "I am Pip."},
         {"role": "user", "content": "And the capital of Peru?"}, {"role": "assistant", "content": "Lima."}]


@_check(E2, "q1", "an assistant reply starts where the conversation before it, rendered with the generation prompt, "
                  "ends; it runs through its end-of-turn token (lesson 2, section 2).")
def labels_match_the_reference(ns):
    from ftlab.formatting import assistant_labels

    tok = _fresh_tokenizer()
    ids, labels = (list(x) for x in ns["loss_labels"](tok, _CONV))
    ref_ids, ref_labels = assistant_labels(tok, _CONV)
    assert ids == ref_ids, "the token ids differ from the chat template's (use the whole conversation, tokenized)"
    assert len(labels) == len(ids), f"{len(labels)} labels for {len(ids)} tokens: one label per token"
    wrong = [j for j, (a, b) in enumerate(zip(labels, ref_labels)) if a != b]
    if wrong and (labels[:-1] == ref_labels[1:] or labels[1:] == ref_labels[:-1]):
        raise AssertionError("your labels are the reference shifted by one position: labels are the input ids "
                             "themselves (labels[i] = ids[i] or -100); the model shifts them inside its loss")
    if wrong:
        j = wrong[0]
        token = tok.convert_ids_to_tokens(ids[j])
        what = "carries loss but should be -100" if labels[j] != -100 else "is -100 but should carry loss"
        raise AssertionError(f"in a conversation with two assistant turns, {len(wrong)} label(s) are wrong; "
                             f"the first is position {j} (token {token!r}), which {what}")


@_check(E2, "q1", "the end-of-turn token after each reply must be in the loss, or the model never learns to write it, "
                  "and a chat loop that stops at <|im_end|> runs on (lesson 2, section 3).")
def end_of_turn_is_learned(ns):
    from ftlab.generation import end_of_turn_id

    tok = _fresh_tokenizer()
    _, labels = ns["loss_labels"](tok, _CONV)
    assert [t for t in labels if t != -100].count(end_of_turn_id(tok)) == 2, \
        "each of the two assistant turns should end with a learned <|im_end|>"


@_check(E2, "q2", "pad every batch to its longest sequence; the share is padded positions / all positions.")
def padding_share_small_cases(ns):
    got = ns["padding_share"]([3, 5], 2)
    assert _close(got, 0.2), f"lengths [3, 5] in one batch: 10 positions, 2 of them padding; got {got}"
    assert _close(ns["padding_share"]([4, 4, 4], 2), 0.0), "equal lengths need no padding"
    assert _close(ns["padding_share"]([], 2), 0.0), "no sequences: return 0.0"


def _valid_rows(rows, lengths, block) -> str:
    flat = sorted(i for r in rows for i in r)
    if flat != list(range(len(lengths))):
        missing = set(range(len(lengths))) - set(flat)
        return (f"every index must appear exactly once ({len(missing)} missing, {len(flat) - len(set(flat))} repeated)"
                if missing or len(flat) != len(set(flat)) else "rows must hold indices into lengths")
    over = [r for r in rows if sum(lengths[i] for i in r) > block]
    return f"{len(over)} row(s) hold more than {block} tokens" if over else ""


@_check(E2, "q3", "rows hold whole conversations (indices into lengths), never more than block tokens each; "
                  "placing the longest first, each into the first row with room, keeps the rows few.")
def pack_keeps_conversations_whole(ns):
    lengths = [3, 5, 2, 7, 1, 4, 6]
    rows = [list(r) for r in ns["pack"](list(lengths), 8)]
    problem = _valid_rows(rows, lengths, 8)
    assert not problem, f"pack({lengths}, 8): {problem}"
    assert len(rows) <= 4, f"pack({lengths}, 8) uses {len(rows)} rows; 28 tokens fit in 4 rows of 8"


@_check(E2, "q3", "a conversation longer than a row cannot be packed whole: raise ValueError, do not cut it.")
def pack_refuses_a_conversation_longer_than_a_row(ns):
    try:
        ns["pack"]([3, 12], 8)
    except ValueError:
        return
    raise AssertionError("pack([3, 12], 8) did not raise ValueError")


@_check(E2, "q3", "share_padded: your padding_share of the 200 lengths, batches of 16; share_packed: padding when each "
                  "of your rows is padded to 256 tokens.")
def shares_are_measured(ns):
    from ftlab.world import World

    tok = _fresh_tokenizer()
    lengths = [len(tok.apply_chat_template(m, tokenize=True, return_dict=False))
               for m in World(0).instructions()["train"]["messages"][:200]]
    padded = sum(max(lengths[i:i + 16]) * len(lengths[i:i + 16]) for i in range(0, len(lengths), 16))
    _measured("share_padded", ns["share_padded"], 1 - sum(lengths) / padded, 1e-6, "batch in order, 16 at a time.")
    rows = [list(r) for r in ns["pack"](list(lengths), 256)]
    assert not _valid_rows(rows, lengths, 256), "pack(lengths, 256) gives invalid rows on this exercise's data"
    _measured("share_packed", ns["share_packed"], 1 - sum(lengths) / (len(rows) * 256), 1e-6,
              "count each row as 256 positions.")


@_check(E2, "q4", "positions restart at 0 with each conversation; attention is causal (j <= i) and stays inside one "
                  "conversation (lesson 2, section 5).")
def positions_and_mask_small_case(ns):
    import torch

    lengths = [2, 3]
    pos = [int(p) for p in ns["row_positions"](list(lengths))]
    assert len(pos) == 5, f"a row of 2 + 3 tokens has 5 positions, not {len(pos)}"
    assert pos[:2] == [0, 1] and pos[2] == 0, "the first token of each conversation has position 0"
    mask = torch.as_tensor(ns["row_mask"](list(lengths)))
    assert tuple(mask.shape) == (5, 5), f"row_mask([2, 3]) has shape {tuple(mask.shape)}, not (5, 5)"
    mask = mask.bool()
    assert not mask[0, 1], "a token must not attend to a later token"
    assert not mask[3, 1], "a token of the second conversation must not attend to the first conversation"
    assert mask[4, 2] and mask[4, 4] and mask[1, 0], "a token attends to itself and its own conversation's earlier tokens"
    assert int(mask.sum()) == 3 + 6, f"{int(mask.sum())} allowed pairs; a row of [2, 3] has 3 + 6"


# ------------------------------------------------------------------ 03: LoRA, memory, forgetting
E3 = "03_full_vs_lora"


@_check(E3, "q1", "count the numbers in A and in B (lesson 3's introduction).")
def lora_parameters_formula(ns):
    assert ns["lora_parameters"](192, 192, 4) == 1536, "a 192 -> 192 layer at r=4: count A (4 x 192) and B (192 x 4)"
    assert ns["lora_parameters"](192, 512, 8) == 5632, "d_in and d_out differ here: 192 -> 512 at r=8 is wrong"


@_check(E3, "q2", "B starts at zeros, so at first the wrapped layer computes exactly what the base layer does.")
def lora_linear_starts_as_the_base(ns):
    import torch

    torch.manual_seed(0)
    base = torch.nn.Linear(8, 6)
    layer = ns["LoRALinear"](base, r=2, alpha=4)
    x = torch.randn(3, 8)
    with torch.no_grad():
        gap = float((layer(x) - base(x)).abs().max())
    assert gap < 1e-6, f"before training the output differs from the base layer's by up to {gap:.3g}"


@_check(E3, "q2", "A is r x d_in and B is d_out x r, as Parameters named A and B; (alpha / r) scales B A x.")
def lora_linear_shapes_and_scale(ns):
    import torch

    torch.manual_seed(0)
    base = torch.nn.Linear(8, 6)
    layer = ns["LoRALinear"](base, r=2, alpha=4)
    A, B = getattr(layer, "A", None), getattr(layer, "B", None)
    assert isinstance(A, torch.nn.Parameter) and isinstance(B, torch.nn.Parameter), \
        "the layer needs torch.nn.Parameter attributes named A and B"
    assert tuple(A.shape) == (2, 8) and tuple(B.shape) == (6, 2), \
        f"A is {tuple(A.shape)} and B {tuple(B.shape)}; for 8 -> 6 at r=2 they are r x d_in and d_out x r"
    A, B = torch.randn(2, 8), torch.randn(6, 2)  # set by the check, so the expected value is its own
    layer.A, layer.B = torch.nn.Parameter(A), torch.nn.Parameter(B)
    x = torch.randn(3, 8)
    with torch.no_grad():
        expected = base(x) + 2.0 * x @ A.T @ B.T
        gap = float((layer(x) - expected).abs().max())
    assert gap < 1e-5, f"with a non-zero B the output is off by up to {gap:.3g} (is the update scaled by alpha / r?)"


@_check(E3, "q2", "everything in the base layer stays frozen, its bias included, as PEFT does (bias='none'): only A "
                  "and B train.")
def lora_linear_trains_only_a_and_b(ns):
    import torch

    layer = ns["LoRALinear"](torch.nn.Linear(8, 6), r=2, alpha=4)
    flags = {name: bool(p.requires_grad) for name, p in layer.named_parameters()}
    still = [name for name, grad in flags.items() if grad and name not in ("A", "B")]
    assert not still, f"{', '.join(still)} still train(s): freeze everything in the base layer, its bias too"
    trainable = sum(p.numel() for p in layer.parameters() if p.requires_grad)
    assert trainable == 2 * (8 + 6), f"{trainable} trainable parameters for 8 -> 6 at r=2; only A and B should train"


@_check(E3, "q3", "the number PEFT reports is what requires a gradient after get_peft_model on a fresh tiny-base "
                  "(lesson 3, section 1 counts them).")
def trainable_counts_match_peft(ns):
    from peft import LoraConfig, get_peft_model

    counts = ns["trainable"]
    assert set(counts) == {2, 8}, f"trainable should have the keys 2 and 8, not {sorted(counts)}"
    for r in (2, 8):
        model = get_peft_model(_fresh_model("tiny-base"), LoraConfig(r=r, target_modules=["q_proj", "v_proj"]))
        want = sum(p.numel() for p in model.parameters() if p.requires_grad)
        assert int(counts[r]) == want, f"trainable[{r}] is off by {abs(int(counts[r]) - want):,} from PEFT's count"


def _fresh_model(name: str):
    from ftlab.models import load_model

    return load_model(name)[0]


@_check(E3, "q4", "in 16-mixed a trained weight is fp32 (4 bytes) with a 4-byte gradient and two 4-byte AdamW "
                  "moments: 16 bytes; a frozen weight is fp16, 2 bytes and nothing else (lesson 3, section 4).")
def state_bytes_small_cases(ns):
    f = ns["state_bytes"]
    got = int(f(1000, 0))
    assert got != 4000, "frozen weights are stored in fp16 in 16-mixed: 2 bytes each, not 4"
    assert got == 2000, f"1000 frozen parameters: {got} bytes is wrong (weights only, fp16)"
    got = int(f(1000, 1000))
    assert got == 16000, f"1000 parameters, all training: {got} bytes is wrong (think per parameter)"
    got = int(f(1000, 10))
    assert got != 2000 + 16 * 10, "a LoRA adapter's parameters are already counted in n_params: 990 are frozen, 10 train"
    assert got == 2 * 990 + 16 * 10, f"1000 parameters of which 10 train: {got} bytes is wrong"


@_check(E3, "q4", "count the parameters from each config, then compare state_bytes with 15 * 2**30 for full "
                  "fine-tuning (all parameters train) and for LoRA r=16 (the adapter trains, and adds parameters).")
def fits_t4_is_computed(ns):
    from ftlab.memory import bundled_configs, lora_parameter_count, parameter_counts, read_config

    fits = ns["fits_t4"]
    configs = bundled_configs()
    assert set(fits) == set(configs), f"fits_t4 should have one key per bundled config: {sorted(configs)}"
    wrong = []
    for name, cfg in configs.items():
        c = read_config(cfg)
        n, lora = parameter_counts(c)["total"], lora_parameter_count(c, 16)
        want = {"full": 16 * n <= 15 * 2**30, "lora": 2 * n + 16 * lora <= 15 * 2**30}
        assert set(fits[name]) == {"full", "lora"}, f"fits_t4[{name!r}] should have the keys 'full' and 'lora'"
        wrong += [f"{name} {m}" for m in want if bool(fits[name][m]) != want[m]]
    assert not wrong, f"{len(wrong)} of the {2 * len(configs)} answers differ from a fresh computation"


@functools.lru_cache(maxsize=1)
def _forgetting_reference() -> tuple[float, float, float]:
    """(qa accuracy before, after full fine-tuning, after LoRA r=4) for exercise 3's q5, measured once per kernel."""
    import ftlab
    from ftlab.evaluation import evaluate
    from ftlab.lora import ATTENTION_TARGETS, lora_config
    from ftlab.training import train_sft
    from ftlab.world import World

    profile = ftlab.setup("cpu", quiet=True)
    chat, tok = _model("tiny-chat")
    data = World(0).domain()["train"].remove_columns("answer")
    out = [evaluate(chat, tok, "qa").accuracy]
    for lora in (False, True):
        model = ftlab.load_model("tiny-chat", profile, for_training=True)[0]
        peft = lora_config(model, r=4, targets=ATTENTION_TARGETS) if lora else None
        model = train_sft(model, tok, data, profile, peft_config=peft, assistant_only_loss=True, max_steps=30,
                          per_device_train_batch_size=8, quiet=True).model
        out.append(evaluate(model, tok, "qa").accuracy)
    return tuple(out)


# runs repeated with 1 and 2 threads land this close (exercises/QUESTIONS.md)
FORGET_TOLERANCE = 0.03


@_check(E3, "q5", "the general loss is the qa accuracy before tuning minus after; an untuned model loses nothing.")
def general_loss_of_the_untouched_model_is_zero(ns):
    got = float(ns["general_loss"](ns["chat"], ns["tok"]))
    assert abs(got) < 1e-9, f"general_loss(tiny-chat itself) is {got:+.3f}; a model that was not tuned forgot nothing"


@_check(E3, "q5", "train each run with tune() (30 steps, as given), then measure it with your general_loss.")
def forgetting_is_measured(ns):
    forget = ns["forget"]
    assert set(forget) == {"full", "lora"}, f"forget should have the keys 'full' and 'lora', not {sorted(forget)}"
    before, full, lora = _forgetting_reference()
    _measured("forget['full']", forget["full"], before - full, FORGET_TOLERANCE, "full fine-tuning, tune(lora=False).")
    _measured("forget['lora']", forget["lora"], before - lora, FORGET_TOLERANCE, "LoRA r=4, tune(lora=True).")


# ------------------------------------------------------------------ 04: RLHF
E4 = "04_rlhf"


@_check(E4, "q1", "the loss is -log of the probability that chosen beats rejected, sigma(difference of rewards); "
                  "PyTorch has a numerically stable log-sigmoid (lesson 4, section 3).")
def bradley_terry_simple_values(ns):
    import torch

    loss = ns["bradley_terry_loss"](torch.tensor([0.0, 2.0]), torch.tensor([0.0, 0.0]))
    expected = (math.log(2) + math.log(1 + math.exp(-2))) / 2
    assert _close(loss, expected), f"for rewards chosen [0, 2] vs rejected [0, 0] the loss is off by {abs(float(loss) - expected):.4f}"
    big = ns["bradley_terry_loss"](torch.tensor([-300.0]), torch.tensor([300.0]))
    assert math.isfinite(float(big)), "rewards of ±300 give an infinite or NaN loss: compute the log of the sigmoid stably"


@_check(E4, "q2", "the margin is beta times (the policy's gain over the reference on chosen) minus (the same on rejected); "
                  "the loss is -log sigmoid(margin), averaged (lesson 4, section 6).")
def dpo_loss_is_log_two_at_the_start(ns):
    import torch

    x = torch.tensor([-3.0, -5.0])
    got = float(ns["dpo_loss"](x, x, x, x, 0.1))
    assert _close(got, math.log(2)), f"when the policy equals the reference the loss must be log 2; it is off by {abs(got - math.log(2)):.4f}"


@_check(E4, "q2", "a policy that raised the chosen reply's log-probability must have a lower loss than log 2.")
def dpo_loss_rewards_the_chosen(ns):
    import torch

    ref = torch.tensor([-4.0])
    assert float(ns["dpo_loss"](torch.tensor([-2.0]), ref, ref, ref, 0.5)) < math.log(2), \
        "raising the chosen reply's log-probability did not lower the loss"
    assert float(ns["dpo_loss"](ref, torch.tensor([-2.0]), ref, ref, 0.5)) > math.log(2), \
        "raising the rejected reply's log-probability did not raise the loss"


@_check(E4, "q3", "count a win as 1, a tie as 0.5, a loss as 0, and divide by the number of prompts.")
def win_rate_with_ties(ns):
    got = ns["win_rate"]([1, 0, 1, 0], [0, 0, 1, 1])
    assert _close(got, 0.5), f"one win, two ties, one loss: got {got}"
    assert _close(ns["win_rate"]([2.0], [1.0]), 1.0), "a single win is a win rate of 1"


# the data the exercise's cells give (the checks keep their own copy)
_REFERENCE = ["The capital is Paris.", "The capital is Rome.", "Sorry, I cannot help with that.", "The opposite is cold."]
_BEFORE = ["The capital is Lyon.", "The capital is Rome.", "Happy to help!", "The opposite is cold."]
_AFTER = ["The capital is Paris.", "The capital is Rome.", "Sorry, I cannot help with that.", "The opposite is hot."]
_REWARDS = [[1.0, 2.5, 0.5, 3.0], [0.0, -1.0, 2.0, 1.0]]
_KL = [[0.2, 0.5, 0.1, 6.0], [1.0, 0.0, 3.0, 0.5]]
_LOGS = {
    "A": [{"step": 0, "reward": -0.8, "kl": 0.0, "true": 0.36}, {"step": 20, "reward": -0.2, "kl": 1.9, "true": 0.41},
          {"step": 40, "reward": 0.3, "kl": 3.2, "true": 0.47}, {"step": 60, "reward": 0.5, "kl": 4.0, "true": 0.52}],
    "B": [{"step": 0, "reward": -0.8, "kl": 0.0, "true": 0.36}, {"step": 20, "reward": 0.4, "kl": 9.5, "true": 0.38},
          {"step": 40, "reward": 1.6, "kl": 41.0, "true": 0.21}, {"step": 60, "reward": 2.9, "kl": 148.0, "true": 0.0}],
}


@_check(E4, "q3", "score every reply with true_score against its reference, then compare after with before.")
def rate_is_measured(ns):
    from ftlab.rlhf import true_score, win_rate

    ours = [float(true_score(a, r)) for a, r in zip(_AFTER, _REFERENCE)]
    theirs = [float(true_score(b, r)) for b, r in zip(_BEFORE, _REFERENCE)]
    _measured("rate", ns["rate"], win_rate(ours, theirs), 1e-9, "use after and before as given.")


def _rloo_reference(rewards, kl, beta):
    penalised = rewards - beta * kl
    k = penalised.shape[1]
    return penalised - (penalised.sum(1, keepdim=True) - penalised) / (k - 1)


@_check(E4, "q4", "penalise first (reward - beta * kl), then subtract from each reply the mean of the OTHER replies "
                  "to the same prompt, not the mean of all of them (lesson 4, section 4).")
def rloo_advantages_small_cases(ns):
    import torch

    rewards = torch.tensor([[1.0, 2.0, 6.0]])
    kl = torch.tensor([[0.0, 2.0, 4.0]])
    for beta in (0.0, 1.0):
        got = torch.as_tensor(ns["rloo_advantages"](rewards.clone(), kl.clone(), beta)).float()
        assert tuple(got.shape) == (1, 3), f"one prompt, 3 replies: the result has shape {tuple(got.shape)}, not (1, 3)"
        gap = float((got - _rloo_reference(rewards, kl, beta)).abs().max())
        assert gap < 1e-5, f"beta={beta}: an advantage is off by {gap:.3f}"


@_check(E4, "q4", "call your rloo_advantages on the given rewards and kl; the best reply is the argmax of prompt 0's row.")
def advantages_are_computed(ns):
    import torch

    rewards, kl = torch.tensor(_REWARDS), torch.tensor(_KL)
    for name, best, beta in (("adv_free", "best_free", 0.0), ("adv_leashed", "best_leashed", 0.5)):
        want = _rloo_reference(rewards, kl, beta)
        got = torch.as_tensor(ns[name]).float()
        assert got.shape == want.shape and float((got - want).abs().max()) < 1e-5, f"{name} differs from a fresh computation"
        assert int(ns[best]) == int(want[0].argmax()), f"{best} is not the reply with the largest advantage for prompt 0"


def _hacking_reference(log):
    first = log[0]
    return next((row["step"] for row in log[1:] if row["reward"] > first["reward"] and row["true"] < first["true"]), None)


@_check(E4, "q5", "compare each later entry with the first: hacking is the reward-model score up while the true "
                  "measure is down (lesson 4, section 5).")
def hacking_starts_small_cases(ns):
    f = ns["hacking_starts"]
    log = [{"step": 0, "reward": 0.0, "kl": 0.0, "true": 0.5}, {"step": 10, "reward": 1.0, "kl": 1.0, "true": 0.6},
           {"step": 20, "reward": 2.0, "kl": 5.0, "true": 0.4}]
    assert f(log) == 20, "reward up and true measure up is learning, not hacking; the step to report is the first hacked one"
    assert f(log[:2]) is None, "a run that never hacks gives None"


@_check(E4, "q5", "use your hacking_starts on each log, then read that run's KL at the step it returns.")
def hacked_run_is_read_from_the_logs(ns):
    logs = _LOGS
    hacked = [name for name, log in logs.items() if _hacking_reference(log) is not None]
    assert ns["hacked_run"] in logs, f"hacked_run should be one of {sorted(logs)}"
    assert ns["hacked_run"] in hacked, f"run {ns['hacked_run']!r} never has its reward up and its true measure down"
    step = _hacking_reference(logs[ns["hacked_run"]])
    kl = next(row["kl"] for row in logs[ns["hacked_run"]] if row["step"] == step)
    assert _close(ns["kl_at_start"], kl, 1e-9), "kl_at_start is not the KL logged at the step where hacking starts"


# ------------------------------------------------------------------ 05: ICL
E5 = "05_icl_vs_finetuning"
_DEMOS = [("France", "French"), ("Japan", "Japanese")]


@_check(E5, "q1", "one line per demonstration, 'input -> output' and a newline, then 'query ->' with no newline.")
def prompt_format(ns):
    got = ns["k_shot_prompt"](_DEMOS, "Brazil")
    want = "France -> French\nJapan -> Japanese\nBrazil ->"
    i = _first_difference(got, want)
    assert got == want, f"for two demonstrations and 'Brazil' the prompt differs at character {i} (yours: {got[max(0, i - 8):i + 8]!r})"
    assert ns["k_shot_prompt"]([], "Brazil") == "Brazil ->", "with no demonstrations the prompt is the query line alone"


@_check(E5, "q2", "count each demonstration line's tokens; starting from the newest, keep adding lines while the total "
                  "plus the query line stays within window - reserve (lesson 5, section 5).")
def max_shots_matches_the_reference(ns):
    from ftlab.icl import build_prompt

    tok = _fresh_tokenizer("tiny-base")
    demos = _DEMOS * 30
    for window in (40, 100):
        expected = build_prompt(tok, demos, "Brazil", window, on_overflow="truncate").k
        got = ns["max_shots"](tok, demos, "Brazil", window)
        assert got == expected, f"window {window}: {got} demonstrations is {'too many' if got > expected else 'too few'}"


def _icl_queries():
    from ftlab.world import World

    task = World(0).icl_task("language")
    pool = list(zip(task["train"]["input"], task["train"]["output"]))
    return pool, list(zip(task["test"]["input"], task["test"]["output"]))[:20]


@_check(E5, "q3", "k = 0 is the query line alone; for k = 4 each query gets its own draw of demonstrations, "
                  "seeded by its position, never containing the query itself (lesson 5, section 2).")
def accuracies_are_measured(ns):
    from ftlab.icl import accuracy, build_prompt, predict, sample_demos

    got = {name: ns[name] for name in ("acc_k0", "acc_k4")}
    base, tok = _model("tiny-base")
    pool, queries = _icl_queries()
    answers = [y for _, y in queries]
    k0 = accuracy(predict(base, tok, [f"{x} ->" for x, _ in queries], with_probability=False), answers)
    k4 = accuracy(predict(base, tok, [build_prompt(tok, sample_demos(pool, 4, seed=i, exclude=x), x, 256).text
                                      for i, (x, _) in enumerate(queries)], with_probability=False), answers)
    _measured("acc_k0", got["acc_k0"], k0, 1 / 20, "the 20 first test pairs, bare prompts.")
    _measured("acc_k4", got["acc_k4"], k4, 1 / 20, "the 20 first test pairs, 4 demonstrations each.")


# repeated runs with 1 and 2 threads land this close (exercises/QUESTIONS.md)
FT_TOLERANCE = 0.1


@functools.lru_cache(maxsize=1)
def _finetune_reference() -> tuple[float, float, float, float]:
    """(accuracy, training tokens, mean 4-shot prompt tokens, mean bare prompt tokens) for exercise 5's q4."""
    from datasets import Dataset
    from peft import LoraConfig

    import ftlab
    from ftlab.icl import accuracy, build_prompt, predict, sample_demos
    from ftlab.training import train_sft

    profile = ftlab.setup("cpu", quiet=True)
    _, tok = _model("tiny-base")
    pool, queries = _icl_queries()
    data = Dataset.from_dict({"prompt": [f"{x} ->" for x, _ in pool[:32]], "completion": [f" {y}\n" for _, y in pool[:32]]})
    run = train_sft(ftlab.load_model("tiny-base", profile, for_training=True)[0], tok, data, profile,
                    peft_config=LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", task_type="CAUSAL_LM"),
                    max_steps=30, per_device_train_batch_size=8, quiet=True)
    acc = accuracy(predict(run.model, tok, [f"{x} ->" for x, _ in queries], with_probability=False), [y for _, y in queries])
    tokens = max(h.get("num_tokens", 0) for h in run.trainer.state.log_history)

    def n(p):
        return len(tok(p, add_special_tokens=False)["input_ids"])

    icl = sum(n(build_prompt(tok, sample_demos(pool, 4, seed=i, exclude=x), x, 256).text) for i, (x, _) in enumerate(queries))
    return acc, float(tokens), icl / len(queries), sum(n(f"{x} ->") for x, _ in queries) / len(queries)


@_check(E5, "q4", "training pays 6·N per training token once, then each query 2·N per prompt token; ICL pays 2·N per "
                  "(longer) prompt token every time. Where the two totals meet is the break-even (lesson 5, section 4).")
def break_even_small_cases(ns):
    f = ns["break_even"]
    got = float(f(1000, 40, 10))
    assert got > 0, "the break-even is a positive number of queries"
    assert _close(f(2000, 40, 10), 2 * got), "twice the training tokens should take twice as many queries to pay off"
    assert _close(f(1000, 70, 10), got / 2), "twice the saving per query should pay off in half as many queries"
    assert _close(got, 100.0), f"1,000 training tokens, prompts of 40 vs 10 tokens: {got:g} queries is wrong"


@_check(E5, "q4", "train with the given finetune on 32 pairs, ask the 20 queries with bare prompts, read the tokens "
                  "TRL logged, and average the prompt lengths over the same 20 queries.")
def the_fine_tuning_side_is_measured(ns):
    got = {name: ns[name] for name in ("acc_ft", "train_tokens", "queries_k4")}
    acc, tokens, icl, ft = _finetune_reference()
    _measured("acc_ft", got["acc_ft"], acc, FT_TOLERANCE, "bare prompts 'x ->' on the 20 queries.")
    _measured("train_tokens", got["train_tokens"], tokens, 0.5, "the largest num_tokens TRL logged.")
    want = 3 * tokens / (icl - ft)
    _measured("queries_k4", got["queries_k4"], want, 1e-6 * want, "with your break_even and the mean prompt lengths.")


@_check(E5, "q5", "the function takes (model, tokenizer, facts, show_own), in that order.")
def copy_accuracy_has_the_asked_signature(ns):
    params = _parameters(ns["copy_accuracy"])
    assert len(params) == 4, f"copy_accuracy takes {params}; the question asks for (model, tokenizer, facts, show_own)"


@_check(E5, "q5", "each number is a share of the 40 facts: the facts answered right, over 40 (lesson 5, section 4).")
def copy_rates_are_shares_of_the_facts(ns):
    got = {name: ns[name] for name in ("copy_base", "copy_induction", "blind_induction")}  # NameError first, if any
    for name, value in got.items():
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise AssertionError(f"{name} should be a number, not {type(value).__name__}") from None
        assert 0 <= value <= 1 and _close(value * 40, round(value * 40), 1e-6), \
            f"{name} = {value!r} is not a share of the 40 facts"


@_check(E5, "q5", "a made-up word's animal is in no pre-training text: without its own fact in the prompt a model can "
                  "only guess (one animal of 20). With it, the induction model has something to copy: the fact goes "
                  "last, right before the query line, and each model reads its prompt with its own tokenizer.")
def copying_needs_the_fact_in_the_prompt(ns):
    blind, shown = float(ns["blind_induction"]), float(ns["copy_induction"])
    assert blind <= 0.25, (f"blind_induction is {blind:.2f}, far above guessing: is the query's own fact still in "
                           "those prompts?")
    assert shown >= blind + 0.25, ("copy_induction is hardly above blind_induction: check that the own fact is in the "
                                   "prompt and that tiny-base-induction gets its own tokenizer")
