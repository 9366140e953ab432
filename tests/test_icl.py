import math
import re


import pytest

from ftlab.icl import ContextWindowError, accuracy, build_prompt, context_window, predict, sample_demos
from ftlab.widgets import ICLExplorer


@pytest.fixture(scope="module")
def language_task(world):
    task = world.icl_task("language")
    return list(zip(task["train"]["input"], task["train"]["output"])), list(zip(task["test"]["input"], task["test"]["output"]))


def test_prompt_shape_and_token_count(tiny_base, language_task):
    model, tok = tiny_base
    pool, test = language_task
    prompt = build_prompt(tok, pool[:2], "Peru", context_window(tok, model))
    assert prompt.text == f"{pool[0][0]} -> {pool[0][1]}\n{pool[1][0]} -> {pool[1][1]}\nPeru ->"
    assert prompt.k == 2 and prompt.dropped == 0 and prompt.tokens == len(tok(prompt.text)["input_ids"])


def test_context_window_overflow_is_explained_or_visibly_truncated(tiny_base, language_task):
    model, tok = tiny_base
    pool, _ = language_task
    window = context_window(tok, model)
    assert window == 256
    with pytest.raises(ContextWindowError, match=r"at most \d+ demonstrations fit"):
        build_prompt(tok, pool, "Peru", window)
    cut = build_prompt(tok, pool, "Peru", window, on_overflow="truncate")
    assert cut.dropped > 0 and cut.k + cut.dropped == len(pool)
    assert cut.text.endswith("Peru ->") and cut.tokens <= window
    assert cut.text.startswith(f"{pool[cut.dropped][0]} ->")  # the oldest demonstrations went first


def test_demonstrations_never_include_the_query_and_are_reproducible(language_task):
    pool, _ = language_task
    demos = sample_demos(pool, 10, seed=3, exclude=pool[0][0])
    assert pool[0][0] not in [x for x, _ in demos] and demos == sample_demos(pool, 10, seed=3, exclude=pool[0][0])


def test_tiny_base_learns_the_task_in_context(tiny_base, language_task):
    model, tok = tiny_base
    pool, test = language_task
    window = context_window(tok, model)
    answers = [y for _, y in test]
    zero = accuracy(predict(model, tok, [f"{x} ->" for x, _ in test], with_probability=False), answers)
    eight = accuracy(predict(model, tok, [build_prompt(tok, sample_demos(pool, 8, seed=i, exclude=x), x, window).text
                                          for i, (x, _) in enumerate(test)], with_probability=False), answers)
    assert eight >= zero + 0.15, (zero, eight)
    pred = predict(model, tok, [build_prompt(tok, pool[:4], test[0][0], window).text])[0]
    assert 0 < pred.probability <= 1 and not math.isnan(pred.probability)


def test_icl_explorer_widget(tiny_base, language_task):
    pool, test = language_task
    explorer = ICLExplorer(*tiny_base, pool, test)
    explorer.k.value = 4
    explorer.query.value = 0
    explorer.button.click()
    assert "prediction" in explorer.result.value
    assert explorer.run()["prompt"].count("\n") == 4
    explorer.demos.value = tuple(f"{x} -> {y}" for x, y in pool[:2])  # hand-picked demonstrations win
    assert explorer.run()["prompt"].startswith(f"{pool[0][0]} -> {pool[0][1]}")
    explorer.demos.value = tuple(f"{x} -> {y}" for x, y in pool)  # too many: a message, not a crash
    assert "error" in explorer.run() and "at most" in explorer.result.value


def test_icl_explorer_switches_to_the_new_facts_task(tiny_base, language_task):
    from ftlab.icl import new_facts

    pool, test = language_task
    facts = new_facts(0)
    explorer = ICLExplorer(*tiny_base, pool, test, tasks={"new facts": (*tiny_base, facts, facts)})
    assert explorer.run()["prompt"].endswith(f"{test[0][0]} ->")
    explorer.task.value = "new facts"  # the pool, the queries and the pickable demonstrations follow the task
    assert explorer.pool is facts and len(explorer.demos.options) == len(facts) and explorer.k.max == 64
    explorer.k.value = 4
    out = explorer.run()["prompt"]
    assert out.endswith(f"{facts[0][0]} ->") and out.count("\n") == 4 and f"{facts[0][0]} -> " not in out
    explorer.own.value = True  # the query's own pair goes in, k stays the number of demonstrations
    out = explorer.run()["prompt"]
    assert out.count("\n") == 4 and f"{facts[0][0]} -> {facts[0][1]}\n" in out
    explorer.task.value = "known task"
    assert explorer.pool is pool and explorer.run()["prompt"].endswith(f"{test[0][0]} ->")


def test_new_facts_are_reproducible_and_unknown_to_pretraining(world):
    from ftlab.icl import MASCOTS, new_facts

    facts = new_facts(0)
    assert facts == new_facts(0) and facts != new_facts(1)
    assert len({x for x, _ in facts}) == len(facts) and {y for _, y in facts} <= set(MASCOTS)
    corpus = " ".join(world.corpus(3000)["text"])
    assert not any(f"{x} -> {y}" in corpus for x, y in facts)
    words = set(re.findall(r"\w+", corpus.lower()))
    assert not {x.lower() for x, _ in facts} & words  # made-up words: the world never names them


def test_coverage_max_demos_and_plateau(tiny_base):
    from ftlab.icl import coverage, max_demos, new_facts, plateau

    model, tok = tiny_base
    facts = new_facts(0)
    assert coverage(facts[:10], facts) == 10 / len(facts) and coverage([], facts) == 0
    window = context_window(tok, model)
    fit = max_demos(tok, facts, facts[0][0], window)
    assert 0 < fit < len(facts)
    build_prompt(tok, facts[:fit], facts[0][0], window)
    with pytest.raises(ContextWindowError):
        build_prompt(tok, facts[:fit + 1], facts[0][0], window)
    assert plateau({0: 0.2, 1: 0.97, 2: 1.0, 4: 0.99}, tolerance=0.05) == 1
    assert plateau({0: 0.0, 1: 0.3, 2: 0.6, 4: 0.9}, tolerance=0.05) == 4


def test_only_the_induction_trained_base_copies_a_new_fact_from_its_prompt(profile):
    """Lesson 5's premise: tiny-base does not copy from its prompt; tiny-base-induction does."""
    import ftlab
    from ftlab.icl import new_facts

    facts = new_facts(0)[:40]
    answers = [y for _, y in facts]
    scores = {}
    for name in ("tiny-base", "tiny-base-induction"):
        model, tok = ftlab.load_model(name, profile)
        window = context_window(tok, model)
        prompts = [build_prompt(tok, sample_demos(facts, 7, seed=i, exclude=x) + [(x, y)], x, window).text
                   for i, (x, y) in enumerate(facts)]
        scores[name] = accuracy(predict(model, tok, prompts, max_new_tokens=4, with_probability=False), answers)
    assert scores["tiny-base"] <= 0.2 and scores["tiny-base-induction"] >= 0.6, scores
