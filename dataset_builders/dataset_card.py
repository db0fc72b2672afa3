"""The dataset card: what is in the exported dataset, where it came from, and what was left out and why.

Written next to the dataset as dataset_card.md (for people) and dataset_card.json (for scripts and the
eval report). Everything is counted from the stage files, so the card cannot disagree with the data:
counts per split, per feature per split (originals and with augmentation), source papers (title/DOI from
stages/panels/*.json), label-provenance shares, augmentation counts by kind, every drop with its reason
(filter rejections, duplicates, benchmark exclusions, this run's build-report problems), the prompt
version, the image budget (image_max_pixels, cutoff_len, the largest image-token count seen) and how
derived JPEGs were encoded (dataset_builders.jpeg.POLICY). When a model labelled the images: its label
prompt version(s) and where its labels and the caption rules disagree
(stages/label_sources.jsonl: counted per feature and listed per image).
Licences: a table of source papers and items per licence (the fetch manifest's, else the PDF's own statement,
else "unknown"), and the licence of every source; updates: how many sources each build added
(OUT/paper_splits.jsonl) and the list the latest one added.
After an expert review (``python -m dataset_builders.review import``): the audit of the labels against the
expert (OUT/review/audit.json).

Usage:
    from dataset_builders.dataset_card import write_card
    write_card(StagePaths(out), BuildConfig(), check)   # check: validate.check_dataset(...)
"""

from __future__ import annotations

import json

import numpy as np
from collections import Counter, defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

from dataset_builders import holdout, jpeg
from fracto_core.answer_format import PROMPT_VERSION
from dataset_builders.augment import manifest_path
from dataset_builders.config import BuildConfig
from dataset_builders.dedup import iter_groups, pairs_within
from dataset_builders.label import LabelSources, sources_path
from dataset_builders.review.importer import AUDIT_JSON, audit_markdown
from dataset_builders.records import (
    AugmentedImage,
    FilterDecision,
    Item,
    LabelRecord,
    Problem,
    SplitAssignment,
)
from dataset_builders.paper_splits import PaperSplit, pins_path
from dataset_builders.sources import paper_meta
from dataset_builders.split import dropped_path
from dataset_builders.stage_paths import StagePaths
from dataset_builders.stages import collect_report
from fracto_core.files import iter_jsonl, read_jsonl, write_json_atomic, write_text_atomic
from dataset_builders.validate import DatasetCheck
from fracto_core.vocabulary import canonical_names, rare_names

SPLITS = ("train", "val", "test")


class CardItem(NamedTuple):
    """What the card reads of an item: an Item holds its whole provenance (~2.2 KB each as Python objects,
    31 MiB for 14,000 items), this a tenth of it; the lists and strings that repeat from item to item (label
    sets, paper ids, origins, licences) are one shared object each."""

    paper_ids: tuple[str, ...]
    features: tuple[str, ...]
    label_origin: str
    phash: str
    licence: str  # provenance["licence"], "unknown" when none was stated


class Assigned(NamedTuple):
    """A split assignment as the card reads it (a SplitAssignment model is ~4 times its size)."""

    item_id: str
    split: str
    group: str


def card_items(paths: StagePaths) -> dict[str, CardItem]:
    one: dict = {}  # one object per distinct value
    return {it.item_id: CardItem(_shared(one, tuple(it.paper_ids)), _shared(one, tuple(it.features)),
                                 _shared(one, it.label_origin), it.phash,
                                 _shared(one, str(it.provenance.get("licence") or "unknown")))
            for it in _iter(paths.items, Item)}


def _shared(one: dict, value):
    return one.setdefault(value, value)


def _jsonl(path: Path, model):
    return read_jsonl(path, model) if path.exists() else []


def _iter(path: Path, model):
    return iter_jsonl(path, model) if path.exists() else iter(())


TOP_REASONS = 15  # filter evidence rows shown in the card


def reason_kind(reason: str) -> str:
    """A filter reason without its value: "cue:-white_fraction=0.82" -> "cue:-white_fraction"."""
    return reason.split("=", 1)[0].split("(", 1)[0]


def leakage(items: Mapping[str, Item | CardItem], split_of: dict[str, str], max_distance: int) -> dict:
    """Papers and near-duplicate images (perceptual-hash distance <= max_distance) found in two splits.

    Both counts must be 0: the split groups by paper and dedup merges near-duplicates before it.
    """
    splits_of_paper: dict[str, set[str]] = defaultdict(set)
    for item_id, split in split_of.items():
        for paper in items[item_id].paper_ids:
            splits_of_paper[paper].add(split)
    papers = sorted(p for p, s in splits_of_paper.items() if len(s) > 1)
    ids = sorted(split_of)
    pairs: list[list[str]] = []
    if ids:  # tiled XOR + popcount (dedup.pairs_within); a Python loop per item took 0.7 s for 3,500 items
        hashes = np.array([int(items[i].phash, 16) & ((1 << 64) - 1) for i in ids], dtype=np.uint64)
        pairs = [[ids[a], ids[b]] for a, b in pairs_within(hashes, max_distance) if split_of[ids[a]] != split_of[ids[b]]]
    return {"papers_across_splits": len(papers), "papers": papers,
            "near_duplicates_across_splits": len(pairs), "pairs": pairs[:50]}


class CardBase(NamedTuple):
    """The card's data but for what the export's own run decides (card_base); picklable, so a second process
    can read the stage files while the export writes and checks the samples (export.run)."""

    data: dict  # card_data's dict, its keys in their order; the check's maxima and the report's parts empty
    benchmark: list[dict]  # the benchmark exclusions of stages/splits_dropped.jsonl, in file order, first of each


def card_data(paths: StagePaths, config: BuildConfig, check: DatasetCheck | None = None,
              report: list[Problem] | None = None) -> dict:
    """Everything the card says, as plain JSON-able data (deterministic: sorted keys and lists).

    report: this run's build-report problems (the export passes those of the stages before it plus its
    own: exactly what the build then writes to build_report.jsonl); None reads every stage's result.
    """
    return finish_card(card_base(paths, config), paths, check, report)


def finish_card(base: CardBase, paths: StagePaths, check: DatasetCheck | None = None,
                report: list[Problem] | None = None) -> dict:
    """card_data from card_base's part and what this run found: the check's token maxima and the report
    (its benchmark exclusions join those of splits_dropped.jsonl, the first of each (item, image) kept)."""
    data = base.data
    report = collect_report(paths) if report is None else report
    seen = {(b["item_id"], b["image"]) for b in base.benchmark}
    benchmark = list(base.benchmark)
    for p in report:
        key = (p.item_id, p.file)
        if p.reason == "in_benchmark" and key not in seen:
            seen.add(key)
            benchmark.append({"item_id": p.item_id, "image": p.file, "detail": p.detail})
    data["max_image_tokens"] = check.max_image_tokens if check else None
    data["max_sample_tokens_bound"] = check.max_sample_tokens if check else None
    dropped = data["dropped"]
    dropped["benchmark"] = sorted(benchmark, key=lambda d: (d["item_id"] or "", d["image"]))
    dropped["build_report"] = dict(sorted(Counter(f"{p.stage}:{p.reason}" for p in report).items()))
    dropped["problems"] = [p.model_dump() for p in report]
    return data


def card_base(paths: StagePaths, config: BuildConfig) -> CardBase:
    """What the card says that the stage files alone decide (finish_card adds the rest)."""
    items = card_items(paths)
    one: dict = {}
    assignments = [Assigned(a.item_id, _shared(one, a.split), _shared(one, a.group))
                   for a in _iter(paths.splits, SplitAssignment) if a.item_id in items]
    del one
    split_of = {a.item_id: a.split for a in assignments}
    # the augmented train images counted per original and per kind: neither the records nor a tuple per image
    # are kept (10^4-10^5 of them; a list of (original id, kind) held ~6 MiB at 47,600 samples)
    aug_per_item: Counter[str] = Counter()
    aug_kinds: Counter[str] = Counter()
    for a in _iter(manifest_path(paths), AugmentedImage):
        if split_of.get(a.original_id) == "train":
            aug_per_item[a.original_id] += 1
            aug_kinds[a.kind] += 1
    n_augmented = sum(aug_kinds.values())

    # counts per split
    splits: dict[str, dict] = {}
    for split in SPLITS:
        ids = [a.item_id for a in assignments if a.split == split]
        n_aug = n_augmented if split == "train" else 0
        papers = {p for i in ids for p in items[i].paper_ids}
        splits[split] = {"items": len(ids), "samples": len(ids) + n_aug, "augmented": n_aug,
                         "groups": len({a.group for a in assignments if a.split == split}), "sources": len(papers)}

    # per feature per split
    features: dict[str, dict] = {}
    rare = set(rare_names())
    originals: Counter[tuple[str, str]] = Counter()  # (feature, split): one pass over the items, not one per feature
    augmented: Counter[tuple[str, str]] = Counter()
    for a in assignments:
        for name in set(items[a.item_id].features):
            originals[name, a.split] += 1
            augmented[name, a.split] += aug_per_item[a.item_id]
    for name in canonical_names():
        row: dict = {"rare": name in rare}
        for split in SPLITS:
            row[split] = {"originals": originals[name, split],
                          "with_augmentation": originals[name, split] + augmented[name, split]}
        features[name] = row

    # sources
    per_source: dict[str, Counter] = defaultdict(Counter)
    for a in assignments:
        for p in items[a.item_id].paper_ids:
            per_source[p][a.split] += 1
    sources = []
    for p in sorted(per_source):
        entry = {"source": p, "manual": p.startswith("manual:"), "items": {s: per_source[p][s] for s in SPLITS}}
        if not entry["manual"]:
            entry.update(paper_meta(paths, p, missing_ok=True))
        sources.append(entry)

    licences = licence_data(items, assignments, sources)
    updates = update_data(paths, sources)

    # label provenance
    origins = Counter(items[a.item_id].label_origin for a in assignments)
    total = sum(origins.values())
    label_origins = {o: {"items": n, "share": round(n / total, 4)} for o, n in sorted(origins.items())}

    # everything dropped
    n_decisions, rejected = 0, 0
    evidence: Counter[str] = Counter()
    for d in _iter(paths.filter, FilterDecision):
        n_decisions += 1
        if not d.keep:
            rejected += 1
            evidence.update(reason_kind(r) for r in set(d.reasons or ["no_evidence"]))
    duplicates = [{"panel_id": m, "duplicate_of": g.representative}
                  for g in iter_groups(paths) for m in g.members if m != g.representative]
    labels = Counter(LabelSummary(r.status, r.origin, r.prompt_version) for r in _iter(paths.labels, LabelRecord))
    dropped_problems = _jsonl(dropped_path(paths), Problem)
    seen: set[tuple] = set()
    benchmark: list[dict] = []
    for p in dropped_problems:
        key = (p.item_id, p.file)
        if p.reason == "in_benchmark" and key not in seen:
            seen.add(key)
            benchmark.append({"item_id": p.item_id, "image": p.file, "detail": p.detail})

    return CardBase({
        "labelling": labelling_data(paths, labels),
        "expert_review": expert_review_data(paths),
        "dataset_name": config.dataset_name,
        "prompt_version": PROMPT_VERSION,
        "image_max_pixels": config.image_max_pixels,
        "image_min_pixels": config.image_min_pixels,
        "cutoff_len": config.cutoff_len,
        "max_image_tokens": None,  # finish_card: the check's
        "max_sample_tokens_bound": None,
        "seed": config.seed,
        "jpeg_encoding": jpeg.POLICY,
        "splits": splits,
        "features": features,
        "label_origins": label_origins,
        "augmentation": {kind: aug_kinds[kind] for kind in ("rotation", "oversample")},
        "sources": sources,
        "licences": licences,
        "updates": updates,
        "leakage": leakage(items, split_of, config.dedup_max_distance),
        "held_out": holdout.card_data(paths, dropped_problems),
        "dropped": {
            "filter": {"rejected": rejected, "of": n_decisions,  # ties by name: set order varies per run
                       "by_evidence": dict(sorted(evidence.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_REASONS])},
            "duplicates": {"count": len(duplicates), "panels": sorted(duplicates, key=lambda d: d["panel_id"])},
            "labels": dict(sorted(_count(labels, "status", skip="labelled").items())),
            "benchmark": [],  # finish_card: these and the report's
            "build_report": {},
            "problems": [],
        },
    }, benchmark)


def licence_data(items: dict[str, CardItem], assignments: list[Assigned], sources: list[dict]) -> dict:
    """{licence: {"papers", "items", "train", "val", "test"}}: source papers (manual sources excluded) by their
    licence, items by the licence in their provenance ("unknown" when none was stated)."""
    table: dict[str, dict] = defaultdict(lambda: {"papers": 0, "items": 0, **{s: 0 for s in SPLITS}})
    for s in sources:
        if not s["manual"]:
            table[s.get("licence") or "unknown"]["papers"] += 1
    for a in assignments:
        row = table[items[a.item_id].licence]
        row["items"] += 1
        row[a.split] += 1
    return {k: table[k] for k in sorted(table)}


def update_data(paths: StagePaths, sources: list[dict]) -> dict:
    """Which build brought which source (OUT/paper_splits.jsonl): sources per update and the latest one's list."""
    pins = {p.paper: p for p in read_jsonl(pins_path(paths), PaperSplit)} if pins_path(paths).exists() else {}
    present = [s for s in sources if s["source"] in pins]
    per_update = Counter(pins[s["source"]].update for s in present)
    latest = max(per_update, default=0)
    added = [{k: s.get(k) for k in ("source", "title", "doi", "licence")} | {"split": pins[s["source"]].split}
             for s in present if pins[s["source"]].update == latest]
    return {"latest": latest, "sources_per_update": {str(k): per_update[k] for k in sorted(per_update)},
            "added_by_latest": added}


class LabelSummary(NamedTuple):
    """What the card reads of a LabelRecord (the records with their evidence are not held)."""

    status: str
    origin: str
    prompt_version: str | None


def _count(labels: Counter[LabelSummary], field: str, skip: str | None = None) -> Counter[str]:
    """How many label records have each value of field (labels: a count per distinct summary)."""
    counts: Counter[str] = Counter()
    for summary, n in labels.items():
        if skip is None or getattr(summary, field) != skip:
            counts[getattr(summary, field)] += n
    return counts


def labelling_data(paths: StagePaths, labels: Counter[LabelSummary]) -> dict:
    """Label prompt versions, label origins, and the model-vs-caption-rules disagreements.

    labels: how many label records there are of each (status, origin, prompt version)."""
    sources = _jsonl(sources_path(paths), LabelSources)
    compared = [s for s in sources if s.model_status == "labelled"]
    disagreeing = [s for s in compared if s.disagrees]
    per_feature: dict[str, dict[str, int]] = {}
    for name in canonical_names():
        only_model = sum(name in s.only_model for s in compared)
        only_rules = sum(name in s.only_caption_rules for s in compared)
        if only_model or only_rules:
            per_feature[name] = {"only_model": only_model, "only_caption_rules": only_rules}
    return {
        "label_prompt_versions": sorted({r.prompt_version for r in labels if r.prompt_version}),
        "origins": dict(sorted(_count(labels, "origin").items())),
        "model_vs_caption_rules": {
            "compared": len(compared), "agree": len(compared) - len(disagreeing), "disagree": len(disagreeing),
            "per_feature": per_feature,
            "items": [{"item_id": s.item_id, "model": s.model, "caption_rules": s.caption_rules,
                       "only_model": s.only_model, "only_caption_rules": s.only_caption_rules} for s in disagreeing],
        },
    }


def expert_review_data(paths: StagePaths) -> dict | None:
    """The expert-review label audit (OUT/review/audit.json, written by ``review import``), if any."""
    path = paths.out / "review" / AUDIT_JSON
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def _labelling_markdown(data: dict) -> list[str]:
    versions = ", ".join(f"`{v}`" for v in data["label_prompt_versions"]) or "none (caption rules only)"
    md = ["## Labelling", "", f"- label prompt version(s): {versions}",
          "- label records by origin: " + (", ".join(f"{o} {n}" for o, n in data["origins"].items()) or "none"), ""]
    cmp = data["model_vs_caption_rules"]
    if cmp["compared"]:
        md += [f"Model labels vs caption rules: {cmp['agree']} of {cmp['compared']} model-labelled images agree, "
               f"{cmp['disagree']} disagree.", ""]
        if cmp["per_feature"]:
            md += _table(["feature", "only model", "only caption rules"],
                         [[f, v["only_model"], v["only_caption_rules"]] for f, v in cmp["per_feature"].items()])
        if cmp["items"]:
            md += ["### Disagreements", ""]
            md += _table(["item", "only model", "only caption rules"],
                         [[i["item_id"], ", ".join(i["only_model"]), ", ".join(i["only_caption_rules"])]
                          for i in cmp["items"]])
    return md


def _table(header: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in row) + " |" for row in rows]
    return lines + [""]


def card_markdown(data: dict) -> str:
    """The card for people."""
    md = [f"# Dataset card: {data['dataset_name']}", "",
          f"- prompt version: `{data['prompt_version']}`",
          f"- image_max_pixels: {data['image_max_pixels']:,} (image_min_pixels {data['image_min_pixels']:,})",
          (f"- cutoff_len: {data['cutoff_len']:,}; largest image seen: {data['max_image_tokens']} image tokens; "
          f"largest sample (upper bound): {data['max_sample_tokens_bound']} tokens"),
          f"- seed: {data['seed']}", f"- JPEG encoding: {data['jpeg_encoding']}", "", "## Splits", ""]
    md += _table(["split", "items", "augmented", "samples", "paper groups", "sources"],
                 [[s, v["items"], v["augmented"], v["samples"], v["groups"], v["sources"]]
                  for s, v in data["splits"].items()])
    md += ["## Features per split", "", "originals (with augmentation); rare features marked *", ""]
    md += _table(["feature", *SPLITS],
                 [[name + (" *" if row["rare"] else ""),
                   *(f"{row[s]['originals']} ({row[s]['with_augmentation']})" for s in SPLITS)]
                  for name, row in data["features"].items()])
    md += ["## Label provenance", ""]
    md += _table(["origin", "items", "share"], [[o, v["items"], f"{v['share']:.1%}"]
                                                 for o, v in data["label_origins"].items()])
    md += _labelling_markdown(data["labelling"])
    if data.get("expert_review"):
        md += ["## " + audit_markdown(data["expert_review"]).lstrip("# ")]
    md += ["## Augmentation", ""]
    md += _table(["kind", "images"], [[k, n] for k, n in data["augmentation"].items()])
    md += ["## Sources", ""]
    md += _table(["source", "title", "doi", "licence", "train", "val", "test"],
                 [[s["source"], s.get("title") or "", s.get("doi") or "", s.get("licence") or "",
                   *(s["items"][x] for x in SPLITS)] for s in data["sources"]])
    md += ["## Licences", "", "source papers by the licence of their PDF (fetch manifest, else the PDF's own "
           "statement; \"unknown\": none stated), items by their paper's licence", ""]
    md += _table(["licence", "papers", "items", *SPLITS],
                 [[k, v["papers"], v["items"], *(v[x] for x in SPLITS)] for k, v in data["licences"].items()])
    upd = data["updates"]
    if upd["latest"] == 1:
        md += ["## Updates", "", "every source comes from the first build (OUT/paper_splits.jsonl)", ""]
    elif upd["latest"]:
        md += ["## Updates", "", "sources per build that first placed them (1 = the first build): "
               + ", ".join(f"build {k}: {n}" for k, n in upd["sources_per_update"].items()), "",
               f"Added by build {upd['latest']}:", ""]
        md += _table(["source", "title", "doi", "licence", "split"],
                     [[a["source"], a.get("title") or "", a.get("doi") or "", a.get("licence") or "", a["split"]]
                      for a in upd["added_by_latest"]])
    leak = data["leakage"]
    md += ["## Leakage between splits", "",
           f"- source papers in more than one split: {leak['papers_across_splits']} (must be 0)",
           f"- near-duplicate images (perceptual hash) in more than one split: "
           f"{leak['near_duplicates_across_splits']} (must be 0)", ""]
    md += [f"- {p}" for p in leak["papers"]] + [f"- {a} ~ {b}" for a, b in leak["pairs"]]
    dropped = data["dropped"]
    md += ["## Dropped", "",
           (f"- filter: {dropped['filter']['rejected']} of {dropped['filter']['of']} panels rejected as not "
           f"fracture surfaces"),
           f"- duplicates: {dropped['duplicates']['count']} panels merged into a representative",
           f"- labels without usable features: {dropped['labels'] or 'none'}",
           f"- benchmark exclusions: {len(dropped['benchmark'])}", ""]
    md += holdout.card_lines(data.get("held_out") or {})
    if dropped["filter"]["by_evidence"]:
        md += ["### Filter evidence among rejected panels (top reasons; a panel counts once per reason)", ""]
        md += _table(["evidence", "panels"], [[k, n] for k, n in dropped["filter"]["by_evidence"].items()])
    if dropped["benchmark"]:
        md += ["### Benchmark exclusions", ""]
        md += _table(["item", "why"], [[b["item_id"], b["detail"]] for b in dropped["benchmark"]])
    if dropped["build_report"]:
        md += ["### Build report problems", ""]
        md += _table(["stage:reason", "count"], [[k, n] for k, n in dropped["build_report"].items()])
    return "\n".join(md).rstrip() + "\n"


def write_card(paths: StagePaths, config: BuildConfig, check: DatasetCheck | None = None,
               report: list[Problem] | None = None, base: CardBase | None = None) -> dict:
    """Write dataset/dataset_card.json and dataset/dataset_card.md; returns the card data.
    base: card_base(paths, config) when the caller made it already (export: in a second process)."""
    data = finish_card(card_base(paths, config) if base is None else base, paths, check, report)
    write_json_atomic(paths.dataset / "dataset_card.json", data)
    write_text_atomic(paths.dataset / "dataset_card.md", card_markdown(data))
    return data
