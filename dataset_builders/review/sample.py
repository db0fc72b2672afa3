"""The review sample: stratified by feature, rare features oversampled, reproducible from its seed.

Holds no files. Strategy "feature round robin": features are visited from the least to the most frequent
in the population; each visit draws one not-yet-drawn image carrying that feature (shuffled with the
seed), a vocabulary-rare feature (fracto_core.vocabulary ``rare``) draws ``rare_weight`` per round. So
each feature gets about the same number of images whatever its frequency (a feature on 3 of 1,000 images
gets its 3, where a proportional sample of 100 would expect 0.3), which is what per-feature agreement
and kappa need. Each drawn image records the feature it was drawn for (its stratum).

Usage:
    from dataset_builders.review.sample import stratified_sample
    sample = stratified_sample(items, n=100, seed=0)   # sample.chosen, sample.strata, sample.summary()
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

from fracto_core.vocabulary import canonical_names, rare_names

STRATEGY = "feature-round-robin"
DEFAULT_RARE_WEIGHT = 2


@dataclass
class Sample:
    seed: int
    n_requested: int
    rare_weight: int
    chosen: list[str] = field(default_factory=list)  # item ids in drawing order
    strata: dict[str, str] = field(default_factory=dict)  # item id -> feature it was drawn for
    population: dict[str, int] = field(default_factory=dict)  # feature -> items carrying it (all items)
    in_sample: dict[str, int] = field(default_factory=dict)  # feature -> sampled items carrying it

    def summary(self) -> dict:
        """JSON-able record of how the sample was drawn (written beside the tasks)."""
        drawn = Counter(self.strata.values())
        return {"strategy": STRATEGY, "seed": self.seed, "n_requested": self.n_requested, "n": len(self.chosen),
                "rare_weight": self.rare_weight,
                "features": {f: {"population": self.population[f], "drawn_for": drawn.get(f, 0),
                                 "in_sample": self.in_sample.get(f, 0)}
                             for f in canonical_names() if self.population.get(f)},
                "items": [{"item_id": i, "stratum": self.strata[i]} for i in self.chosen]}


def stratified_sample(items: dict[str, list[str]], n: int, seed: int,
                      rare_weight: int = DEFAULT_RARE_WEIGHT) -> Sample:
    """Draw up to ``n`` of ``items`` (item id -> features); see the module docstring. Deterministic in seed."""
    if n < 1:
        raise ValueError(f"sample size must be at least 1 (got {n})")
    if rare_weight < 1:  # a rare feature that draws nothing per round is never emptied: the rounds never end
        raise ValueError(f"--rare-weight must be at least 1 (got {rare_weight})")
    rng = random.Random(seed)
    population = Counter(f for feats in items.values() for f in feats)
    rare = set(rare_names())
    pools: dict[str, list[str]] = {}
    for name in canonical_names():
        ids = sorted(i for i, feats in items.items() if name in feats)
        rng.shuffle(ids)
        if ids:
            pools[name] = ids
    order = sorted(pools, key=lambda f: (population[f], canonical_names().index(f)))
    sample = Sample(seed=seed, n_requested=n, rare_weight=rare_weight, population=dict(population))
    taken: set[str] = set()
    while len(sample.chosen) < n and pools:
        for name in list(order):
            for _ in range(rare_weight if name in rare else 1):
                pool = pools.get(name, [])
                while pool and pool[-1] in taken:
                    pool.pop()
                if not pool or len(sample.chosen) >= n:
                    break
                item = pool.pop()
                taken.add(item)
                sample.chosen.append(item)
                sample.strata[item] = name
            if not pools.get(name):
                pools.pop(name, None)
                order.remove(name)
    sample.in_sample = dict(Counter(f for i in sample.chosen for f in items[i]))
    return sample
