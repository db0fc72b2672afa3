"""Stage 7: assign every item to train / val / test, grouped by source paper.

Why grouped: panels of one paper share a microscope, a material and an author's captions; if they were
spread over train and test, the test score would measure memorised papers. So items are linked into
groups (union-find) by shared paper ids — an image reprinted in two papers links both papers — and by
near-identical perceptual hashes (a manual image that also appears in a paper), and a group is never split.

Stratified for coverage: features are visited rarest first; a feature not yet in train pulls one of its
groups (the smallest) into train before val/test are filled, so every feature that occurs in at least
one group is trainable. Then val and test are filled to about val_ratio / test_ratio of the items from a
seeded shuffle of the remaining groups; the rest is train.

Stable across updates: groups holding a paper that an earlier build placed keep its split
(dataset_builders.paper_splits, OUT/paper_splits.jsonl); only groups of new papers are drawn.

Held-out pool (dataset_builders.holdout): papers set aside for the expert benchmark, and near-duplicates of
their images, are removed before grouping (stages/holdout.jsonl; reasons "held_out", "near_holdout").

Benchmark exclusion: items within config.dedup_max_distance of any image under config.exclude_benchmark
are dropped from every split (Problem reason "in_benchmark"), so a model is never trained on its test.

Usage:
    from dataset_builders import split
    split.run(StagePaths(out), BuildConfig())   # -> stages/splits.jsonl
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from dataset_builders import holdout, paper_splits
from dataset_builders.config import BuildConfig
from dataset_builders.dedup import pairs_within
from dataset_builders.perceptual_hash import image_phash
from dataset_builders.records import Item, Problem, SplitAssignment, StageResult
from dataset_builders.stage_paths import StagePaths
from dataset_builders.union_find import UnionFind
from fracto_core.files import iter_jsonl, write_jsonl_atomic
from fracto_core.vocabulary import canonical_names

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".gif", ".webp"}
SPLITS = ("train", "val", "test")


def dropped_path(paths: StagePaths) -> Path:
    """Where the split stage records the items it dropped (read by the dataset card)."""
    return paths.stages / "splits_dropped.jsonl"


# --- benchmark exclusion ---------------------------------------------------------------------------

def benchmark_hashes(folder: Path, progress: bool = True) -> tuple[dict[str, str], list[Problem]]:
    """Perceptual hash of every image under `folder` (recursively): {relative path: hash}."""
    hashes: dict[str, str] = {}
    problems: list[Problem] = []
    files = sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    for path in tqdm(files, desc="benchmark hashes", disable=not progress):
        rel = path.relative_to(folder).as_posix()
        try:
            with Image.open(path) as img:
                hashes[rel] = image_phash(img)
        except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as exc:
            problems.append(Problem(file=str(path), stage="split", reason="unreadable_benchmark_image",
                                    detail=str(exc)))
    return hashes, problems


def _hash_array(hashes: list[str]) -> np.ndarray:
    return np.array([int(h, 16) for h in hashes], dtype=np.uint64)


def _nearest(queries: np.ndarray, refs: np.ndarray, chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """For each query hash: the index of the nearest reference hash and the Hamming distance to it."""
    best_d = np.full(len(queries), 65, dtype=np.int64)
    best_i = np.zeros(len(queries), dtype=np.int64)
    if len(refs) == 0:
        return best_i, best_d
    for start in range(0, len(queries), chunk):
        dist = np.bitwise_count(queries[start:start + chunk, None] ^ refs[None, :]).astype(np.int64)
        best_i[start:start + chunk] = dist.argmin(axis=1)
        best_d[start:start + chunk] = dist.min(axis=1)
    return best_i, best_d


def exclude_benchmark(items: list[Item], config: BuildConfig, progress: bool = True
                      ) -> tuple[list[Item], list[Problem]]:
    """Items not matching any benchmark image, and a Problem per dropped item."""
    if config.exclude_benchmark is None:
        return items, []
    folder = Path(config.exclude_benchmark)
    if not folder.is_dir():
        raise FileNotFoundError(f"exclude_benchmark folder {folder} does not exist")
    hashes, problems = benchmark_hashes(folder, progress)
    names = sorted(hashes)
    nearest, dist = _nearest(_hash_array([it.phash for it in items]), _hash_array([hashes[n] for n in names]))
    kept: list[Item] = []
    for item, i, d in zip(items, nearest, dist):
        if d <= config.dedup_max_distance:
            problems.append(Problem(file=item.image, stage="split", reason="in_benchmark", item_id=item.item_id,
                                    detail=f"perceptual hash within {int(d)} bits of benchmark image {names[i]}"))
        else:
            kept.append(item)
    return kept, problems


# --- grouping --------------------------------------------------------------------------------------

def group_items(items: list[Item], max_distance: int) -> dict[str, list[Item]]:
    """Items linked by a shared paper id or by near-identical phash; {group name: items}.

    A group is named after its smallest paper id, so names do not depend on item order.
    """
    uf = UnionFind(len(items))
    first_with_paper: dict[str, int] = {}
    for i, item in enumerate(items):
        for paper in item.paper_ids or [f"item:{item.item_id}"]:
            if paper in first_with_paper:
                uf.union(first_with_paper[paper], i)
            else:
                first_with_paper[paper] = i
    # near-duplicates the dedup stage could not see (manual vs mined); tiled: memory does not grow with n
    for a, b in pairs_within(_hash_array([it.phash for it in items]), max_distance):
        uf.union(a, b)
    members: dict[int, list[Item]] = defaultdict(list)
    for i, item in enumerate(items):
        members[uf.find(i)].append(item)
    groups: dict[str, list[Item]] = {}
    for group in members.values():
        papers = sorted(p for it in group for p in (it.paper_ids or [f"item:{it.item_id}"]))
        groups[papers[0]] = sorted(group, key=lambda it: it.item_id)
    return groups


# --- assignment --------------------------------------------------------------------------------------

def assign_groups(groups: dict[str, list[Item]], config: BuildConfig, fixed: dict[str, str] | None = None
                  ) -> dict[str, str]:
    """{group name: split}: rare-first coverage of train, then val/test filled to their target sizes.

    fixed: groups whose split is already decided (stable splits, dataset_builders.paper_splits): they keep it,
    count towards the targets and towards train's feature coverage; only the other groups are drawn.
    """
    rng = random.Random(f"{config.seed}:split")
    order = sorted(groups)
    rng.shuffle(order)
    rank = {name: i for i, name in enumerate(order)}  # seeded tie-break
    group_features = {name: {f for it in items for f in it.features} for name, items in groups.items()}
    n_groups_with = Counter(f for feats in group_features.values() for f in feats)
    vocab_order = {name: i for i, name in enumerate(canonical_names())}

    split_of: dict[str, str] = dict(fixed or {})
    in_train: set[str] = {f for g, s in split_of.items() if s == "train" for f in group_features[g]}
    for feat in sorted(n_groups_with, key=lambda f: (n_groups_with[f], vocab_order.get(f, len(vocab_order)), f)):
        if feat in in_train:
            continue
        candidates = [g for g in order if g not in split_of and feat in group_features[g]]
        if not candidates:
            continue
        chosen = min(candidates, key=lambda g: (len(groups[g]), rank[g]))
        split_of[chosen] = "train"
        in_train |= group_features[chosen]

    n_items = sum(len(v) for v in groups.values())
    target = {"val": config.val_ratio * n_items, "test": config.test_ratio * n_items}
    filled = {s: sum(len(groups[g]) for g, gs in split_of.items() if gs == s) for s in ("val", "test")}
    for g in order:
        if g in split_of:
            continue
        size = len(groups[g])
        split_of[g] = "train"
        for split in ("test", "val"):  # a group goes where it brings the count closer to the target
            if abs(filled[split] + size - target[split]) < abs(filled[split] - target[split]):
                split_of[g] = split
                filled[split] += size
                break
    return split_of


def ensure_min_papers(split_of: dict[str, str], groups: dict[str, list[Item]], config: BuildConfig,
                      fixed: dict[str, str] | None = None) -> dict[str, str]:
    """--min-split-papers: move train groups into test, then val, until each holds that many source papers.

    Smallest group first, and first those whose features other train groups still show (train keeps every
    feature where it can); at least one group stays in train. Fewer papers than asked: as many as there are.
    Groups in ``fixed`` (placed by an earlier build, dataset_builders.paper_splits) never move."""
    want = config.min_split_papers
    if want <= 0:
        return split_of
    split_of = dict(split_of)
    papers = {g: {p for it in items for p in (it.paper_ids or [f"item:{it.item_id}"])} for g, items in groups.items()}
    features = {g: {f for it in items for f in it.features} for g, items in groups.items()}
    rng = random.Random(f"{config.seed}:min-split")
    order = sorted(groups)
    rng.shuffle(order)
    rank = {g: i for i, g in enumerate(order)}
    for split in ("test", "val"):
        while sum(len(papers[g]) for g in split_of if split_of[g] == split) < want:
            train = [g for g in split_of if split_of[g] == "train"]
            movable = [g for g in train if g not in (fixed or {})]
            if len(train) <= 1 or not movable:
                break
            shown = Counter(f for g in train for f in features[g])
            spare = lambda g: all(shown[f] > 1 for f in features[g])  # noqa: E731
            split_of[min(movable, key=lambda g: (not spare(g), len(groups[g]), rank[g]))] = split
    return split_of


@dataclass(slots=True)
class SplitItem:
    """An Item's fields without its provenance, slotted: what the split reads of an item when no held-out
    pool needs the provenance (a pydantic Item without it still took ~1.4 KB, 20 MiB for 14,000 items)."""

    item_id: str
    image: str
    width: int
    height: int
    phash: str
    paper_ids: list[str]
    features: list[str]
    label_origin: str
    provenance: dict = field(default_factory=dict)


def load_items(paths: StagePaths, keep_provenance: bool) -> list[Item] | list[SplitItem]:
    """The items of items.jsonl; without keep_provenance each one's provenance is dropped as it is read
    (only the held-out pool reads it) and the rest kept as a SplitItem. Equal feature and paper-id lists
    are one shared list (nothing in the split edits them)."""
    if not paths.items.exists():  # read as empty, it split nothing and the build went on
        raise FileNotFoundError(f"{paths.items}: missing; the items stage has not run (re-run from it: "
                                "--from-stage items)")
    items: list = []
    one: dict = {}
    for item in iter_jsonl(paths.items, Item):
        features = one.setdefault(("features", *item.features), item.features)
        paper_ids = one.setdefault(("papers", *item.paper_ids), item.paper_ids)
        if keep_provenance:
            item.features, item.paper_ids = features, paper_ids
            items.append(item)
        else:
            items.append(SplitItem(item.item_id, item.image, item.width, item.height, item.phash, paper_ids,
                                   features, one.setdefault(item.label_origin, item.label_origin)))
    return items


def run(paths: StagePaths, config: BuildConfig, progress: bool = True) -> StageResult:
    """Write stages/splits.jsonl (one SplitAssignment per kept item, sorted by item id)."""
    items = sorted(load_items(paths, keep_provenance=holdout.enabled(config)), key=lambda it: it.item_id)
    rest, held_out, pool_counts = holdout.set_aside(paths, items, config)  # the benchmark pool, before any split
    kept, problems = exclude_benchmark(rest, config, progress)
    problems = held_out + problems
    groups = group_items(kept, config.dedup_max_distance)
    pins, redrawn = paper_splits.read_pins(paths, config)
    fixed, overrides, conflicts = paper_splits.pinned_groups(groups, pins)
    problems += redrawn + conflicts
    dropped = {p.item_id for p in conflicts}
    split_of = ensure_min_papers(assign_groups(groups, config, fixed), groups, config, fixed)
    placed = [(it, overrides.get(it.item_id, split_of[name]), name)
              for name, members in groups.items() for it in members if it.item_id not in dropped]
    paper_splits.write_pins(paths, paper_splits.updated_pins(pins, [(it, split) for it, split, _ in placed], config))
    # (item id, split, group) sorted, each made a record only as it is written (14,000 models held ~8 MiB)
    assignments = sorted(((it.item_id, split, name) for it, split, name in placed), key=lambda a: a[0])
    del placed
    write_jsonl_atomic(paths.splits, (SplitAssignment(item_id=i, split=split, group=name)
                                      for i, split, name in assignments))
    write_jsonl_atomic(dropped_path(paths), problems)
    counts = Counter(split for _, split, _ in assignments)
    return StageResult(stage="split", problems=problems, counts={
        "items": len(items), "groups": len(groups), **{s: counts.get(s, 0) for s in SPLITS},
        "in_benchmark": sum(p.reason == "in_benchmark" for p in problems), "pinned_groups": len(fixed),
        "split_conflict": len(conflicts), **pool_counts})
