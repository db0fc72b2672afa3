"""Multiple-choice test helpers: class benchmarks (technique, material, mechanism) and scripted-server responders
that answer lettered prompts (used by the issue-14 tests)."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
from PIL import Image

from eval.tasks import LETTERS

CHOICES = re.compile(r"Choices: (.*?)\. Answer with the letter")


def make_class_benchmark(folder: Path, rows: list[dict], seed: int = 0) -> Path:
    """labels.csv + one random 64x80 PNG per row; rows hold item_id, features, technique, material, mechanism,
    caption, excerpts (any subset)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    columns = ["item_id", "file", "features", "technique", "material", "mechanism", "caption", "excerpts"]
    with open(folder / "labels.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            Image.fromarray(rng.integers(0, 255, (64, 80), dtype=np.uint8)).save(folder / f"{row['item_id']}.png")
            writer.writerow({"file": f"{row['item_id']}.png", **row})
    return folder / "labels.csv"


def prompt_text(body: dict) -> str:
    parts = body["messages"][-1]["content"]
    return "\n".join(p["text"] for p in parts if p.get("type") == "text") if isinstance(parts, list) else parts


def lettered_choices(body: dict) -> list[str]:
    """The option names of a lettered prompt, in letter order."""
    listed = CHOICES.search(prompt_text(body)).group(1)
    return [re.sub(r"^[A-Z]\. ", "", part) for part in listed.split("; ")]


def answer_letter(body: dict, name: str) -> str:
    return LETTERS[lettered_choices(body).index(name)]
