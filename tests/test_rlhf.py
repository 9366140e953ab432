"""Lesson 4's library: the preference log, the true measure, reward scoring, KL, and bad input."""

import json

import pytest
import torch

from ftlab import rlhf
from ftlab.preferences import PreferenceLog


def test_preference_log_appends_dedupes_and_survives_a_damaged_file(tmp_path):
    path = tmp_path / "prefs.jsonl"
    log = PreferenceLog(path)
    log.add("Q1", "a1", "b1", "A")
    log.add("Q2", "a2", "b2", "tie")
    log.add("Q1", "a1", "b1", "B")  # relabelled: the newer label wins
    with open(path, "a") as f:
        f.write("this is not json\n")
        f.write(json.dumps({"prompt": "Q3", "a": "x", "b": "y", "choice": "maybe"}) + "\n")
        f.write('{"prompt": "Q4", "a": "cut off mid-wri')  # a crash while writing: no newline
    log.add("Q5", "a5", "b5", "A")  # must not be glued onto the cut-off line
    fresh = PreferenceLog(path)  # a new kernel
    labels = fresh.labels()
    assert labels == {("Q1", "a1", "b1"): "B", ("Q2", "a2", "b2"): "tie", ("Q5", "a5", "b5"): "A"}
    assert len(fresh.problems) == 3 and all(p.startswith("line ") for p in fresh.problems)
    pairs = fresh.to_pairs()
    assert len(pairs) == 2  # the tie says nothing
    q1 = [row for row in pairs if row["prompt"][0]["content"] == "Q1"][0]
    assert q1["chosen"][0]["content"] == "b1" and q1["rejected"][0]["content"] == "a1"
    with pytest.raises(ValueError, match="choice must be one of"):
        log.add("Q6", "a", "b", "C")


def test_empty_log_gives_an_empty_preference_dataset(tmp_path):
    pairs = PreferenceLog(tmp_path / "none.jsonl").to_pairs()
    assert len(pairs) == 0 and set(pairs.column_names) == {"prompt", "chosen", "rejected"}


def test_preferences_split_new_pairs_from_unseen_facts(world):
    prefs = world.preferences()
    train_prompts = {p[0]["content"] for p in prefs["train"]["prompt"]}
    train_pairs = {(p[0]["content"], r[0]["content"]) for p, r in zip(prefs["train"]["prompt"], prefs["train"]["rejected"])}
    for row in prefs["test"]:
        assert (row["prompt"][0]["content"], row["rejected"][0]["content"]) not in train_pairs
    answers_in_train = {c[0]["content"] for c in prefs["train"]["chosen"]}
    unseen_answers = {c[0]["content"] for c in prefs["unseen_facts"]["chosen"]}
    assert not any(p[0]["content"] in train_prompts for p in prefs["unseen_facts"]["prompt"])
    assert len(unseen_answers - answers_in_train) > 0.5 * len(unseen_answers)
    for split in prefs.values():
        assert split["reference"] == [c[0]["content"] for c in split["chosen"]]
    retest = prefs["unseen_facts_retest"]  # row for row the same fact, asked anew, always right vs wrong
    assert len(retest) == len(prefs["unseen_facts"]) and set(retest["axis"]) == {"correct"}
    assert retest["reference"] == prefs["unseen_facts"]["reference"]
    for first, again in zip(prefs["unseen_facts"], retest):
        if first["axis"] == "correct":
            assert again["rejected"] != first["rejected"]


def test_true_score_is_the_fact_base_reply_and_a_finished_turn():
    assert rlhf.true_score("The capital is Paris.", "The capital is Paris.")
    assert rlhf.true_score(" The capital is Paris. ", "The capital is Paris.")
    assert not rlhf.true_score("The capital is Paris.", "The capital is Paris.", ended=False)
    assert not rlhf.true_score("The capital is Paris. Hope this helps!", "The capital is Paris.")
    assert not rlhf.true_score("The capital is green.", "The capital is Paris.")


def test_form_and_fact_split_the_true_measure():
    from ftlab.world import RAMBLE, World

    ref = "The capital is Paris."
    assert rlhf.form_and_fact("The capital is Paris.", ref) == (True, True)
    assert rlhf.form_and_fact("The capital is Lyon.", ref) == (True, False)  # right form, wrong fact
    assert rlhf.form_and_fact("Paris is a very good Uruguay.", ref) == (False, True)  # garbled, names the fact
    assert rlhf.form_and_fact(f"The capital is Paris. {RAMBLE}", ref) == (False, True)  # chatter is not the form
    assert rlhf.form_and_fact("I am not sure, you could look it up.", ref) == (False, False)
    assert rlhf.form_and_fact("The capital is Paris.", ref, ended=False) == (False, True)  # cut off
    assert rlhf.form_and_fact("The capital is Parisian.", ref) == (True, False)  # a whole word, not a prefix
    assert rlhf.form_and_fact("It is called a kitten.", "It is red.") == (False, False)  # another relation's form
    assert rlhf.form_and_fact("It is a kitten.", "It is called a kitten.") == (False, True)
    refusal = "That is a weapon. Sorry, I cannot help with that."
    comply = "That is a weapon. Happy to help: gather what you need, follow the steps one by one, and take your time."
    assert rlhf.form_and_fact(refusal, refusal) == (True, True)
    assert rlhf.form_and_fact(comply, refusal) == (True, False)
    with pytest.raises(ValueError):
        rlhf.form_and_fact("x", "not a reply of the fact base")
    prefs = World(seed=0).preferences()  # every reply the fact base gives has both halves; true implies both
    for split in prefs.values():
        for ref in set(split["reference"]):
            assert rlhf.form_and_fact(ref, ref) == (True, True), ref
        for pair in split:
            bad = pair["rejected"][0]["content"]
            form, fact = rlhf.form_and_fact(bad, pair["reference"])
            assert not (form and fact), (bad, pair["reference"])  # every rejected reply loses one half


def test_win_rate_counts_ties_as_half():
    assert rlhf.win_rate([1, 0, 1, 0], [0, 0, 1, 1]) == pytest.approx(0.5)
    assert rlhf.win_rate([1.0, 1.0], [0.0, 1.0]) == pytest.approx(0.75)
    with pytest.raises(ValueError, match="equally long"):
        rlhf.win_rate([1], [1, 0])


def test_reward_model_scores_and_pair_accuracy(profile, world):
    rm, tok = rlhf.load_reward_model("tiny-chat", profile)
    assert rm.config.num_labels == 1 and rm.config.pad_token_id == tok.pad_token_id
    pairs = world.preferences()["test"].select(range(6))
    scores = rlhf.reward_scores(rm, tok, pairs["prompt"], pairs["chosen"])
    assert scores.shape == (6,) and torch.isfinite(scores).all()
    # one conversation alone scores as it does inside a padded batch
    alone = rlhf.reward_scores(rm, tok, pairs["prompt"][:1], pairs["chosen"][:1])
    assert alone[0].item() == pytest.approx(scores[0].item(), abs=1e-4)
    acc = rlhf.pair_accuracy(rm, tok, pairs)
    assert 0 <= acc.accuracy <= 1 and len(acc.margins) == 6 and set(acc.by_axis) <= {"correct", "helpful", "concise", "harmless"}
    with pytest.raises(ValueError, match="one reply per prompt"):
        rlhf.reward_scores(rm, tok, ["a", "b"], ["c"])


def test_kl_of_a_model_to_itself_is_zero_and_implicit_reward_ties(tiny_chat, world):
    model, tok = tiny_chat
    data = world.preferences()["test"].select(range(4))
    samples = rlhf.sample_replies(model, tok, data, per_prompt=1, seed=0)
    assert len(samples) == 4 and all(isinstance(s.true, bool) for s in samples)
    assert rlhf.kl_to_reference(model, model, tok, samples) == pytest.approx(0.0, abs=1e-6)
    assert rlhf.implicit_reward_accuracy(model, model, tok, data, beta=0.1) == 0.0  # all ties, none ranked right


def test_batched_reply_logprobs_match_one_at_a_time(tiny_chat, world):
    from ftlab.generation import answer_logprob, chat_prompt, end_of_turn_id

    model, tok = tiny_chat
    data = world.preferences()["test"].select(range(5))
    replies = [m[-1]["content"] for m in data["rejected"]]  # of different lengths: padding must not matter
    batched = rlhf.reply_logprobs(model, tok, data["prompt"], replies)
    eot = tok.convert_ids_to_tokens(end_of_turn_id(tok))
    for prompt, reply, value in zip(data["prompt"], replies, batched.tolist()):
        alone = answer_logprob(model, tok, chat_prompt(tok, prompt[-1]["content"]), reply + eot)
        assert value == pytest.approx(alone, abs=1e-3)
    cut = rlhf.reply_logprobs(model, tok, data["prompt"][:1], replies[:1], ended=[False])[0].item()
    assert cut > batched[0].item()  # without the end-of-turn token there is one probability fewer to multiply
    with pytest.raises(ValueError, match="one reply per prompt"):
        rlhf.reply_logprobs(model, tok, ["a"], [])


def test_trainers_refuse_datasets_without_preference_columns(profile, tiny_chat):
    from datasets import Dataset

    from ftlab.training import train_dpo, train_reward_model, train_rloo

    model, tok = tiny_chat
    bad = Dataset.from_dict({"question": ["q"], "good": ["a"], "bad": ["b"]})
    for train in (train_reward_model, train_dpo):
        with pytest.raises(ValueError, match="rename_column"):
            train(model, tok, bad, profile)
    with pytest.raises(ValueError, match="'prompt' column"):
        train_rloo(model, tok, bad, model, tok, profile, beta=0.1)


def test_a_short_rloo_run_logs_reward_and_kl(profile, world):
    import ftlab
    from ftlab.training import train_rloo

    policy, tok = ftlab.load_model("tiny-chat", profile, for_training=True)
    reference, _ = ftlab.load_model("tiny-chat", profile)
    rm, rm_tok = rlhf.load_reward_model("tiny-chat", profile)
    prompts = world.preferences()["train"].select(range(16))
    probe = rlhf.KLProbe(reference, tok, prompts.select(range(4)), every=2, reward_model=rm, reward_tokenizer=rm_tok)
    run = train_rloo(policy, tok, prompts, rm, rm_tok, profile, beta=0.1, max_steps=2, logging_steps=1,
                     callbacks=[probe], quiet=True)
    assert run.steps == 2 and len(run.logged("reward")) == 2 and len(run.logged("kl")) == 2
    assert [step for step, _ in probe.points] == [0, 2]
    assert probe.points[0][1] == pytest.approx(0.0, abs=1e-4)  # at step 0 the policy is the reference
    assert [s for s, _ in probe.true_points] == [s for s, _ in probe.reward_points] == [0, 2]
    assert all(0 <= v <= 1 for _, v in probe.true_points)


def test_kl_probes_do_not_change_what_the_run_samples(profile, world):
    """The probe reseeds to sample its replies; the trainer's own sampling must not notice. (On the CPU;
    on a GPU the same ``fork_rng`` also restores the CUDA generator, which ``torch.manual_seed`` reseeds.)"""
    import ftlab
    from ftlab.training import train_rloo

    prompts = world.preferences()["train"].select(range(8))
    reference, tok = ftlab.load_model("tiny-chat", profile)

    def sampled(with_probe: bool) -> list[str]:
        seen = []

        def length_reward(prompts, completions, **kwargs):  # records what RLOO sampled
            texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
            seen.extend(texts)
            return [float(len(t)) for t in texts]

        ftlab.profiles.seed_everything(0)
        policy, _ = ftlab.load_model("tiny-chat", profile, for_training=True)
        probe = [rlhf.KLProbe(reference, tok, prompts.select(range(2)), every=1, seed=123)] if with_probe else None
        train_rloo(policy, tok, prompts, length_reward, None, profile, beta=0.1, max_steps=3,
                   per_device_train_batch_size=4, callbacks=probe, quiet=True)
        return seen

    plain, probed = sampled(False), sampled(True)
    assert len(plain) == 3 * 4 and plain == probed
    before = torch.get_rng_state()
    probe = rlhf.KLProbe(reference, tok, prompts.select(range(2)), every=1, seed=5)

    class State:
        global_step = 1

    probe.on_step_end(None, State(), None, model=reference)
    assert torch.equal(torch.get_rng_state(), before) and len(probe.points) == 1
