"""Stable splits: the split of every source paper, kept in OUT/paper_splits.jsonl across builds.

The split stage (dataset_builders.split) reads this file first: a group of items (linked by paper or by
near-identical image) holding a paper that is already listed goes where that paper went, so adding papers
to a built corpus never moves an old paper between train, val and test, and a new paper that joins an old
group (a reprinted image) follows the old paper. Only groups made of new papers are drawn (rare features
first, then val/test filled towards their targets counting the old items), and their papers are added to
the file with the number of the update that brought them (1 = the first build), which the dataset card
lists. The file lives beside stages/ (``--fresh`` keeps it); delete it, or change --seed / --val-ratio /
--test-ratio (the file records the settings of its draw), to draw every split anew.

A group whose old papers sit in different splits (a new paper reprints images of two old papers that
went to train and to test) cannot be kept whole: its old items stay where their papers are and the new
papers' items of that group are dropped, each with a Problem "split_conflict", so no group straddles.

Keys are the grouping keys of dataset_builders.split: a paper id, "manual:<source>", or "item:<id>".
"""

from __future__ import annotations

from pathlib import Path

from dataset_builders.config import BuildConfig
from dataset_builders.records import Item, Problem, Record, Split
from dataset_builders.stage_paths import StagePaths
from fracto_core.files import read_jsonl, write_jsonl_atomic

PINS_NAME = "paper_splits.jsonl"
PRECEDENCE = ("test", "val", "train")  # an item of two old papers in different splits: the held-out one wins


class PaperSplit(Record):
    paper: str  # a paper id, "manual:<source>" or "item:<id>"
    split: Split
    update: int  # the build that first placed it: 1 = the first build, n = the (n-1)-th update
    drawn: str  # the settings of the draw (draw_settings): other settings mean the user asks for a new draw


def pins_path(paths: StagePaths) -> Path:
    return paths.out / PINS_NAME


def draw_settings(config: BuildConfig) -> str:
    return f"seed={config.seed} val_ratio={config.val_ratio} test_ratio={config.test_ratio}"


def read_pins(paths: StagePaths, config: BuildConfig) -> tuple[dict[str, PaperSplit], list[Problem]]:
    """The pins of an earlier build, or none (with a "splits_redrawn" problem) when they were drawn with
    another seed or other ratios: changing those asks for a new draw."""
    path = pins_path(paths)
    if not path.exists():
        return {}, []
    pins = {p.paper: p for p in read_jsonl(path, PaperSplit)}
    other = {p.drawn for p in pins.values()} - {draw_settings(config)}
    if other:
        return {}, [Problem(file=str(path), stage="split", reason="splits_redrawn",
                            detail=f"earlier splits were drawn with {', '.join(sorted(other))}; this build draws every "
                                   f"split anew with {draw_settings(config)}")]
    return pins, []


def item_keys(item: Item) -> list[str]:
    return item.paper_ids or [f"item:{item.item_id}"]


def pinned_groups(groups: dict[str, list[Item]], pins: dict[str, PaperSplit]
                  ) -> tuple[dict[str, str], dict[str, str], list[Problem]]:
    """(fixed {group: split}, per-item overrides {item id: split}, split_conflict problems).

    A group with one pinned split is fixed to it. A group with several: every item with a pinned paper
    follows that paper (PRECEDENCE if its own papers disagree), the others are dropped (problems), and the
    group is fixed to its first-precedence split so the draw leaves it alone.
    """
    fixed: dict[str, str] = {}
    overrides: dict[str, str] = {}
    problems: list[Problem] = []
    for name, members in groups.items():
        splits = {pins[k].split for it in members for k in item_keys(it) if k in pins}
        if not splits:
            continue
        fixed[name] = min(splits, key=PRECEDENCE.index)
        if len(splits) == 1:
            continue
        for it in members:
            own = {pins[k].split for k in item_keys(it) if k in pins}
            if own:
                overrides[it.item_id] = min(own, key=PRECEDENCE.index)
            else:
                problems.append(Problem(file=it.image, stage="split", reason="split_conflict", item_id=it.item_id,
                                        detail="links papers that earlier builds put in " + ", ".join(sorted(splits))
                                               + "; dropped so that no group straddles splits"))
    return fixed, overrides, problems


def updated_pins(pins: dict[str, PaperSplit], placed: list[tuple[Item, str]], config: BuildConfig
                 ) -> dict[str, PaperSplit]:
    """The pins with every new key of a placed (item, split) added, with the next update number."""
    update = max((p.update for p in pins.values()), default=0) + 1
    out = dict(pins)
    for item, split in placed:
        for key in item_keys(item):
            if key not in out:
                out[key] = PaperSplit(paper=key, split=split, update=update, drawn=draw_settings(config))
    return out


def write_pins(paths: StagePaths, pins: dict[str, PaperSplit]) -> None:
    write_jsonl_atomic(pins_path(paths), [pins[k] for k in sorted(pins)])
