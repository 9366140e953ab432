from ftlab.facts import all_facts
from ftlab.world import CHAT_RELATIONS, RELATIONS, World, heldout_sentence, is_heldout, render


def test_world_is_deterministic_from_its_seed():
    a, b, c = World(0), World(0), World(1)
    assert a.corpus(300)["text"] == b.corpus(300)["text"]
    assert a.corpus(300)["text"] != c.corpus(300)["text"]
    assert a.instructions()["train"]["messages"] == b.instructions()["train"]["messages"]


def test_facts_are_unique_and_templates_end_with_the_object():
    facts = all_facts()
    assert len(facts) == len(set(facts)) > 400
    for rel in RELATIONS.values():
        for template in rel.sentences:
            assert template.rstrip(".").endswith(("{o}", "{ao}")), template


def test_corpus_has_no_chat_format(world):
    text = "\n".join(world.corpus(3000)["text"])
    for marker in ("<|im_start|>", "<|im_end|>", "assistant\n", "user\n", "<|endoftext|>"):
        assert marker not in text


def test_facts_eval_sentences_never_appear_in_the_corpus(world):
    corpus = "\n".join(world.corpus(5000)["text"])
    for fact in all_facts()[:150]:
        held_out = render(RELATIONS[fact.relation].sentences[heldout_sentence(fact)], fact)
        assert held_out not in corpus


def test_heldout_facts_are_in_no_finetuning_set(world):
    heldout = [f for f in all_facts() if is_heldout(f) and f.relation in CHAT_RELATIONS + ("symbol",)]
    assert len(heldout) > 60
    texts = []
    for ds in (world.instructions()["train"], world.instructions()["test"], world.persona_and_refusals()["train"],
               world.domain()["train"]):
        texts += [m["content"] for conv in ds["messages"] for m in conv]
    prefs = world.preferences()["train"]
    texts += [m["content"] for col in ("prompt", "chosen", "rejected") for conv in prefs[col] for m in conv]
    joined = "\n".join(texts)
    for fact in heldout:
        question_forms = [render(q, fact) for q in RELATIONS[fact.relation].questions]
        assert not any(q in joined for q in question_forms), fact
    icl = world.icl_task("language")
    assert set(icl["train"]["input"]).isdisjoint(icl["test"]["input"])


def test_qa_eval_reports_both_kinds_of_question(world):
    qa = world.qa_eval()
    assert 60 < sum(not s for s in qa["fact_in_finetuning"]) < len(qa)
    train_questions = {conv[0]["content"] for conv in world.instructions()["train"]["messages"]}
    assert not train_questions & set(qa["question"])


def test_every_lesson_dataset_has_held_out_splits(world):
    for ds in (world.instructions(), world.persona_and_refusals(), world.domain(), world.preferences(),
               world.icl_task()):
        assert len(ds["train"]) > 0 and len(ds["test"]) > 0
    kinds = set(world.persona_and_refusals()["test"]["kind"])
    assert kinds == {"persona", "harmful", "benign"}
    assert set(world.preferences()["train"]["axis"]) == {"correct", "helpful", "concise", "harmless"}
