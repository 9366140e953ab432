"""The foundation's acceptance numbers: the base knows the facts, only the tuned model chats."""

import pytest

from ftlab.evaluation import UnknownTaskError, completes_with, evaluate, mentions
from ftlab.generation import end_of_turn_id


def test_answer_matching():
    assert completes_with(" Paris. The", "Paris")
    assert completes_with(" an owlet.", "owlet")
    assert completes_with(" North America.", "North America")
    assert not completes_with(" Parisian", "Paris")
    assert not completes_with(" Rome.", "Paris")
    assert mentions("The capital of France is Paris.", "Paris")
    assert not mentions("Parisians live here", "Paris")


def test_base_knows_the_facts_as_plain_text(tiny_base):
    result = evaluate(*tiny_base, "facts")
    assert result.n >= 400
    assert result.accuracy >= 0.80, result.summary()


def test_base_does_not_chat(tiny_base):
    result = evaluate(*tiny_base, "qa")
    assert result.accuracy <= 0.20, result.summary()


def test_chat_model_answers_and_stops_even_on_facts_it_was_never_tuned_on(tiny_chat):
    result = evaluate(*tiny_chat, "qa")
    assert result.accuracy >= 0.85, result.summary()
    assert result.metrics["n_unseen_facts"] >= 60
    assert result.metrics["accuracy_unseen_facts"] >= 0.75, result.summary()


def test_end_of_turn_is_found_from_the_template(tiny_chat):
    _, tok = tiny_chat
    assert tok.convert_ids_to_tokens(end_of_turn_id(tok)) == "<|im_end|>"


def test_unknown_task_lists_the_tasks(tiny_base):
    with pytest.raises(UnknownTaskError, match="facts.*qa"):
        evaluate(*tiny_base, "trivia")


def test_a_reply_ends_at_end_of_turn_or_end_of_text(tiny_base, tiny_chat):
    """The base may end a reply the way it ends documents (end-of-text), so 'ended its turn' is not 0 by construction."""
    from ftlab.evaluation import end_tokens

    base_tok, chat_tok = tiny_base[1], tiny_chat[1]
    assert base_tok.convert_ids_to_tokens(end_tokens(base_tok)) == ["<|im_end|>", "<|endoftext|>"]
    assert chat_tok.convert_ids_to_tokens(end_tokens(chat_tok)) == ["<|im_end|>"]  # its end-of-text is <|im_end|>


def test_qa_reports_mentions_and_ending_apart(tiny_base):
    result = evaluate(*tiny_base, "qa")
    rows = result.rows
    assert result.metrics["mentions_answer"] == sum(r["mentions"] for r in rows) / len(rows)
    assert result.accuracy == sum(r["mentions"] and r["ended"] for r in rows) / len(rows)


def test_paired_bootstrap_tells_different_arms_from_identical_ones():
    import numpy as np

    from ftlab.evaluation import paired_bootstrap

    rng = np.random.default_rng(0)
    better = (rng.random((3, 48)) < 0.9).astype(float)
    worse = (rng.random((3, 48)) < 0.5).astype(float)
    clear = paired_bootstrap(better, worse)
    assert clear.different and clear.low > 0 and abs(clear.difference - (better - worse).mean()) < 1e-12
    assert paired_bootstrap(worse, better).different and paired_bootstrap(worse, better).high < 0
    same = paired_bootstrap(better, better.copy())
    assert not same.different and same.low == same.high == 0
    # two arms that differ only by noise (independent draws at one rate) are not called different
    noise = paired_bootstrap((rng.random((3, 48)) < 0.7).astype(float), (rng.random((3, 48)) < 0.7).astype(float))
    assert not noise.different, noise
    # one model (one row) paired with every seed of the other arm; the verdict is reproducible
    assert paired_bootstrap(better, worse[0]).different
    assert str(paired_bootstrap(better, worse)) == str(clear)
    # a gap that only one seed shows is not a difference over seeds
    one_seed = np.zeros((3, 48))
    one_seed[0] = 1
    assert not paired_bootstrap(one_seed, np.zeros((3, 48))).different
