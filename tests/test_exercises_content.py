"""The exercises grade what they ask (#18): the answers the issue found wrongly accepted now fail
their self-checks, with a message about the question and not the answer; hints are ideas, not code;
every lesson has its questions; every measured answer is recomputed by a hidden test."""

import re
from pathlib import Path

import nbformat
import pytest
import torch

import ftlab.exercises as ex
from ftlab.exercises.checks import CHECKS

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ROOT / "exercises" / "source"


def _run(exercise, question, namespace):
    ex.start(exercise)
    return ex.run_checks(exercise, question, namespace)


def _fails(exercise, question, namespace, *words):
    passed, total, messages = _run(exercise, question, namespace)
    assert passed < total, f"{exercise} {question}: a wrong answer passed every public check"
    text = " ".join(messages)
    for w in words:
        assert w in text, (w, messages)
    return text


def test_every_hint_is_an_idea_not_code():
    for exercise, questions in CHECKS.items():
        for question, checks in questions.items():
            for c in checks:
                # a call with keyword arguments, or with several arguments, is code to paste
                assert not re.search(r"\w\([^)]*[=,]", c.hint), (exercise, question, c.hint)
                assert "apply_chat_template" not in c.hint and "logsigmoid" not in c.hint, (exercise, question, c.hint)


def test_each_lesson_has_its_questions_and_every_question_a_check():
    for path in sorted(SOURCES.glob("*.ipynb")):
        nb = nbformat.read(str(path), as_version=4)
        graded = [c.metadata["nbgrader"]["grade_id"] for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")]
        assert len(graded) >= 4 and set(graded) == set(CHECKS[path.stem]), (path.name, graded)


def test_hidden_tests_recompute_what_they_check():
    """No hidden test trusts a measured number: each measured answer is compared with a value the test
    computed itself, within a stated tolerance."""
    measured = {"01_base_vs_tuned": {"q3": ["base_plain_acc", "base_acc", "chat_acc"], "q4": ["n_cool", "n_hot"]},
                "02_sft_formatting": {"q3": ["share_padded", "share_packed"]},
                "03_full_vs_lora": {"q3": ["trainable"], "q4": ["fits_t4"], "q5": ["forget"]},
                "04_rlhf": {"q3": ["rate"], "q4": ["adv_free", "adv_leashed"], "q5": ["hacked_run", "kl_at_start"]},
                "05_icl_vs_finetuning": {"q3": ["acc_k0", "acc_k4"], "q4": ["acc_ft", "train_tokens", "queries_k4"],
                                         "q5": ["copy_base", "copy_induction", "blind_induction"]}}
    for exercise, questions in measured.items():
        nb = nbformat.read(str(SOURCES / f"{exercise}.ipynb"), as_version=4)
        cells = {c.metadata["nbgrader"]["grade_id"]: c.source for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")}
        for question, names in questions.items():
            hidden = cells[question].split("### BEGIN HIDDEN TESTS")[1]
            for name in names:
                assert name in hidden, (exercise, question, name)
            # the test builds its own objects: it loads a model or computes from its own data
            assert re.search(r"^_\w+ = |^_\w+, _\w+ = |^for _\w+|^def _", hidden, re.M), (exercise, question)


# ------------------------------------------------------------------ the cases the issue listed


def test_ex1_q3_accuracy_with_four_arguments_fails_on_its_signature():
    def accuracy(model, tokenizer, questions, answers):
        return 1.0

    text = _fails("01_base_vs_tuned", "q3", {"accuracy": accuracy}, "(model, tokenizer, questions, answers, chat)")
    assert "1.0" not in text


def _lora_like_the_old_lesson(base, r, alpha):
    class LoRALinear(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.base = base
            self.base.weight.requires_grad_(False)  # the bias still trains
            self.A = torch.nn.Parameter(torch.randn(r, base.in_features) / r)
            self.B = torch.nn.Parameter(torch.zeros(base.out_features, r))
            self.scale = alpha / r

        def forward(self, x):
            return self.base(x) + self.scale * (x @ self.A.T @ self.B.T)

    return LoRALinear()


def test_ex3_q2_a_trainable_bias_fails_and_the_hint_says_so():
    text = _fails("03_full_vs_lora", "q2", {"LoRALinear": _lora_like_the_old_lesson}, "base.bias", "bias")
    assert "28" not in text  # the expected count is not given away


def test_ex3_q2_a_frozen_bias_passes():
    def lora(base, r, alpha):
        layer = _lora_like_the_old_lesson(base, r, alpha)
        layer.base.bias.requires_grad_(False)
        return layer

    passed, total, messages = _run("03_full_vs_lora", "q2", {"LoRALinear": lora})
    assert passed == total, messages


def _stream_pack(sequences, block):
    """The naive packing the old exercise accepted: cut the concatenated stream, across conversations."""
    stream = [t for s in sequences for t in s]
    return [stream[i:i + block] for i in range(0, len(stream) - block + 1, block)]


def test_ex2_q1_labels_shifted_by_one_fail_and_the_hint_says_so():
    from ftlab.formatting import assistant_labels

    def loss_labels(tokenizer, messages):
        ids, labels = assistant_labels(tokenizer, messages)
        return ids, labels[1:] + [-100]  # the next token's id at each position: the model shifts, not the labels

    _fails("02_sft_formatting", "q1", {"loss_labels": loss_labels}, "shifted by one")


def test_ex2_q3_packing_across_conversations_fails():
    def pack(lengths, block):
        return _stream_pack([[i] * n for i, n in enumerate(lengths)], block)

    _fails("02_sft_formatting", "q3", {"pack": pack}, "exactly once")


def test_ex2_q3_a_packer_that_cuts_long_conversations_fails():
    def pack(lengths, block):
        return [[i] for i in range(len(lengths))]  # one per row, and no error for a too-long one

    _fails("02_sft_formatting", "q3", {"pack": pack}, "ValueError")


def test_ex4_q4_baseline_of_all_replies_fails():
    def rloo_advantages(rewards, kl, beta):
        p = rewards - beta * kl
        return p - p.mean(1, keepdim=True)  # includes the reply itself in its own baseline

    text = _fails("04_rlhf", "q4", {"rloo_advantages": rloo_advantages}, "off by")
    assert "OTHER" in text


def test_ex4_q5_hacking_is_reward_up_and_truth_down():
    def hacking_starts(log):
        return next((r["step"] for r in log[1:] if r["reward"] > log[0]["reward"]), None)  # any reward rise

    _fails("04_rlhf", "q5", {"hacking_starts": hacking_starts}, "not hacking")


def test_ex1_q4_top_p_that_drops_the_crossing_token_fails():
    def sampling_probs(logits, temperature, top_p):
        probs = torch.softmax(logits / temperature, -1)
        s, order = probs.sort(descending=True)
        keep = s.cumsum(0) <= top_p  # drops the token that crosses top_p
        keep[0] = True
        out = torch.zeros_like(probs)
        out[order[keep]] = s[keep]
        return out / out.sum()

    _fails("01_base_vs_tuned", "q4", {"sampling_probs": sampling_probs}, "can be sampled")


def test_ex1_q2_word_boundary_regex_fails_on_punctuation_and_the_hint_says_so():
    def is_correct(reply, answer, ended):
        return bool(ended) and re.search(r"\b" + re.escape(answer.lower()) + r"\b", reply.lower()) is not None

    text = _fails("01_base_vs_tuned", "q2", {"is_correct": is_correct}, "(a+b)")
    hints = " ".join(c.hint for c in CHECKS["01_base_vs_tuned"]["q2"])
    assert "(a+b)" in hints and "boundary" in hints, hints
    assert text


def test_ex5_q5_copies_need_the_fact_in_the_prompt():
    _fails("05_icl_vs_finetuning", "q5", {"copy_accuracy": lambda m, t, f, s: 0.0, "copy_base": 0.0,
                                          "copy_induction": 0.05, "blind_induction": 0.05}, "own fact")
    _fails("05_icl_vs_finetuning", "q5", {"copy_accuracy": lambda m, t, f, s: 0.0, "copy_base": 0.0,
                                          "copy_induction": 0.8, "blind_induction": 0.33}, "not a share")


def test_ex5_q4_break_even_small_cases():
    _fails("05_icl_vs_finetuning", "q4", {"break_even": lambda t, i, f: 2 * t / (i - f)}, "is wrong")


def test_measured_numbers_are_recomputed_not_compared_with_constants():
    """A made-up number fails, and the message gives the gap, not the value."""
    import math

    from ftlab.icl import accuracy, predict
    from ftlab.models import load_model
    from ftlab.world import World

    base, tok = load_model("tiny-base")
    task = World(0).icl_task("language")
    queries = list(zip(task["test"]["input"], task["test"]["output"]))[:20]
    k0 = accuracy(predict(base, tok, [f"{x} ->" for x, _ in queries], with_probability=False), [y for _, y in queries])
    fake = 1.0 if k0 < 0.5 else 0.0
    text = _fails("05_icl_vs_finetuning", "q3", {"acc_k0": fake, "acc_k4": 1.0}, "fresh measurement")
    assert f"{k0:.3f}" not in text and not math.isclose(k0, fake)
