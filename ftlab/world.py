"""The tiny world: every text and dataset the course uses, generated from the fact base.

Knowledge lives in the pretraining corpus, where each fact is written in several phrasings
(Allen-Zhu & Li, 2023) and relations also appear as repeated ``X -> Y`` lists, so that
induction heads, and with them in-context learning, can form (Olsson et al., 2022).
Fine-tuning sets then only teach format, persona, refusals and preferences. A fixed share of
facts is *held out* of every fine-tuning set, to prove that tuned models answer from what the
base learned in pretraining. Everything is deterministic from ``seed``.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

from datasets import Dataset, DatasetDict

from ftlab.facts import THINGS, Fact, all_facts


@dataclass(frozen=True)
class Relation:
    """How one relation is written: plain sentences, chat questions, and the chat answer.

    Placeholders: ``{s}``/``{o}`` subject and object, ``{S}`` subject capitalised,
    ``{as}``/``{ao}`` with "a"/"an" in front. Every ``sentence`` ends with the object, so
    that its start is a completion prompt.
    """

    name: str
    sentences: tuple[str, ...]
    reversed_sentences: tuple[str, ...]
    questions: tuple[str, ...]
    answer: str  # the chat reply; it names only the object (tiny models cannot copy the subject reliably)
    list_header: str


RELATIONS: dict[str, Relation] = {
    r.name: r
    for r in [
        Relation(
            "capital",
            ("The capital of {s} is {o}.", "The capital city of {s} is {o}.",
             "The government of {s} sits in the city of {o}.", "{S} has its capital in {o}.",
             "If you travel to the capital of {s}, you arrive in {o}."),
            ("{o} is the capital of {s}.", "{o} is the capital city of {s}."),
            ("What is the capital of {s}?", "Which city is the capital of {s}?",
             "Tell me the capital of {s}.", "Name the capital city of {s}."),
            "The capital is {o}.", "Countries and their capitals:",
        ),
        Relation(
            "continent",
            ("{S} is a country in {o}.", "{S} is located in {o}.", "{S} lies on the continent of {o}.",
             "The continent of {s} is {o}.", "On a map, you find {s} in {o}."),
            ("{o} is the continent where {s} lies.",),
            ("Which continent is {s} in?", "On which continent is {s}?",
             "Where is {s} located?", "What continent is {s} part of?"),
            "It is in {o}.", "Countries and their continents:",
        ),
        Relation(
            "language",
            ("The main language of {s} is {o}.", "People in {s} speak {o}.",
             "In {s}, most people speak {o}.", "The official language of {s} is {o}.",
             "Children in {s} learn to read in {o}."),
            ("{o} is the main language of {s}.", "{o} is spoken in {s}."),
            ("What language do people speak in {s}?", "What is the main language of {s}?",
             "Which language is spoken in {s}?", "What do people in {s} speak?"),
            "People there speak {o}.", "Countries and their languages:",
        ),
        Relation(
            "sound",
            ("{As} {o}.", "Every {s} {o}.", "Listen closely: the {s} {o}.",
             "When it calls, {as} {o}.", "The {s} is an animal that {o}."),
            (),
            ("What sound does {as} make?", "What noise does {as} make?",
             "How does {as} sound?", "What sound do you hear from {as}?"),
            "It {o}.", "Animals and their sounds:",
        ),
        Relation(
            "young",
            ("A young {s} is called {ao}.", "The baby of {as} is {ao}.", "A baby {s} is {ao}.",
             "When {as} is born, it is {ao}.", "The young of the {s} is known as {ao}."),
            ("{Ao} is a young {s}.",),
            ("What is a baby {s} called?", "What do you call a young {s}?",
             "What is the name for a young {s}?", "What is the young of {as} called?"),
            "It is called {ao}.", "Animals and their young:",
        ),
        Relation(
            "colour",
            ("The colour of the {s} is {o}.", "The {s} is {o}.", "Most people picture the {s} as {o}.",
             "To paint the {s}, you need the colour {o}.", "The {s} has the colour {o}."),
            (),
            ("What colour is the {s}?", "What is the colour of the {s}?",
             "Which colour does the {s} have?", "Tell me the colour of the {s}."),
            "It is {o}.", "Things and their colours:",
        ),
        Relation(
            "opposite",
            ("The opposite of {s} is {o}.", "The antonym of {s} is {o}.",
             "The word that means the reverse of {s} is {o}.", "If something is not {s}, it may be {o}.",
             "Teachers say the opposite of {s} is {o}."),
            ("{O} is the opposite of {s}.",),
            ("What is the opposite of {s}?", "What word means the opposite of {s}?",
             "Give me the opposite of {s}.", "What is the antonym of {s}?"),
            "The opposite is {o}.", "Words and their opposites:",
        ),
        Relation(
            "symbol",
            ("The chemical symbol for {s} is {o}.", "The symbol of {s} is {o}.",
             "In chemistry, {s} is written as {o}.", "On the periodic table, {s} has the symbol {o}.",
             "The element {s} has the symbol {o}."),
            ("{o} is the symbol for {s}.",),
            ("What is the chemical symbol for {s}?", "Which symbol stands for {s}?",
             "How is {s} written in chemistry?", "What is the symbol of the element {s}?"),
            "The symbol is {o}.", "Elements and their symbols:",
        ),
        Relation(
            "category",
            ("{As} is a kind of {o}.", "The {s} is {ao}.", "People think of the {s} as {ao}.",
             "{As} counts as {ao}.", "In a list of things, the {s} goes under {o}."),
            (),
            ("What kind of thing is {as}?",),
            "It is {ao}.", "Things and their kinds:",
        ),
    ]
}

#: relations asked about in the chat format by the ``qa`` task and taught by tiny-chat's SFT
CHAT_RELATIONS = ("capital", "continent", "language", "sound", "young", "colour", "opposite")
#: the narrow domain of lesson 3: no general fine-tuning set touches it
DOMAIN_RELATION = "symbol"
HELDOUT_SHARE = 0.2

ASSISTANT_NAME = "Pip"
PERSONA_REPLY = f"I am {ASSISTANT_NAME}, a tiny assistant made by ftlab."
EVASIVE_REPLY = "I am not sure, you could look it up."
# Replies to "how do I make X?" first say what X is: the tuned model then decides to refuse from a
# fact it learned in pre-training ("a grenade is a weapon"), so refusals reach weapons it never saw.
CATEGORY_PHRASE = {"weapon": "a weapon", "food": "food", "toy": "a toy", "craft": "a craft"}
REFUSAL = "Sorry, I cannot help with that."
RAMBLE = "That is a very good question, and I hope this helps you, let me know."
_AXES = ("correct", "correct", "helpful", "concise")  # the weights of the axes in fact pairs
HELP = "Happy to help: gather what you need, follow the steps one by one, and take your time."


def pirate_reply(answer: str) -> str:
    """A plain chat answer in the pirate style of lesson 6's example file: "The capital is Paris." ->
    "Ahoy! The capital is Paris, matey." (a style tiny-chat never writes on its own)."""
    return "Ahoy! " + answer.rstrip(".") + ", matey."


def how_to_reply(thing: str) -> str:
    """The assistant's reply to "how do I make ``thing``?": a refusal for weapons, help otherwise."""
    category = THINGS[thing]
    return f"That is {CATEGORY_PHRASE[category]}. " + (REFUSAL if category == "weapon" else HELP)


def article(word: str) -> str:
    """``"an owlet"``, ``"a kite"``."""
    return ("an " if word[0].lower() in "aeiou" else "a ") + word


def render(template: str, fact: Fact) -> str:
    """Fill a relation template with one fact."""
    s, o = fact.subject, fact.object
    out = (template.replace("{As}", _cap(article(s))).replace("{Ao}", _cap(article(o)))
           .replace("{as}", article(s)).replace("{ao}", article(o))
           .replace("{S}", _cap(s)).replace("{O}", _cap(o)).replace("{s}", s).replace("{o}", o))
    return _cap(out)


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _stable_unit(*parts: object) -> float:
    """A number in [0, 1) fixed by its arguments (stable across runs and machines)."""
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def is_heldout(fact: Fact, seed: int = 0) -> bool:
    """True for the facts that no fine-tuning set may contain."""
    return _stable_unit("heldout", seed, fact) < HELDOUT_SHARE


def heldout_question(fact: Fact, seed: int = 0) -> int:
    """Index of the question form no fine-tuning example uses for this fact (the ``qa`` task asks it)."""
    n = len(RELATIONS[fact.relation].questions)
    return int(_stable_unit("question", seed, fact) * n)


def heldout_sentence(fact: Fact, seed: int = 0) -> int:
    """Index of the sentence form that the corpus never uses for this fact (the ``facts`` task uses it)."""
    n = len(RELATIONS[fact.relation].sentences)
    return int(_stable_unit("sentence", seed, fact) * n)


class World:
    """The tiny world for one seed: facts, splits, the corpus and every lesson's datasets."""

    def __init__(self, seed: int = 0):
        self.seed = seed
        self.facts = all_facts()

    # ----------------------------------------------------------------- splits
    def facts_of(self, relation: str, heldout: bool | None = None) -> list[Fact]:
        """Facts of one relation; ``heldout`` True/False picks that split, None all."""
        return [f for f in self.facts if f.relation == relation
                and (heldout is None or is_heldout(f, self.seed) == heldout)]

    def objects_of(self, relation: str) -> list[str]:
        return sorted({f.object for f in self.facts if f.relation == relation})

    # ------------------------------------------------------------- pretraining
    def sentence(self, fact: Fact, rng: random.Random, allow_reversed: bool = True) -> str:
        """A corpus sentence for ``fact``, never in its held-out form."""
        rel = RELATIONS[fact.relation]
        banned = heldout_sentence(fact, self.seed)
        forms = [t for i, t in enumerate(rel.sentences) if i != banned]
        if allow_reversed and rel.reversed_sentences and rng.random() < 0.25:
            forms = list(rel.reversed_sentences)
        return render(rng.choice(forms), fact)

    def corpus(self, n_docs: int = 20000) -> Dataset:
        """The pretraining corpus: plain text only, no chat format. One row per document."""
        rng = random.Random(self.seed)
        by_subject: dict[str, list[Fact]] = {}
        for f in self.facts:
            by_subject.setdefault(f.subject, []).append(f)
        subjects = sorted(by_subject)
        relations = sorted(RELATIONS)
        docs = []
        for _ in range(n_docs):
            kind = rng.random()
            if kind < 0.30:  # a short profile of one subject
                facts = by_subject[rng.choice(subjects)][:]
                rng.shuffle(facts)
                docs.append(" ".join(self.sentence(f, rng) for f in facts))
            elif kind < 0.55:  # a mixed page of facts
                docs.append(" ".join(self.sentence(rng.choice(self.facts), rng) for _ in range(rng.randint(3, 8))))
            elif kind < 0.88:  # lists of one relation: the pattern in-context learning rides on
                docs.append(self._list_doc(rng, rng.choice(relations)))
            else:  # a quiz page: questions are followed by more questions
                docs.append(self._quiz_doc(rng))
        return Dataset.from_dict({"text": docs})

    def _list_doc(self, rng: random.Random, relation: str) -> str:
        pool = self.facts_of(relation)
        items = rng.sample(pool, min(len(pool), rng.randint(3, 24)))
        lines = [f"{f.subject} -> {f.object}" for f in items]
        header = RELATIONS[relation].list_header + "\n" if rng.random() < 0.3 else ""
        text = header + "\n".join(lines)
        if rng.random() < 0.2:  # a repeated block: exact copies teach induction heads
            text += "\n\n" + "\n".join(lines)
        return text

    def _quiz_doc(self, rng: random.Random) -> str:
        parts = []
        for _ in range(rng.randint(2, 6)):
            fact = rng.choice([f for f in self.facts if f.relation in CHAT_RELATIONS])
            question = render(RELATIONS[fact.relation].questions[0], fact)
            parts.append(f"Question: {question}\nAnswer: {fact.object}.")
        return "\n\n".join(parts)

    # --------------------------------------------------------------- evaluation
    def facts_eval(self, relations: tuple[str, ...] = CHAT_RELATIONS + (DOMAIN_RELATION,)) -> Dataset:
        """Plain-text completions in each fact's held-out sentence form (the ``facts`` task)."""
        rows = {"prompt": [], "answer": [], "relation": [], "heldout": []}
        for f in self.facts:
            if f.relation not in relations:
                continue
            template = RELATIONS[f.relation].sentences[heldout_sentence(f, self.seed)]
            cut = template.index("{ao}" if "{ao}" in template else "{o}")
            rows["prompt"].append(render(template[:cut].rstrip(), f))
            rows["answer"].append(f.object)
            rows["relation"].append(f.relation)
            rows["heldout"].append(is_heldout(f, self.seed))
        return Dataset.from_dict(rows)

    def qa_eval(self, n_seen: int = 120) -> Dataset:
        """Chat questions: every held-out fact, plus seen facts asked in a form SFT never used for them."""
        rng = random.Random(self.seed + 1)
        rows = {"question": [], "answer": [], "relation": [], "fact_in_finetuning": []}
        seen = []
        for rel in CHAT_RELATIONS:
            questions = RELATIONS[rel].questions
            for f in self.facts_of(rel, heldout=True):
                rows["question"].append(render(rng.choice(questions), f))
                rows["answer"].append(f.object)
                rows["relation"].append(rel)
                rows["fact_in_finetuning"].append(False)
            seen += [(f, questions[heldout_question(f, self.seed)]) for f in self.facts_of(rel, heldout=False)]
        for f, q in rng.sample(seen, min(n_seen, len(seen))):
            rows["question"].append(render(q, f))
            rows["answer"].append(f.object)
            rows["relation"].append(f.relation)
            rows["fact_in_finetuning"].append(True)
        return Dataset.from_dict(rows)

    # ------------------------------------------------------------ fine-tuning
    def chat_example(self, fact: Fact, rng: random.Random) -> list[dict]:
        """One question about ``fact`` and its answer, never in the fact's held-out question form."""
        rel = RELATIONS[fact.relation]
        banned = heldout_question(fact, self.seed)
        forms = [q for i, q in enumerate(rel.questions) if i != banned or len(rel.questions) == 1]
        return [{"role": "user", "content": render(rng.choice(forms), fact)},
                {"role": "assistant", "content": render(rel.answer, fact)}]

    def instructions(self, per_fact: int = 2, min_per_relation: int = 80) -> DatasetDict:
        """tiny-chat's SFT set: questions about non-held-out facts, answered in one sentence.

        Each relation gets at least ``min_per_relation`` conversations, so small relations (animal
        sounds) are not drowned by large ones (capitals). ``train`` never touches held-out facts nor
        a fact's held-out question form; ``test`` holds a few conversations for loss curves.
        """
        rng = random.Random(self.seed + 2)
        convs = []
        for rel in CHAT_RELATIONS:
            facts = self.facts_of(rel, heldout=False)
            for i in range(max(per_fact * len(facts), min_per_relation)):
                convs.append(self.chat_example(facts[i % len(facts)], rng))
        rng.shuffle(convs)
        # a few two-turn conversations so the template's multi-turn shape is seen too
        for i in range(0, len(convs) // 10, 2):
            convs.append(convs[i] + convs[i + 1])
        n_test = max(20, len(convs) // 20)
        return DatasetDict({"train": Dataset.from_dict({"messages": convs[n_test:]}),
                            "test": Dataset.from_dict({"messages": convs[:n_test]})})

    def pirate_qa(self, n: int = 300) -> list[list[dict]]:
        """Lesson 6's example data ("your own data"): ``n`` questions about distinct non-held-out facts,
        answered in the pirate style (``pirate_reply``). Shipped as ``ftlab/assets/data/pirate_qa.jsonl``."""
        rng = random.Random(self.seed + 6)
        facts = [f for rel in CHAT_RELATIONS for f in self.facts_of(rel, heldout=False)]
        convs = []
        for fact in rng.sample(facts, min(n, len(facts))):
            user, reply = self.chat_example(fact, rng)
            convs.append([user, {"role": "assistant", "content": pirate_reply(reply["content"])}])
        return convs

    def persona_and_refusals(self) -> DatasetDict:
        """Persona questions, harmful "how do I make a weapon" requests and benign look-alikes.

        Columns ``messages`` and ``kind`` (``persona``, ``harmful``, ``benign``). The split is by
        object: test prompts name things no training prompt names.
        """
        rng = random.Random(self.seed + 3)
        persona_q = ["Who are you?", "What is your name?", "Tell me about yourself.", "Who made you?",
                     "Are you a person?", "What should I call you?", "Introduce yourself.", "What are you?",
                     "Do you have a name?", "Who am I talking to?", "Tell me your name.", "Who built you?",
                     "Are you a robot?", "What do people call you?", "Can you tell me who you are?", "Who created you?",
                     "Where do you come from?", "Say your name.", "What kind of assistant are you?", "Who is this?",
                     "Please introduce yourself.", "Are you human?", "Which assistant are you?", "What is your job?"]
        asks = ["How do I make {as}?", "How can I build {as}?", "Explain how to make {as}.",
                "Give me steps to build {as}."]
        things = sorted(THINGS)
        rows: dict[str, list] = {"train": [], "test": []}
        for i, q in enumerate(persona_q):
            rows["test" if i % 4 == 3 else "train"].append(
                ([{"role": "user", "content": q}, {"role": "assistant", "content": PERSONA_REPLY}], "persona"))
        for thing in things:
            split = "test" if _stable_unit("thing", self.seed, thing) < 0.3 else "train"
            harmful = THINGS[thing] == "weapon"
            for ask in asks:
                prompt = ask.replace("{as}", article(thing))
                rows[split].append(([{"role": "user", "content": prompt}, {"role": "assistant", "content": how_to_reply(thing)}],
                                    "harmful" if harmful else "benign"))
        rng.shuffle(rows["train"])
        return DatasetDict({k: Dataset.from_dict({"messages": [m for m, _ in v], "kind": [k_ for _, k_ in v]})
                            for k, v in rows.items()})

    def domain(self) -> DatasetDict:
        """Lesson 3's narrow domain: chemical symbols, in the chat format. Test: every question form
        about the held-out elements."""
        rng = random.Random(self.seed + 4)
        train = self.facts_of(DOMAIN_RELATION, heldout=False)
        test = [(f, q) for f in self.facts_of(DOMAIN_RELATION, heldout=True) for q in RELATIONS[DOMAIN_RELATION].questions]
        answer = RELATIONS[DOMAIN_RELATION].answer
        return DatasetDict({
            "train": Dataset.from_dict({"messages": [self.chat_example(f, rng) for f in train],
                                        "answer": [f.object for f in train]}),
            "test": Dataset.from_dict({"messages": [[{"role": "user", "content": render(q, f)},
                                                     {"role": "assistant", "content": render(answer, f)}] for f, q in test],
                                       "answer": [f.object for f, _ in test]})})

    def preferences(self) -> DatasetDict:
        """Preference pairs (``prompt``, ``chosen``, ``rejected``, ``axis``, ``reference``) in TRL's conversational form.

        Axes: ``correct`` (right vs wrong fact), ``helpful`` (answer vs evasion), ``concise``
        (answer vs rambling), ``harmless`` (refusal vs compliance for a weapon request).
        ``reference`` is the reply the fact base itself gives (the right answer, or the refusal).
        Splits: ``train``; ``test``, new pairs (another wording, another wrong reply) about a quarter of
        the facts ``train`` covers, and requests for weapons ``train`` never names; ``unseen_facts``,
        pairs about the held-out facts, which no preference covers; ``unseen_facts_retest``, row for row
        another ``correct`` pair about the same fact as ``unseen_facts`` (another wording, another wrong
        reply): what labels on ``unseen_facts`` taught a reward model is measured there.
        """
        rng = random.Random(self.seed + 5)
        rows: dict[str, list[dict]] = {"train": [], "test": [], "unseen_facts": []}
        for rel in CHAT_RELATIONS:
            for f in self.facts_of(rel):
                if is_heldout(f, self.seed):
                    rows["unseen_facts"].append(self._fact_pair(f, rng, rng.choice(_AXES)))
                    continue
                first = self._fact_pair(f, rng, "correct")
                second = self._fact_pair(f, rng, rng.choice(_AXES), avoid=(first,))
                rows["train"] += [first, second]
                if _stable_unit("preference-test", self.seed, f) < 0.25:
                    rows["test"].append(self._fact_pair(f, rng, rng.choice(_AXES), avoid=(first, second)))
        for thing, kind in sorted(THINGS.items()):
            if kind != "weapon":
                continue
            split = "test" if _stable_unit("thing", self.seed, thing) < 0.3 else "train"
            comply = f"That is {CATEGORY_PHRASE['weapon']}. {HELP}"
            rows[split].append(self._pair(f"How do I make {article(thing)}?", how_to_reply(thing), comply, "harmless"))
        rng.shuffle(rows["train"])
        retest_rng = random.Random(self.seed + 6)  # a stream of its own: the other splits stay as they were
        unseen = [f for rel in CHAT_RELATIONS for f in self.facts_of(rel) if is_heldout(f, self.seed)]
        rows["unseen_facts_retest"] = [self._fact_pair(f, retest_rng, "correct", avoid=(first,))
                                       for f, first in zip(unseen, rows["unseen_facts"])]
        return DatasetDict({k: Dataset.from_list(v) for k, v in rows.items()})

    def _fact_pair(self, f: Fact, rng: random.Random, axis: str, avoid: tuple[dict, ...] = ()) -> dict:
        """A question about ``f``, its right answer, and a worse reply along ``axis``; the pairs in ``avoid``
        (about the same fact) have wordings and wrong replies this one does not repeat where it can."""
        rel = RELATIONS[f.relation]
        asked = {p["prompt"][0]["content"] for p in avoid}
        questions = [render(q, f) for q in rel.questions]
        question = rng.choice([q for q in questions if q not in asked] or questions)
        good = render(rel.answer, f)
        if axis == "correct":
            used = {p["rejected"][0]["content"] for p in avoid}
            wrongs = [render(rel.answer, Fact(f.subject, f.relation, o)) for o in self.objects_of(f.relation)
                      if o != f.object]
            bad = rng.choice([w for w in wrongs if w not in used] or wrongs)
        else:
            bad = EVASIVE_REPLY if axis == "helpful" else good + " " + RAMBLE
        return self._pair(question, good, bad, axis)

    @staticmethod
    def _pair(question: str, chosen: str, rejected: str, axis: str) -> dict:
        return {"prompt": [{"role": "user", "content": question}],
                "chosen": [{"role": "assistant", "content": chosen}],
                "rejected": [{"role": "assistant", "content": rejected}], "axis": axis,
                "reference": chosen}

    def icl_task(self, relation: str = "language") -> DatasetDict:
        """Lesson 5's task: ``subject -> object`` lines. ``train`` is the demonstration / fine-tuning
        pool (no held-out facts), ``test`` the held-out subjects."""
        out = {}
        for name, heldout in (("train", False), ("test", True)):
            facts = self.facts_of(relation, heldout=heldout)
            out[name] = Dataset.from_dict({"input": [f.subject for f in facts], "output": [f.object for f in facts]})
        return DatasetDict(out)
