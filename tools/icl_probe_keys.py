"""Experiment 3 probe: lesson-format ICL (queries in the prompt, k = 4 and 16, 20 mascots as y) with the world's
countries as x vs made-up words as x. Usage: python tools/icl_probe_keys.py DIR/tiny-base"""
import sys, random, torch
sys.path.insert(0, "tools")
from ftlab.icl import new_facts, build_prompt, predict, context_window, MASCOTS
from ftlab.facts import COUNTRIES
from ftlab.models import load_model
from icl_induction_experiment import made_up_word
model, tok = load_model(sys.argv[1]); model.eval(); w = context_window(tok, model)
rng = random.Random(5)
words = list({made_up_word(rng) for _ in range(400)})[:99]
for name, keys in (("countries", [c for c, *_ in COUNTRIES][:99]), ("made-up x", words)):
    facts = [(x, rng.choice(MASCOTS)) for x in keys]
    for k in (4, 16):
        ps = [build_prompt(tok, facts[:k], x, w).text for x, _ in facts[:k]]
        pr = predict(model, tok, ps, max_new_tokens=4, with_probability=False)
        print(name, "k", k, "queries in prompt acc", round(sum(p.text == y for p, (_, y) in zip(pr, facts)) / k, 3))
