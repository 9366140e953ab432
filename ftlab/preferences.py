"""A person's preference labels, kept in a JSONL file that survives kernel restarts.

Each label is one line: ``{"prompt": ..., "a": ..., "b": ..., "choice": "A" | "B" | "tie"}``.
Lines are only ever appended (so nothing earlier can be lost); reading keeps the newest label for
each (prompt, a, b), so re-labelling a pair replaces its label, and a line that is not a valid label
(a crash mid-write, a hand edit) is reported and skipped.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

CHOICES = ("A", "B", "tie")


@dataclass
class PreferenceLog:
    path: Path
    problems: list[str] = field(default_factory=list)  # "line 7: not JSON ..." from the last read

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.problems = []

    @staticmethod
    def key(prompt: str, a: str, b: str) -> tuple[str, str, str]:
        return (prompt, a, b)

    def add(self, prompt: str, a: str, b: str, choice: str) -> None:
        """Append one label (``"A"``, ``"B"`` or ``"tie"``) and make sure it is on disk."""
        if choice not in CHOICES:
            raise ValueError(f"choice must be one of {CHOICES}, not {choice!r}.")
        line = json.dumps({"prompt": prompt, "a": a, "b": b, "choice": choice}, ensure_ascii=False)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a+b") as f:
            f.seek(0, os.SEEK_END)
            if f.tell() > 0:  # a previous write cut short leaves no newline: do not glue onto it
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    f.write(b"\n")
            f.write(line.encode("utf-8") + b"\n")
            f.flush()
            os.fsync(f.fileno())

    def clear(self) -> Path | None:
        """Start over: the file moves aside to ``<name>.bak`` (replacing an older one), so an unlucky
        click loses nothing for good. Returns where the labels went (None if there were none)."""
        if not self.path.exists():
            return None
        backup = self.path.with_name(self.path.name + ".bak")
        self.path.replace(backup)
        return backup

    def labels(self) -> dict[tuple[str, str, str], str]:
        """``{(prompt, a, b): choice}``, newest label per pair; bad lines go to ``self.problems``."""
        self.problems = []
        found: dict[tuple[str, str, str], str] = {}
        if not self.path.exists():
            return found
        for number, raw in enumerate(self.path.read_bytes().decode("utf-8", errors="replace").splitlines(), 1):
            if not raw.strip():
                continue
            try:
                row = json.loads(raw)
                found[self.key(row["prompt"], row["a"], row["b"])] = _checked(row["choice"])
            except (ValueError, KeyError, TypeError) as err:
                self.problems.append(f"line {number}: skipped, not a label ({type(err).__name__}: {err})")
        return found

    def to_pairs(self):
        """The labels as a TRL preference dataset (``prompt``, ``chosen``, ``rejected``, conversational);
        ties say nothing about which is better and are left out."""
        from datasets import Dataset

        rows = []
        for (prompt, a, b), choice in self.labels().items():
            if choice == "tie":
                continue
            chosen, rejected = (a, b) if choice == "A" else (b, a)
            rows.append({"prompt": [{"role": "user", "content": prompt}],
                         "chosen": [{"role": "assistant", "content": chosen}],
                         "rejected": [{"role": "assistant", "content": rejected}]})
        return Dataset.from_list(rows) if rows else Dataset.from_dict({"prompt": [], "chosen": [], "rejected": []})


def _checked(choice) -> str:
    if choice not in CHOICES:
        raise ValueError(f"choice {choice!r} is not one of {CHOICES}")
    return choice
