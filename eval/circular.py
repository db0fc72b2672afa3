"""Circular evaluation of multiple-choice tasks: shuffled options, rotated through every position.

For each image the task's options are shuffled once with a fixed seed (seeded by the run's seed and the
item id, so every model sees the same orders), then rotated n times (n = number of options): in rotation
k the first option is the shuffle's k-th, so the true option visits every letter exactly once. A model
that always answers "A" is right in exactly one rotation of every image.

Two views are reported:
  * per rotation: every (image, rotation) answer scored alone (accuracy averaged over positions;
    the first rotation alone is what a single-pass evaluation would have measured);
  * circular: an image counts as right only when EVERY rotation is right (MMBench's CircularEval).
The gap between them, and the share of answers per letter position, expose position bias.

Usage:
    from eval.circular import option_orders, rotation_prompt, rotation_parse, circular_summary
    orders = option_orders("item-7", task, seed=0)     # n tuples of choice names
    rotation_prompt(task, orders[0]); rotation_parse(task, orders[0], "B")
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence

from eval.tasks import LETTERS, Task, TaskAnswer, multiple_choice_prompt, parse_choice

DEFAULT_SEED = 0


def option_orders(item_id: str, task: Task, seed: int = DEFAULT_SEED) -> list[tuple[str, ...]]:
    """The n option orders of one image: a seeded shuffle, then its n rotations (each option at each position)."""
    if task.kind != "multiple_choice" or not task.choices:
        raise ValueError(f"task {task.name} has no lettered choices to rotate")
    names = [c.name for c in task.choices]
    random.Random(f"{seed}:{item_id}").shuffle(names)  # str seeds hash with sha512: stable across runs
    return [tuple(names[k:] + names[:k]) for k in range(len(names))]


def _ordered(task: Task, order: Sequence[str]):
    by_name = {c.name: c for c in task.choices}
    return tuple(by_name[n] for n in order)


def rotation_prompt(task: Task, order: Sequence[str]) -> str:
    """The task's prompt with its choices lettered in `order`."""
    return multiple_choice_prompt(task.question, _ordered(task, order))


def rotation_parse(task: Task, order: Sequence[str], text: str) -> TaskAnswer:
    """A reply to rotation_prompt(task, order), read against that order's letters."""
    return parse_choice(text, _ordered(task, order))


def chosen_position(order: Sequence[str], answer: TaskAnswer) -> str | None:
    """The letter the answer stands at in this order (None for no answer)."""
    return LETTERS[list(order).index(answer.labels[0])] if answer.labels else None


def circular_summary(rotations: Sequence[Sequence[dict]], n_options: int) -> dict:
    """Both views over all images: per-rotation accuracy, first-rotation accuracy, circular accuracy, positions.

    rotations: per image, its rotation logs ({"correct": bool, "position": letter | None}).
    """
    if not rotations:
        raise ValueError("no images")
    answers = [r for item in rotations for r in item]
    positions = Counter(r["position"] or "none" for r in answers)
    n = len(rotations)
    return {
        "n_images": n, "n_rotations": n_options,
        "per_rotation_accuracy": sum(r["correct"] for r in answers) / len(answers),
        "first_rotation_accuracy": sum(item[0]["correct"] for item in rotations) / n,
        "circular_accuracy": sum(all(r["correct"] for r in item) for item in rotations) / n,
        "position_share": {p: positions.get(p, 0) / len(answers) for p in [*LETTERS[:n_options], "none"]},
    }
