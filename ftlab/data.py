"""Your own data: read a file of conversations (or preference pairs), check every row, say what to fix.

``load(path, tokenizer)`` reads JSONL, JSON, CSV, Parquet or a ``save_to_disk`` folder in the shapes
people have -- chat ``messages``, ``prompt``/``completion``, Alpaca ``instruction``/``input``/``output``
(and, for DPO, ``prompt``/``chosen``/``rejected``) -- and returns ``LoadedData``: a ``train`` and a
seeded held-out ``test`` ``datasets.Dataset`` of ``messages`` (ready for ``ftlab.training.train_sft``),
and a ``report`` that names every problem by its line or row with what to do, and counts kept, fixed
and refused rows. Nothing is dropped silently.

JSONL, JSON and CSV are read line by line here rather than with ``datasets.load_dataset``, whose readers
stop at the first bad line without saying which; Parquet and ``save_to_disk`` folders go through
``datasets``. The block between the two ``STANDALONE`` lines imports nothing from ftlab:
``ftlab export-recipe`` copies it, as it is, into the training scripts it writes.
"""

from __future__ import annotations

# ---- STANDALONE: begin (copied verbatim into exported recipes; stdlib and `datasets` only) ----
import csv
import io
import json
import os
from dataclasses import dataclass, field

ROLES = ("system", "user", "assistant")
# other datasets' names for the three roles (ShareGPT, Gemini, ...): renamed, and the row counts as fixed
ROLE_ALIASES = {"human": "user", "gpt": "assistant", "bot": "assistant", "model": "assistant", "ai": "assistant"}
SHAPES = {
    "messages": "chat: a 'messages' list of {'role', 'content'} turns",
    "prompt/completion": "'prompt' and 'completion' texts",
    "alpaca": "Alpaca: 'instruction', optional 'input', and 'output'",
    "preference": "'prompt', 'chosen' and 'rejected' (preference pairs, for DPO)",
}
TOO_LONG = ("drop", "truncate")


class DataError(ValueError):
    """The file as a whole cannot be read (missing, empty, unknown format): one line saying what to do."""


@dataclass
class Problem:
    """One problem with one row: where (``line 7``, ``row 3 (line 4)``, ``index 12``), what, and what happened."""

    where: str
    kind: str  # invalid-json, unknown-shape, role, empty, no-assistant, too-long, duplicate, same-replies
    message: str  # what is wrong and what to do
    action: str  # "refused" (the row is not used) or "fixed" (used, changed as the message says)

    def __str__(self) -> str:
        return f"{self.where}: {self.message} [{self.action}]"


@dataclass
class Report:
    """What ``load`` found: counts, shapes, token lengths and every problem."""

    source: str
    format: str
    kind: str  # "conversations" or "preferences"
    rows: int = 0  # rows read (blank lines in JSONL are not rows)
    kept: int = 0  # rows used for training or held-out evaluation, fixed ones included
    fixed: int = 0
    refused: int = 0
    shapes: dict[str, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    token_lengths: list[int] = field(default_factory=list)  # of every row that could be converted
    tokenizer: str | None = None
    max_length: int | None = None
    too_long: str = "drop"
    train_rows: int = 0
    test_rows: int = 0
    seed: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def shape(self) -> str:
        """The shape most rows have ("messages", "alpaca", ...), or "unknown"."""
        return max(self.shapes, key=self.shapes.get) if self.shapes else "unknown"

    def percentiles(self, qs=(50, 90, 99)) -> dict[str, int]:
        """Token-length percentiles (nearest rank) and the maximum, e.g. ``{"p50": 31, ..., "max": 60}``."""
        lengths = sorted(self.token_lengths)
        if not lengths:
            return {}
        out = {f"p{q}": lengths[min(len(lengths) - 1, max(0, -(-q * len(lengths) // 100) - 1))] for q in qs}
        return out | {"max": lengths[-1]}

    def summary(self) -> str:
        lines = [f"{os.path.basename(self.source) or self.source}: {self.format}, {self.rows} rows read, {self.kind}",
                 "shape: " + (", ".join(f"{name} ({n})" for name, n in sorted(self.shapes.items(), key=lambda x: -x[1]))
                              or "none recognised"),
                 f"rows: {self.kept} kept ({self.fixed} of them fixed), {self.refused} refused"]
        if self.tokenizer:
            p = self.percentiles()
            lengths = ", ".join(f"{k} {v}" for k, v in p.items()) if p else "no rows"
            lines.append(f"tokens ({self.tokenizer}, limit {self.max_length}, longer rows: {self.too_long}): {lengths}")
        else:
            lines.append("tokens: not counted (no tokenizer given), so no row was checked against a context length")
        lines.append(f"split: {self.train_rows} train, {self.test_rows} held-out (seed {self.seed})")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)

    def __str__(self) -> str:
        body = [self.summary()]
        if self.problems:
            body.append(f"problems ({len(self.problems)}):")
            body += [f"  {p}" for p in self.problems]
        else:
            body.append("problems: none")
        return "\n".join(body)


@dataclass
class LoadedData:
    """``train`` and held-out ``test`` datasets (column ``messages``, or ``prompt``/``chosen``/``rejected``)."""

    train: object  # datasets.Dataset
    test: object  # datasets.Dataset
    report: Report

    @property
    def max_length(self) -> int | None:
        """The token limit rows were checked against: train with ``max_length=data.max_length``."""
        return self.report.max_length


class _Refused(Exception):
    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


def read_rows(source) -> tuple[str, list[tuple[str, object]]]:
    """``(format, [(where, row)])`` for a file or folder; ``row`` is a dict, or a ``_Refused`` for a bad line."""
    if not isinstance(source, (str, os.PathLike)):  # a datasets.Dataset or a list of dicts
        return "in-memory dataset", [(f"index {i}", dict(r)) for i, r in enumerate(source)]
    path = os.fspath(source)
    if not os.path.exists(path):
        raise DataError(f"No file or folder {path!r}: check the path (relative paths start from "
                        f"{os.getcwd()!r}).")
    if os.path.isdir(path):
        import datasets

        try:
            data = datasets.load_from_disk(path)
        except (FileNotFoundError, ValueError) as err:
            raise DataError(f"{path!r} is a folder but not one written by Dataset.save_to_disk ({err}). "
                            "Pass a .jsonl, .json or .csv file, or such a folder.") from None
        if isinstance(data, datasets.DatasetDict):
            split = "train" if "train" in data else next(iter(data))
            return f"save_to_disk folder, split {split!r} of {list(data)}", [
                (f"index {i}", r) for i, r in enumerate(data[split])]
        return "save_to_disk folder", [(f"index {i}", r) for i, r in enumerate(data)]
    ext = os.path.splitext(path)[1].lower()
    if ext == ".parquet":
        import datasets

        data = datasets.Dataset.from_parquet(path)
        return "Parquet", [(f"index {i}", r) for i, r in enumerate(data)]
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as f:
        text = f.read()
    if not text.strip():
        raise DataError(f"{path!r} is empty: put one example per line (JSONL) or per row (CSV).")
    if ext == ".csv":
        return "CSV", _csv_rows(text, path)
    if ext == ".json":
        try:
            whole = json.loads(text)
        except json.JSONDecodeError:
            return "JSONL (in a .json file)", _jsonl_rows(text)
        if isinstance(whole, dict):  # {"train": [...]} or {"data": [...]}
            lists = [k for k, v in whole.items() if isinstance(v, list)]
            if len(lists) != 1:
                raise DataError(f"{path!r} holds one JSON object; put the examples in a list: "
                                '[{"messages": [...]}, ...] (or one object per line, as .jsonl).')
            return f"JSON (list under {lists[0]!r})", [(f"item {i}", r) for i, r in enumerate(whole[lists[0]], 1)]
        if not isinstance(whole, list):
            raise DataError(f"{path!r} holds a JSON {type(whole).__name__}, not a list of examples.")
        return "JSON", [(f"item {i}", r) for i, r in enumerate(whole, 1)]
    if ext in (".jsonl", ".ndjson", ".txt", ""):
        return "JSONL", _jsonl_rows(text)
    raise DataError(f"Cannot read {ext!r} files: use .jsonl (one JSON object per line), .json (a list), .csv "
                    "(a header row), .parquet, or a folder written by Dataset.save_to_disk.")


def _jsonl_rows(text: str) -> list[tuple[str, object]]:
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append((f"line {number}", json.loads(line)))
        except json.JSONDecodeError as err:
            rows.append((f"line {number}", _Refused("invalid-json", f"not valid JSON ({err.msg} at column {err.colno}): "
                                                   "each line must be one complete JSON object; fix the quoting or "
                                                   "brackets, or delete the line")))
    return rows


def _csv_rows(text: str, path: str) -> list[tuple[str, object]]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if not reader.fieldnames:
        raise DataError(f"{path!r} has no header row: the first line must name the columns, e.g. prompt,completion.")
    rows, start = [], reader.line_num + 1
    for number, row in enumerate(reader, 1):
        rows.append((f"row {number} (line {start})", row))
        start = reader.line_num + 1
    return rows


def _text(value, what: str, fixes: list) -> str:
    """A message's text; a number becomes its text (a fix), anything else is refused; empty text is refused."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        fixes.append(("content", f"{what} was the number {value!r}; read as text"))
        value = str(value)
    if not isinstance(value, str):
        raise _Refused("empty", f"{what} is {type(value).__name__ if value is not None else 'missing'}, not text: "
                                "write it as a string")
    if not value.strip():
        raise _Refused("empty", f"{what} is empty: write it, or delete the row")
    return value


def _turns(value, what: str, fixes: list, default_role: str | None = None) -> list[dict]:
    """A list of ``{"role", "content"}`` turns (a plain string is one ``default_role`` turn)."""
    if isinstance(value, str) and default_role is not None:
        return [{"role": default_role, "content": _text(value, what, fixes)}]
    if isinstance(value, str):  # a CSV cell or a string column holding JSON
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise _Refused("unknown-shape", f"{what} is text, not a list of turns: write it as "
                                            '[{"role": "user", "content": "..."}, ...]') from None
    if not isinstance(value, list) or not value:
        raise _Refused("unknown-shape", f"{what} must be a non-empty list of {{'role', 'content'}} turns")
    turns = []
    for i, turn in enumerate(value, 1):
        if not isinstance(turn, dict):
            raise _Refused("unknown-shape", f"{what}, turn {i} is not an object with 'role' and 'content'")
        if "from" in turn and "value" in turn and "role" not in turn:  # ShareGPT's names
            fixes.append(("role", f"{what}, turn {i}: 'from'/'value' read as 'role'/'content'"))
            turn = {"role": turn["from"], "content": turn["value"]}
        role = turn.get("role")
        if isinstance(role, str) and role.lower() in ROLE_ALIASES:
            fixes.append(("role", f"{what}, turn {i}: role {role!r} read as {ROLE_ALIASES[role.lower()]!r}"))
            role = ROLE_ALIASES[role.lower()]
        if role not in ROLES:
            raise _Refused("role", f"{what}, turn {i} has role {role!r}: use 'system', 'user' or 'assistant'")
        turns.append({"role": role, "content": _text(turn.get("content"), f"{what}, turn {i} ({role})", fixes)})
    return turns


def shape_of(row: dict) -> str | None:
    """Which of ``SHAPES`` a row has, by its keys (None: none of them)."""
    keys = set(row)
    if {"prompt", "chosen", "rejected"} <= keys:
        return "preference"
    if "messages" in keys or "conversations" in keys:
        return "messages"
    if {"prompt", "completion"} <= keys:
        return "prompt/completion"
    if {"instruction", "output"} <= keys:
        return "alpaca"
    return None


def convert(row: dict, shape: str, fixes: list) -> dict:
    """One row as ``{"messages": [...]}`` or ``{"prompt", "chosen", "rejected"}`` (lists of turns)."""
    if shape == "messages":
        key = "messages" if "messages" in row else "conversations"
        if key == "conversations":
            fixes.append(("shape", "'conversations' read as 'messages'"))
        messages = _turns(row[key], "messages", fixes)
    elif shape == "prompt/completion":
        messages = _turns(row["prompt"], "prompt", fixes, "user") + _turns(row["completion"], "completion", fixes, "assistant")
    elif shape == "alpaca":
        extra = row.get("input")
        instruction = _text(row["instruction"], "instruction", fixes)
        if extra is not None and not isinstance(extra, str):
            extra = _text(extra, "input", fixes)
        user = instruction + ("\n\n" + extra if extra and extra.strip() else "")
        messages = [{"role": "user", "content": user}, {"role": "assistant", "content": _text(row["output"], "output", fixes)}]
    else:
        pair = {"prompt": _turns(row["prompt"], "prompt", fixes, "user"),
                "chosen": _turns(row["chosen"], "chosen", fixes, "assistant"),
                "rejected": _turns(row["rejected"], "rejected", fixes, "assistant")}
        if pair["chosen"] == pair["rejected"]:
            raise _Refused("same-replies", "'chosen' and 'rejected' are the same reply: the pair teaches nothing; "
                                           "write a worse 'rejected' reply or delete the row")
        for name in ("chosen", "rejected"):
            if not any(t["role"] == "assistant" for t in pair[name]):
                raise _Refused("no-assistant", f"'{name}' has no assistant turn: it must be the assistant's reply")
        return pair
    if not any(t["role"] == "assistant" for t in messages):
        raise _Refused("no-assistant", "no assistant turn: only the assistant's replies are learned, so this row "
                                       "teaches nothing; add the reply, or delete the row")
    return {"messages": messages}


def _ids(tokenizer, messages: list[dict], prompt_only: bool = False) -> list[int]:
    ids = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=prompt_only, return_dict=False)
    return list(ids["input_ids"] if isinstance(ids, dict) else ids)


def context_length(tokenizer, default: int = 2048) -> int:
    """The tokenizer's ``model_max_length``, or ``default`` where it is unset (a huge placeholder)."""
    n = getattr(tokenizer, "model_max_length", None)
    return int(n) if isinstance(n, int) and 0 < n < 1_000_000 else default


def _length(tokenizer, row: dict) -> tuple[int, int]:
    """(tokens in the whole example, tokens before the first assistant token)."""
    if "messages" in row:
        messages = row["messages"]
        first = next(i for i, t in enumerate(messages) if t["role"] == "assistant")
        return len(_ids(tokenizer, messages)), len(_ids(tokenizer, messages[:first], prompt_only=True)) if first else 0
    prompt = row["prompt"]
    total = max(len(_ids(tokenizer, prompt + row[k])) for k in ("chosen", "rejected"))
    return total, len(_ids(tokenizer, prompt, prompt_only=True))


def load(source, tokenizer=None, *, kind: str | None = None, max_length: int | None = None, too_long: str = "drop",
         test_size: float | int = 0.1, seed: int = 0) -> LoadedData:
    """Read and check ``source`` (a path, or a ``datasets.Dataset`` / list of dicts); see the module docstring.

    ``tokenizer``: counts each example's tokens with its chat template, and checks them against
    ``max_length`` (default: the tokenizer's context length). Longer rows are refused (``too_long="drop"``)
    or kept and counted as fixed (``"truncate"``: train with ``max_length`` and the end is cut off).
    ``kind``: "conversations" (SFT) or "preferences" (DPO); default: what most rows are.
    ``test_size``: the held-out share (or number of rows), drawn with ``seed``.
    """
    import datasets

    if too_long not in TOO_LONG:
        raise ValueError(f"too_long must be 'drop' or 'truncate', not {too_long!r}")
    fmt, raw = read_rows(source)
    parsed = [(where, row, shape_of(row) if isinstance(row, dict) else None) for where, row in raw]
    if kind is None:
        prefs = sum(s == "preference" for _, _, s in parsed)
        kind = "preferences" if prefs > sum(s not in (None, "preference") for _, _, s in parsed) else "conversations"
    if kind not in ("conversations", "preferences"):
        raise ValueError(f"kind must be 'conversations' or 'preferences', not {kind!r}")
    limit = (max_length or context_length(tokenizer)) if tokenizer is not None else max_length
    name = getattr(tokenizer, "name_or_path", None) or (type(tokenizer).__name__ if tokenizer is not None else None)
    if name and os.path.isdir(name):  # a local folder: its name says which model, the rest is this machine's path
        name = os.path.basename(os.path.normpath(name))
    report = Report(str(os.fspath(source)) if isinstance(source, (str, os.PathLike)) else "dataset", fmt, kind,
                    rows=len(raw), tokenizer=name, max_length=limit, too_long=too_long, seed=seed)
    if tokenizer is not None:  # long rows are reported below, row by row: no extra warning from transformers
        getattr(tokenizer, "deprecation_warnings", {})["sequence-length-is-longer-than-the-specified-maximum"] = True
    kept, seen = [], {}
    for where, row, shape in parsed:
        fixes: list = []
        try:
            if isinstance(row, _Refused):
                raise row
            if not isinstance(row, dict):
                raise _Refused("unknown-shape", f"is a JSON {type(row).__name__}, not an object with named fields")
            if shape is None or (shape == "preference") != (kind == "preferences"):
                raise _Refused("unknown-shape", _shape_advice(row, shape, kind))
            report.shapes[shape] = report.shapes.get(shape, 0) + 1
            example = convert(row, shape, fixes)
            key = json.dumps(example, sort_keys=True, ensure_ascii=False)
            if key in seen:
                raise _Refused("duplicate", f"repeats {seen[key]} exactly: left out, so it is neither learned twice "
                                            "nor in both train and held-out; delete one copy")
            seen[key] = where
            if tokenizer is not None:
                total, before_reply = _length(tokenizer, example)
                report.token_lengths.append(total)
                if total > limit:
                    _too_long(total, before_reply, limit, too_long, fixes)
        except _Refused as refusal:
            report.refused += 1
            report.problems.append(Problem(where, refusal.kind, str(refusal), "refused"))
            continue
        if fixes:
            report.fixed += 1
            report.problems += [Problem(where, k, message, "fixed") for k, message in fixes]
        kept.append(example)
    report.kept = len(kept)
    if not kept:
        empty = datasets.Dataset.from_list([])
        report.notes.append("no row can be used: fix the problems below")
        return LoadedData(empty, empty, report)
    data = datasets.Dataset.from_list(kept)
    n_test = int(round(test_size * len(kept))) if isinstance(test_size, float) else int(test_size)
    n_test = min(max(n_test, 1 if test_size else 0), len(kept) - 1)
    if n_test > 0:
        split = data.train_test_split(test_size=n_test, seed=seed)
        train, test = split["train"], split["test"]
    else:
        train, test = data, data.select([])
        report.notes.append("no held-out rows: too few rows kept (or test_size=0)")
    report.train_rows, report.test_rows = len(train), len(test)
    return LoadedData(train, test, report)


def _too_long(total: int, before_reply: int, limit: int, too_long: str, fixes: list) -> None:
    if too_long == "drop":
        raise _Refused("too-long", f"{total} tokens, longer than the limit of {limit}: dropped; shorten it, split it "
                                   "into several rows, or load with too_long='truncate' to keep its first "
                                   f"{limit} tokens")
    if before_reply >= limit:
        raise _Refused("too-long", f"{total} tokens, and the assistant's reply starts after token {before_reply}, "
                                   f"beyond the limit of {limit}: truncating would leave nothing to learn; "
                                   "shorten the prompt")
    fixes.append(("too-long", f"{total} tokens, longer than the limit of {limit}: truncated to its first {limit} "
                              f"tokens when trained with max_length={limit} (the last {total - limit} are not learned)"))


def _shape_advice(row: dict, shape: str | None, kind: str) -> str:
    if shape == "preference":
        return ("is a preference pair (prompt/chosen/rejected): that trains with DPO, not SFT; put pairs and "
                "conversations in separate files")
    if shape is not None:
        return (f"is a conversation ({shape}) in a file of preference pairs: DPO needs 'prompt', 'chosen' and "
                "'rejected'; put conversations in a separate file")
    keys = ", ".join(repr(k) for k in list(row)[:8]) or "none"
    return ("has no known shape (its keys: " + keys + "); use one of: "
            + "; ".join(SHAPES[s] for s in (("preference",) if kind == "preferences" else
                                             ("messages", "prompt/completion", "alpaca"))))
# ---- STANDALONE: end ----


def load_for_model(source, model: str | None = None, profile=None, **kwargs) -> LoadedData:
    """``load`` with the tokenizer of ``model`` (a bundled name, folder or hub id; default: the profile's chat
    model), limited to that model's context length."""
    from ftlab.models import load_tokenizer

    if model is None:
        from ftlab.profiles import choose_profile

        model = (profile or choose_profile()).chat_model
    tokenizer = load_tokenizer(model)
    tokenizer.name_or_path = model
    return load(source, tokenizer, **kwargs)


EXAMPLE = os.path.join(os.path.dirname(__file__), "assets", "data", "pirate_qa.jsonl")


def standalone_source() -> str:
    """The ``STANDALONE`` block of this file, as exported recipes copy it."""
    text = open(__file__, encoding="utf-8").read()
    start = text.index("# ---- STANDALONE: begin")
    end = text.index("# ---- STANDALONE: end ----") + len("# ---- STANDALONE: end ----")
    return text[start:end] + "\n"


def write_example(path: str | os.PathLike = EXAMPLE, seed: int = 0) -> str:
    """(Re)write the example file lesson 6 ships: the tiny world's pirate-style Q&A, one JSON object per line."""
    from ftlab.world import World

    os.makedirs(os.path.dirname(os.fspath(path)) or ".", exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for messages in World(seed).pirate_qa():
            f.write(json.dumps({"messages": messages}, ensure_ascii=False) + "\n")
    return os.fspath(path)
