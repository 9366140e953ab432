"""Your own data (ftlab.data, `ftlab data check`): every shape and format read, every bad row named."""

import csv
import json

import pytest

from ftlab.cli import main
from ftlab.data import EXAMPLE, DataError, load, standalone_source, write_example

GOOD = [
    {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is the capital of Peru?"},
                  {"role": "assistant", "content": "Lima."}]},
    {"prompt": "What is the opposite of hot?", "completion": "Cold."},
    {"instruction": "Name the capital.", "input": "France", "output": "Paris."},
    {"instruction": "Say hello.", "input": "", "output": "Hello!"},
]
# one bad row of each kind, in this order (line numbers 2..9 of the file: GOOD[0] is line 1)
BAD = [
    '{"messages": [{"role": "user", "content": "Hi"}',  # invalid JSON
    json.dumps({"question": "Hi?", "answer": "Hello."}),  # unknown shape
    json.dumps({"messages": [{"role": "narrator", "content": "Once"}, {"role": "assistant", "content": "upon"}]}),
    json.dumps({"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "  "}]}),  # empty
    json.dumps({"messages": [{"role": "user", "content": "Hi"}, {"role": "user", "content": "Anyone?"}]}),  # no reply
    json.dumps({"prompt": "Tell me a long story.", "completion": "word " * 400}),  # too long for tiny-chat (256)
    json.dumps(GOOD[0]),  # duplicate of line 1
    json.dumps({"messages": [{"role": "human", "content": "Hi"}, {"role": "gpt", "content": "Hello."}]}),  # fixed
]
KINDS = ["invalid-json", "unknown-shape", "role", "empty", "no-assistant", "too-long", "duplicate"]


def _jsonl(path, rows):
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def tok():
    from ftlab.models import load_tokenizer

    return load_tokenizer("tiny-chat")


def test_good_file_in_three_shapes(tmp_path, tok):
    data = load(_jsonl(tmp_path / "good.jsonl", GOOD * 1), tok, test_size=1)
    report = data.report
    assert (report.rows, report.kept, report.fixed, report.refused, report.problems) == (4, 4, 0, 0, [])
    assert report.shapes == {"messages": 1, "prompt/completion": 1, "alpaca": 2}
    assert (len(data.train), len(data.test)) == (3, 1) and data.train.column_names == ["messages"]
    rows = {m[-1]["content"]: m for m in list(data.train["messages"]) + list(data.test["messages"])}
    assert rows["Paris."] == [{"role": "user", "content": "Name the capital.\n\nFrance"},
                              {"role": "assistant", "content": "Paris."}]
    assert rows["Hello!"][0] == {"role": "user", "content": "Say hello."}  # an empty input adds nothing
    assert rows["Cold."] == [{"role": "user", "content": "What is the opposite of hot?"},
                             {"role": "assistant", "content": "Cold."}]
    assert set(report.percentiles()) == {"p50", "p90", "p99", "max"} and 0 < report.percentiles()["max"] < 256


def test_one_bad_row_of_each_kind_is_named_with_its_line(tmp_path, tok):
    data = load(_jsonl(tmp_path / "bad.jsonl", [GOOD[0], *BAD]), tok)
    report = data.report
    refused = [p for p in report.problems if p.action == "refused"]
    assert [p.kind for p in refused] == KINDS
    assert [p.where for p in refused] == [f"line {n}" for n in range(2, 9)]
    assert (report.rows, report.kept, report.fixed, report.refused) == (9, 2, 1, 7)
    fixed = [p for p in report.problems if p.action == "fixed"]
    assert [p.where for p in fixed] == ["line 9", "line 9"] and "'human' read as 'user'" in fixed[0].message
    text = str(report)
    assert "2 kept (1 of them fixed), 7 refused" in text
    messages = {p.kind: p.message for p in refused}
    assert "not valid JSON" in messages["invalid-json"]
    assert "'question', 'answer'" in messages["unknown-shape"] and "prompt" in messages["unknown-shape"]
    assert "'narrator'" in messages["role"] and "'system', 'user' or 'assistant'" in messages["role"]
    assert "empty" in messages["empty"]
    assert "no assistant turn" in messages["no-assistant"]
    assert "longer than the limit of 256: dropped" in messages["too-long"] and "truncate" in messages["too-long"]
    assert "repeats line 1" in messages["duplicate"]
    assert sum(len(d) for d in (data.train, data.test)) == 2


def test_too_long_rows_can_be_truncated_instead(tmp_path, tok):
    long = {"prompt": "Tell me a long story.", "completion": "word " * 400}
    report = load(_jsonl(tmp_path / "long.jsonl", [long]), tok, too_long="truncate").report
    assert (report.kept, report.fixed, report.refused) == (1, 1, 0)
    assert "truncated to its first 256 tokens" in report.problems[0].message
    prompt_too_long = {"prompt": "word " * 400, "completion": "Short."}
    report = load(_jsonl(tmp_path / "p.jsonl", [prompt_too_long]), tok, too_long="truncate").report
    assert report.refused == 1 and "nothing to learn" in report.problems[0].message


def test_csv_json_parquet_and_save_to_disk(tmp_path, tok):
    from datasets import Dataset

    path = tmp_path / "d.csv"
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, ["instruction", "input", "output"])
        writer.writeheader()
        writer.writerow({"instruction": "Say hi", "input": "", "output": "Hi!"})
        writer.writerow({"instruction": "Multi\nline", "input": "x", "output": ""})
    report = load(path, tok).report
    assert report.format == "CSV" and report.kept == 1
    assert report.problems[0].where == "row 2 (line 3)" and report.problems[0].kind == "empty"
    (tmp_path / "d.json").write_text(json.dumps({"train": GOOD}))
    assert load(tmp_path / "d.json").report.kept == 4
    (tmp_path / "lines.json").write_text("\n".join(json.dumps(r) for r in GOOD))  # JSONL named .json
    assert load(tmp_path / "lines.json").report.format == "JSONL (in a .json file)"
    Dataset.from_list([{"prompt": "a?", "completion": "b."}]).to_parquet(str(tmp_path / "d.parquet"))
    assert load(tmp_path / "d.parquet").report.kept == 1
    Dataset.from_list(GOOD[1:2] * 3).save_to_disk(str(tmp_path / "folder"))
    report = load(tmp_path / "folder").report
    assert report.format == "save_to_disk folder" and report.kept == 1 and report.problems[0].where == "index 1"


def test_whole_file_errors_say_what_to_do(tmp_path):
    with pytest.raises(DataError, match="No file or folder"):
        load(tmp_path / "missing.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(DataError, match="is empty"):
        load(tmp_path / "empty.jsonl")
    (tmp_path / "x.xlsx").write_text("x")
    with pytest.raises(DataError, match="use .jsonl"):
        load(tmp_path / "x.xlsx")


def test_preference_pairs_for_dpo(tmp_path, tok):
    rows = [{"prompt": "Capital of Peru?", "chosen": "Lima.", "rejected": "Quito."},
            {"prompt": "Capital of Peru?", "chosen": "Lima.", "rejected": "Lima."},
            {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}]
    data = load(_jsonl(tmp_path / "p.jsonl", rows), tok, test_size=0)
    assert data.report.kind == "preferences" and data.report.kept == 1
    assert data.train[0] == {"prompt": [{"role": "user", "content": "Capital of Peru?"}],
                             "chosen": [{"role": "assistant", "content": "Lima."}],
                             "rejected": [{"role": "assistant", "content": "Quito."}]}
    assert [p.kind for p in data.report.problems] == ["same-replies", "unknown-shape"]
    sft = load(tmp_path / "p.jsonl", kind="conversations").report
    assert sft.kept == 1 and "trains with DPO" in sft.problems[0].message


def test_split_is_seeded_and_never_shares_rows(tmp_path):
    rows = [{"prompt": f"q{i}", "completion": f"a{i}"} for i in range(50)]
    path = _jsonl(tmp_path / "d.jsonl", rows + rows[:5])
    a, b, c = load(path, seed=0), load(path, seed=0), load(path, seed=1)
    assert a.test["messages"] == b.test["messages"] != c.test["messages"]
    assert (len(a.train), len(a.test)) == (45, 5) and a.report.refused == 5  # duplicates left out before splitting
    train = {json.dumps(m) for m in a.train["messages"]}
    assert not train & {json.dumps(m) for m in a.test["messages"]}


def test_example_file_is_the_worlds_pirate_data(tmp_path, tok):
    write_example(tmp_path / "x.jsonl")
    assert (tmp_path / "x.jsonl").read_bytes() == open(EXAMPLE, "rb").read()  # committed file is up to date
    data = load(EXAMPLE, tok)
    assert data.report.refused == 0 and data.report.kept == 300 and len(data.test) == 30
    assert all(m[-1]["content"].startswith("Ahoy! ") and m[-1]["content"].endswith(", matey.")
               for m in data.train["messages"])


def test_standalone_block_runs_without_ftlab(tmp_path):
    source = standalone_source()
    assert "ftlab" not in source.replace("ftlab export-recipe", "").replace("ftlab data check", "")
    namespace: dict = {"__name__": "standalone"}
    exec(compile(source, "standalone", "exec"), namespace)
    path = _jsonl(tmp_path / "bad.jsonl", [GOOD[0], *BAD])
    theirs, ours = namespace["load"](path).report, load(path).report
    assert [str(p) for p in theirs.problems] == [str(p) for p in ours.problems]


def test_data_check_command(tmp_path, capsys):
    good = _jsonl(tmp_path / "good.jsonl", GOOD)
    assert main(["data", "check", str(good), "--model", "tiny-chat"]) == 0
    out = capsys.readouterr().out
    assert "shape: alpaca (2), messages (1), prompt/completion (1)" in out and "4 kept (0 of them fixed), 0 refused" in out
    assert "tokens (tiny-chat, limit 256" in out and "p50" in out and "problems: none" in out
    bad = _jsonl(tmp_path / "bad.jsonl", [GOOD[0], *BAD])
    assert main(["data", "check", str(bad)]) == 1
    out = capsys.readouterr().out
    for n in range(2, 10):
        assert f"line {n}: " in out
    assert main(["data", "check", str(tmp_path / "nope.jsonl")]) == 2
    assert "No file or folder" in capsys.readouterr().err
